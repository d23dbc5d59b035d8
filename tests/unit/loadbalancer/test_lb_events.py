"""The Event recorder: core/v1 Events, repeats aggregated by count."""
from __future__ import annotations

import asyncio

from nanokube.api.errors import StatusError
from nanokube.controllers.events import WARNING, EventRecorder


class FakeClient:
    def __init__(self):
        self.events: dict[str, dict] = {}
        self.calls: list[str] = []

    async def create(self, path, body):
        self.calls.append("create " + path)
        self.events[body["metadata"]["name"]] = body
        return body

    async def patch(self, path, body):
        self.calls.append("patch " + path)
        name = path.rsplit("/", 1)[1]
        if name not in self.events:
            raise StatusError(404, "NotFound", "gone")
        self.events[name].update(body)
        return self.events[name]


SERVICE = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": "web", "namespace": "shop", "uid": "u1",
                        "resourceVersion": "7"}}


def test_create_then_aggregate_then_recreate_when_gone():
    client = FakeClient()
    rec = EventRecorder(client, "service-controller")

    async def go():
        first = await rec.event(SERVICE, WARNING, "AllocationFailed", "pool exhausted")
        assert first["involvedObject"] == {"kind": "Service", "name": "web", "apiVersion": "v1",
                                           "uid": "u1", "resourceVersion": "7",
                                           "namespace": "shop"}
        assert first["metadata"]["namespace"] == "shop"
        assert first["metadata"]["name"].startswith("web.")
        assert (first["type"], first["reason"], first["message"], first["count"]) == (
            "Warning", "AllocationFailed", "pool exhausted", 1)
        assert first["source"] == {"component": "service-controller"}
        assert first["reportingComponent"] == "service-controller"
        assert first["firstTimestamp"] and first["lastTimestamp"]
        again = await rec.event(SERVICE, WARNING, "AllocationFailed", "pool exhausted")
        assert again["count"] == 2 and len(client.events) == 1
        other = await rec.event(SERVICE, WARNING, "AllocationFailed", "other reason")
        assert other["count"] == 1 and len(client.events) == 2
        client.events.clear()                      # someone deleted the Events
        third = await rec.event(SERVICE, WARNING, "AllocationFailed", "pool exhausted")
        assert third["count"] == 1 and len(client.events) == 1

    asyncio.run(go())


def test_errors_are_swallowed():
    class Broken(FakeClient):
        async def create(self, path, body):
            raise StatusError(500, "InternalError", "boom")

    async def go():
        assert await EventRecorder(Broken(), "x").event(SERVICE, WARNING, "R", "m") is None

    asyncio.run(go())


def test_which_services_the_controller_serves():
    from nanokube.controllers.loadbalancer import wants_load_balancer

    def s(**spec):
        return {"metadata": {"name": "x"}, "spec": spec}

    assert wants_load_balancer(s(type="LoadBalancer"))
    assert wants_load_balancer(s(type="LoadBalancer", loadBalancerClass="nanokube.io/pool"))
    assert not wants_load_balancer(s(type="LoadBalancer", loadBalancerClass="example.com/lb"))
    assert not wants_load_balancer(s(type="ClusterIP"))
    assert not wants_load_balancer(None)
    deleting = s(type="LoadBalancer")
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert not wants_load_balancer(deleting)
