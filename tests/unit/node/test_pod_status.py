"""Pod phase, conditions and container statuses; the crash-loop back-off."""
from nanokube.node.backoff import BackOff, should_restart
from nanokube.node.status import ContainerState, pod_phase, pod_status, terminated_state

NOW = "2026-01-01T00:00:10Z"
POD = {"metadata": {"name": "p", "namespace": "default"},
       "spec": {"restartPolicy": "Always"}}


def running(name="c", ready=True):
    return ContainerState(name, "busybox", pid=42, state={"running": {"startedAt": NOW}},
                          ready=ready, started=True)


def test_running_and_ready_pod():
    status = pod_status(POD, [running()], pod_ip="10.244.1.5", host_ip="10.123.0.11",
                        start_time=NOW, sandbox_ready=True, previous_conditions=[], now=NOW)
    assert status["phase"] == "Running"
    conds = {c["type"]: c for c in status["conditions"]}
    assert conds["Ready"]["status"] == "True" and conds["ContainersReady"]["status"] == "True"
    assert conds["Initialized"]["status"] == "True" and conds["PodScheduled"]["status"] == "True"
    assert status["podIP"] == "10.244.1.5" and status["podIPs"] == [{"ip": "10.244.1.5"}]
    assert status["hostIPs"] == [{"ip": "10.123.0.11"}]
    cs = status["containerStatuses"][0]
    assert cs["containerID"] == "nanokube://42" and cs["ready"] and cs["started"]
    assert cs["state"] == {"running": {"startedAt": NOW}}
    assert cs["imageID"].startswith("docker.io/library/busybox@sha256:") or \
        cs["imageID"].startswith("busybox@sha256:")


def test_unready_container_and_transition_times_kept():
    previous = [{"type": "Ready", "status": "False", "lastTransitionTime": "T0"},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": "T-1"},
                {"type": "example.com/gate", "status": "True", "lastTransitionTime": "T0"}]
    status = pod_status(POD, [running(ready=False)], pod_ip="10.244.1.5", host_ip="h",
                        start_time=NOW, sandbox_ready=True, previous_conditions=previous,
                        now=NOW)
    conds = {c["type"]: c for c in status["conditions"]}
    assert conds["Ready"] == {"type": "Ready", "status": "False", "lastProbeTime": None,
                              "lastTransitionTime": "T0", "reason": "ContainersNotReady",
                              "message": "containers with unready status: [c]"}
    assert conds["PodScheduled"]["lastTransitionTime"] == "T-1"
    assert conds["example.com/gate"]["status"] == "True"     # someone else's condition kept
    status = pod_status(POD, [running()], pod_ip="x", host_ip="h", start_time=NOW,
                        sandbox_ready=True, previous_conditions=status["conditions"],
                        now="LATER")
    conds = {c["type"]: c for c in status["conditions"]}
    assert conds["Ready"]["lastTransitionTime"] == "LATER"
    assert conds["Initialized"]["lastTransitionTime"] == NOW


def test_phases():
    waiting = ContainerState("c", "x", state={"waiting": {"reason": "ErrImagePull"}})
    assert pod_phase("Always", [waiting]) == "Pending"
    done = ContainerState("c", "x", state=terminated_state(0, NOW, NOW, 1))
    failed = ContainerState("d", "x", state=terminated_state(2, NOW, NOW, 2))
    assert pod_phase("Never", [done]) == "Succeeded"
    assert pod_phase("OnFailure", [done]) == "Succeeded"
    assert pod_phase("Never", [done, failed]) == "Failed"
    assert pod_phase("Always", [done]) == "Running"
    crashloop = ContainerState("c", "x", state={"waiting": {"reason": "CrashLoopBackOff"}},
                               last_state=terminated_state(1, NOW, NOW, 1))
    assert pod_phase("Always", [crashloop]) == "Running"
    assert pod_phase("Always", [running(), waiting]) == "Pending"


def test_completed_pod_is_not_ready():
    done = ContainerState("c", "x", state=terminated_state(0, NOW, NOW, 7))
    status = pod_status({"metadata": {}, "spec": {"restartPolicy": "Never"}}, [done],
                        pod_ip="", host_ip="h", start_time=NOW, sandbox_ready=True,
                        previous_conditions=[], now=NOW)
    conds = {c["type"]: c for c in status["conditions"]}
    assert status["phase"] == "Succeeded" and "podIP" not in status
    assert conds["Ready"]["reason"] == "PodCompleted"
    term = status["containerStatuses"][0]["state"]["terminated"]
    assert term["reason"] == "Completed" and term["exitCode"] == 0
    assert term["containerID"] == "nanokube://7"


def test_terminated_reasons():
    assert terminated_state(1, NOW, NOW, 1)["terminated"]["reason"] == "Error"
    assert terminated_state(None, NOW, NOW, 1)["terminated"]["exitCode"] == 137


def test_back_off_sequence_and_reset():
    b = BackOff()
    assert [b.next_delay(1) for _ in range(7)] == [0, 10, 20, 40, 80, 160, 300]
    assert b.next_delay(1) == 300
    assert b.next_delay(601) == 0            # ran 10 minutes: a fresh start
    assert b.next_delay(1) == 10


def test_restart_policy():
    assert should_restart("Always", 0) and should_restart("Always", 1)
    assert not should_restart("OnFailure", 0) and should_restart("OnFailure", 1)
    assert should_restart("OnFailure", None)
    assert not should_restart("Never", 1)
