"""A PodWorker with real processes but no namespaces (no root): a fake pod network, a fake
API client, and the launcher run without hostname/mount steps."""
import asyncio
import sys

import pytest

from nanokube.api.errors import StatusError
from nanokube.images import container_argv
from nanokube.node import runtime
from nanokube.node.logs import parse_records
from nanokube.node.podworker import NodeContext, PodWorker


class FakeNetwork:
    def __init__(self):
        self.added, self.removed = [], []

    def netns_name(self, uid):
        return f"nk-test-{uid[:12]}"

    async def add_pod(self, uid):
        self.added.append(uid)
        return "10.244.1.7"

    async def remove_pod(self, uid):
        self.removed.append(uid)


class FakeClient:
    def __init__(self):
        self.patches, self.deletes = [], []

    async def patch(self, path, body, **kw):
        self.patches.append((path, body))
        return {}

    async def delete(self, path, body=None, **kw):
        self.deletes.append((path, body))

    async def get(self, path, **kw):
        raise StatusError(404, "NotFound", "not found")


@pytest.fixture
def no_namespaces(monkeypatch):
    def command(netns, hostname, resolv, hosts, log_path, argv, python=sys.executable):
        return [python, "-I", "-S", runtime.LAUNCHER, "", "", "", log_path, "--", *argv]
    monkeypatch.setattr(runtime, "container_command", command)


def make_worker(tmp_path, containers, restart_policy="Always"):
    ctx = NodeContext(FakeClient(), "node-1", "10.123.0.11", tmp_path, "10.96.0.10",
                      "cluster.local", FakeNetwork(), lambda: [], container_argv)
    pod = {"metadata": {"name": "p", "namespace": "default", "uid": "0123456789abcdef"},
           "spec": {"nodeName": "node-1", "restartPolicy": restart_policy,
                    "terminationGracePeriodSeconds": 2, "containers": containers}}
    done = []
    worker = PodWorker(ctx, pod, None, done.append)
    worker.start()
    return worker, ctx, done


def last_status(ctx):
    return ctx.client.patches[-1][1]["status"] if ctx.client.patches else {}


async def until(predicate, timeout=10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


async def test_runs_reports_logs_and_terminates(tmp_path, no_namespaces):
    worker, ctx, done = make_worker(tmp_path, [{
        "name": "c", "image": "busybox",
        "command": ["sh", "-c", "echo hi; echo $(POD_NAME) >&2; exec sleep 30"],
        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
    }])
    await until(lambda: last_status(ctx).get("phase") == "Running")
    status = last_status(ctx)
    assert ctx.client.patches[-1][0] == "/api/v1/namespaces/default/pods/p/status"
    assert status["podIP"] == "10.244.1.7" and status["hostIP"] == "10.123.0.11"
    assert {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "True"
    cs = status["containerStatuses"][0]
    pid = int(cs["containerID"].split("://")[1])
    assert cs["ready"] and "running" in cs["state"]
    pod_dir = tmp_path / "pods" / "0123456789abcdef"
    assert (pod_dir / "pids").read_text() == f"c {pid}\n"
    assert (pod_dir / "hosts").read_text().endswith("10.244.1.7\tp\n")
    log = pod_dir / "logs" / "c.log"
    await until(lambda: log.exists() and len(parse_records(log.read_bytes())) == 2)
    assert sorted(l.text for l in parse_records(log.read_bytes())) == [b"hi", b"p"]

    worker.update({**worker.pod, "metadata": {**worker.pod["metadata"],
                                              "deletionTimestamp": "2026-01-01T00:00:00Z"}})
    await asyncio.wait_for(worker.task, 10)
    assert not runtime.is_alive(pid, None)
    assert ctx.network.removed == ["0123456789abcdef"] and done == ["0123456789abcdef"]
    assert ctx.client.deletes[0][1]["gracePeriodSeconds"] == 0
    assert ctx.client.deletes[0][1]["preconditions"] == {"uid": "0123456789abcdef"}
    assert not pod_dir.exists()
    final = last_status(ctx)["containerStatuses"][0]["state"]
    assert final["terminated"]["exitCode"] == 143      # SIGTERM


async def test_crash_loop(tmp_path, no_namespaces):
    worker, ctx, _ = make_worker(tmp_path, [{"name": "c", "image": "busybox",
                                             "command": ["sh", "-c", "exit 3"]}])
    try:
        await until(lambda: "waiting" in (last_status(ctx).get("containerStatuses") or [{}])[0]
                    .get("state", {}))
        cs = last_status(ctx)["containerStatuses"][0]
        assert cs["restartCount"] == 1            # the first restart is immediate
        assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
        assert cs["state"]["waiting"]["message"].startswith(
            "back-off 10s restarting failed container=c pod=p_default(")
        assert cs["lastState"]["terminated"]["exitCode"] == 3
        assert cs["lastState"]["terminated"]["reason"] == "Error"
        assert last_status(ctx)["phase"] == "Running"
    finally:
        worker.terminate(delete_from_api=False)
        await asyncio.wait_for(worker.task, 10)
    assert ctx.client.deletes == []


async def test_never_restart_succeeds(tmp_path, no_namespaces):
    worker, ctx, _ = make_worker(tmp_path, [{"name": "c", "image": "busybox",
                                             "command": ["true"]}], restart_policy="Never")
    try:
        await until(lambda: last_status(ctx).get("phase") == "Succeeded")
        cs = last_status(ctx)["containerStatuses"][0]
        assert cs["state"]["terminated"]["reason"] == "Completed" and cs["restartCount"] == 0
    finally:
        worker.terminate(delete_from_api=False)
        await asyncio.wait_for(worker.task, 10)


async def test_unknown_image(tmp_path, no_namespaces):
    worker, ctx, _ = make_worker(tmp_path, [{"name": "c", "image": "example.com/nope:1"}])
    try:
        await until(lambda: last_status(ctx).get("containerStatuses"))
        status = last_status(ctx)
        assert status["phase"] == "Pending"
        waiting = status["containerStatuses"][0]["state"]["waiting"]
        assert waiting["reason"] == "ErrImagePull" and "example.com/nope:1" in waiting["message"]
    finally:
        worker.terminate(delete_from_api=False)
        await asyncio.wait_for(worker.task, 10)
