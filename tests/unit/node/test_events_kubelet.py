"""The kubelet's Events: container transitions, node conditions, probe failures."""
from __future__ import annotations

import asyncio

from nanokube.node import kubeletevents as ke
from nanokube.node.probes import ProbeWorker, probe_events
from nanokube.node.status import ContainerState

POD = {"metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1"}}
IMAGE = "registry.k8s.io/e2e-test-images/agnhost:2.47"


def test_start_is_pulled_created_started_once_per_state():
    c = ContainerState("web", IMAGE)
    seen = c.state
    assert ke.container_events(POD, seen, c) == []
    c.state = {"running": {"startedAt": "t"}}
    assert ke.container_events(POD, seen, c) == [
        ("Normal", "Pulled", f'Container image "{IMAGE}" already present on machine'),
        ("Normal", "Created", "Created container: web"),
        ("Normal", "Started", "Started container web")]
    assert ke.container_events(POD, c.state, c) == []      # same state object: said already


def test_back_off_and_failures():
    c = ContainerState("web", IMAGE)
    c.state = {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}}
    assert ke.container_events(POD, None, c) == [
        ("Warning", "BackOff",
         "Back-off restarting failed container web in pod web-1_shop(u-1)")]
    c.state = {"waiting": {"reason": "CreateContainerConfigError",
                           "message": 'configmap "cfg" not found'}}
    assert ke.container_events(POD, None, c) == [
        ("Warning", "Failed", 'Error: configmap "cfg" not found')]
    c.state = {"waiting": {"reason": "ErrImagePull", "message": "unknown image"}}
    assert ke.container_events(POD, None, c) == [
        ("Warning", "Failed", f'Failed to pull image "{IMAGE}": unknown image'),
        ("Warning", "Failed", "Error: ErrImagePull")]
    c.state = {"terminated": {"exitCode": 0}}
    assert ke.container_events(POD, None, c) == []


def test_killing():
    assert ke.killing("web") == ("Normal", "Killing", "Stopping container web")


def _conds(ready: str, memory: str = "False") -> list[dict]:
    return [{"type": "MemoryPressure", "status": memory}, {"type": "DiskPressure",
                                                          "status": "False"},
            {"type": "PIDPressure", "status": "False"}, {"type": "Ready", "status": ready}]


def test_node_status_events_on_registration_and_on_change_only():
    reasons = [r for _, r, _ in ke.node_status_events("node-1", None, _conds("True"))]
    assert reasons == ["NodeHasSufficientMemory", "NodeHasNoDiskPressure",
                       "NodeHasSufficientPID", "NodeReady"]
    assert ke.node_status_events("node-1", _conds("True"), _conds("True")) == []
    assert ke.node_status_events("node-1", _conds("True"), _conds("False", "True")) == [
        ("Normal", "NodeHasInsufficientMemory",
         "Node node-1 status is now: NodeHasInsufficientMemory"),
        ("Normal", "NodeNotReady", "Node node-1 status is now: NodeNotReady")]
    # back from Unknown (the node controller's): Ready again
    assert ke.node_status_events("node-1", _conds("Unknown"), _conds("True")) == [
        ("Normal", "NodeReady", "Node node-1 status is now: NodeReady")]
    # never Ready and still not: no NodeNotReady
    assert ke.node_status_events("node-1", None, _conds("False"))[-1][1] != "NodeNotReady"


def _run_probe(kind: str, answers: list[tuple[bool, str]], threshold: int = 2):
    recorded: list[tuple] = []
    results: list[bool] = []
    answers = list(answers)

    async def check():
        return answers.pop(0) if answers else (True, "")

    async def no_sleep(_):
        if not answers:
            raise asyncio.CancelledError

    async def go():
        probe_events.set(ke.ProbeEvents("web", lambda *a: recorded.append(a)))
        worker = ProbeWorker(kind, {"failureThreshold": threshold, "periodSeconds": 1}, check,
                             lambda ok, _msg: results.append(ok), started_at=0.0,
                             sleep=no_sleep, clock=lambda: 0.0)
        try:
            await worker.run()
        except asyncio.CancelledError:
            pass
    asyncio.run(go())
    return recorded, results


def test_every_failed_check_is_unhealthy():
    recorded, _ = _run_probe("readiness", [(False, "HTTP probe failed with statuscode: 500"),
                                           (True, ""), (False, "boom")])
    assert recorded == [
        ("Warning", "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 500",
         "spec.containers{web}"),
        ("Warning", "Unhealthy", "Readiness probe failed: boom", "spec.containers{web}")]


def test_liveness_failure_kills_with_an_event():
    recorded, results = _run_probe("liveness", [(False, "a"), (False, "b")])
    assert [r[1] for r in recorded] == ["Unhealthy", "Unhealthy", "Killing"]
    assert recorded[-1][2] == "Container web failed liveness probe, will be restarted"
    assert results == [False]


def test_no_context_no_events():
    async def go():
        answers = [(False, "x")]

        async def check():
            return answers.pop(0)

        async def stop(_):
            raise asyncio.CancelledError
        worker = ProbeWorker("readiness", {}, check, lambda *a: None, started_at=0.0,
                             sleep=stop, clock=lambda: 0.0)
        try:
            await worker.run()             # probe_events unset: nothing to report to
        except asyncio.CancelledError:
            pass
    asyncio.run(go())
