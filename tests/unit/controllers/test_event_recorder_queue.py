"""EventRecorder.record(): queued, never waits for the API, bounded (oldest dropped), written by
one task in order; the controllers' messages in Kubernetes' words."""
from __future__ import annotations

import asyncio

from nanokube.controllers.deployment import scaling_message
from nanokube.controllers.events import (NORMAL, WARNING, EventRecorder, container_field_path,
                                         node_reference)

POD = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "web-1", "namespace": "shop", "uid": "u1", "resourceVersion": "3"}}


class SlowClient:
    """An API server that answers each write only when the test lets it."""

    def __init__(self):
        self.created: list[dict] = []
        self.patched: list[tuple[str, dict]] = []
        self.gate = asyncio.Event()
        self.in_flight = 0
        self.max_in_flight = 0

    async def _wait(self):
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        await self.gate.wait()
        self.in_flight -= 1

    async def create(self, path, body):
        await self._wait()
        self.created.append(body)
        return body

    async def patch(self, path, body):
        await self._wait()
        self.patched.append((path, body))
        return body


def test_record_returns_at_once_and_writes_in_order():
    async def go():
        client = SlowClient()
        rec = EventRecorder(client, "kubelet", host="node-1")
        rec.record(POD, NORMAL, "Pulled", "pulled", container_field_path("web"))
        rec.record(POD, NORMAL, "Created", "Created container: web", container_field_path("web"))
        assert client.created == []                # nothing written yet, and nobody waited
        await asyncio.sleep(0)
        assert client.in_flight == 1
        client.gate.set()
        await rec.flush()
        assert [e["reason"] for e in client.created] == ["Pulled", "Created"]
        assert client.max_in_flight == 1           # one writer per recorder
        event = client.created[1]
        assert event["involvedObject"]["fieldPath"] == "spec.containers{web}"
        assert event["source"] == {"component": "kubelet", "host": "node-1"}
        assert event["metadata"]["namespace"] == "shop"
    asyncio.run(go())


def test_queue_is_bounded_and_drops_the_oldest():
    async def go():
        client = SlowClient()
        rec = EventRecorder(client, "default-scheduler", max_queued=3)
        for i in range(6):
            rec.record(POD, NORMAL, "Scheduled", f"attempt {i}")
        assert rec.dropped == 3
        client.gate.set()
        await rec.flush()
        # the writer starts only after these calls: the three newest are left
        assert [e["message"] for e in client.created] == ["attempt 3", "attempt 4", "attempt 5"]
    asyncio.run(go())


def test_repeats_are_counted_and_errors_do_not_stop_the_writer():
    class Flaky(SlowClient):
        async def create(self, path, body):
            if body["reason"] == "Boom":
                raise RuntimeError("API down")
            return await super().create(path, body)

    async def go():
        client = Flaky()
        client.gate.set()
        rec = EventRecorder(client, "default-scheduler")
        rec.record(POD, WARNING, "FailedScheduling", "0/2 nodes are available")
        rec.record(POD, WARNING, "Boom", "lost")
        rec.record(POD, WARNING, "FailedScheduling", "0/2 nodes are available")
        await rec.flush()
        assert len(client.created) == 1
        assert client.patched[0][1]["count"] == 2
        assert client.patched[0][0].endswith("/events/" + client.created[0]["metadata"]["name"])
    asyncio.run(go())


def test_node_events_land_in_default_with_the_name_as_uid():
    async def go():
        client = SlowClient()
        client.gate.set()
        rec = EventRecorder(client, "kubelet", host="node-1")
        rec.record(node_reference("node-1"), NORMAL, "Starting", "Starting kubelet.")
        await rec.flush()
        (event,) = client.created
        assert event["metadata"]["namespace"] == "default"
        assert event["involvedObject"] == {"kind": "Node", "name": "node-1", "uid": "node-1",
                                           "apiVersion": "", "resourceVersion": ""}
    asyncio.run(go())


def test_record_without_a_loop_is_dropped_quietly():
    rec = EventRecorder(SlowClient(), "kubelet")
    rec.record(POD, NORMAL, "Pulled", "x")        # no running loop: nothing to write with
    assert len(rec._queue) == 0


def test_scaling_message():
    assert scaling_message("web-5d4f", 0, 2) == "Scaled up replica set web-5d4f from 0 to 2"
    assert scaling_message("web-5d4f", 3, 2) == "Scaled down replica set web-5d4f from 3 to 2"
