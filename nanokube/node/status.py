"""Pod status as the kubelet computes it from what its containers do (generateAPIPodStatus)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from nanokube.apitime import now_rfc3339


def image_id(image: str) -> str:
    """A stable digest reference for an image name (there is no registry to ask)."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[:len(name) - len(last)] + last.split(":", 1)[0]
    digest = hashlib.sha256(image.encode()).hexdigest()
    return f"{name}@sha256:{digest}"


@dataclass
class ContainerState:
    """What the agent knows of one container; `state` and `last_state` are API-shaped
    ({"running": {...}} / {"waiting": {...}} / {"terminated": {...}})."""
    name: str
    image: str
    restart_count: int = 0
    pid: int | None = None
    state: dict = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: dict = field(default_factory=dict)
    ready: bool = False
    started: bool = False

    @property
    def running(self) -> bool:
        return "running" in self.state

    def to_status(self) -> dict:
        status = {
            "name": self.name,
            "image": self.image,
            "imageID": image_id(self.image) if self.pid or self.restart_count
            or "terminated" in self.state else "",
            "ready": self.ready,
            "restartCount": self.restart_count,
            "started": self.started,
            "state": self.state,
            "lastState": self.last_state,
        }
        if self.pid:
            status["containerID"] = f"nanokube://{self.pid}"
        elif "terminated" in self.state and self.state["terminated"].get("containerID"):
            status["containerID"] = self.state["terminated"]["containerID"]
        return status


def terminated_state(exit_code: int | None, started_at: str, finished_at: str,
                     pid: int | None, reason: str | None = None, message: str = "") -> dict:
    """A terminated state: Completed for exit 0, Error otherwise (137 for a kill, as a
    runtime reports it)."""
    if exit_code is None:
        exit_code, reason = 137, reason or "Unknown"
    state = {"exitCode": exit_code,
             "reason": reason or ("Completed" if exit_code == 0 else "Error"),
             "startedAt": started_at, "finishedAt": finished_at}
    if message:
        state["message"] = message
    if pid:
        state["containerID"] = f"nanokube://{pid}"
    return {"terminated": state}


def pod_phase(restart_policy: str, containers: list[ContainerState]) -> str:
    """getPhase for pods without init containers."""
    running = waiting = stopped = succeeded = 0
    for c in containers:
        if "running" in c.state:
            running += 1
        elif "terminated" in c.state:
            stopped += 1
            succeeded += c.state["terminated"].get("exitCode") == 0
        elif c.last_state.get("terminated"):
            stopped += 1     # waiting to be restarted: it did run
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped:
        if restart_policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if restart_policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


def _condition(ctype: str, ok: bool, previous: dict[str, dict], now: str,
               reason: str = "", message: str = "") -> dict:
    status = "True" if ok else "False"
    before = previous.get(ctype)
    since = before["lastTransitionTime"] if before and before.get("status") == status \
        and before.get("lastTransitionTime") else now
    cond = {"type": ctype, "status": status, "lastProbeTime": None, "lastTransitionTime": since}
    if not ok and reason:
        cond["reason"] = reason
        if message:
            cond["message"] = message
    return cond


def pod_conditions(pod: dict, phase: str, containers: list[ContainerState],
                   sandbox_ready: bool, previous: list[dict], now: str) -> list[dict]:
    prev = {c.get("type"): c for c in previous or []}
    unready = [c.name for c in containers if not c.ready]
    if phase in ("Succeeded", "Failed"):
        ready, reason, message = False, "PodCompleted", ""
    else:
        ready = not unready
        reason = "ContainersNotReady"
        message = f"containers with unready status: [{' '.join(unready)}]"
    gates = [g.get("conditionType") for g in (pod.get("spec") or {}).get("readinessGates") or []]
    missing = [g for g in gates if (prev.get(g) or {}).get("status") != "True"]
    pod_ready, pod_reason, pod_message = ready, reason, message
    if ready and missing:
        pod_ready, pod_reason = False, "ReadinessGatesNotReady"
        pod_message = f"corresponding condition of pod readiness gate \"{missing[0]}\" does not exist."
    scheduled = prev.get("PodScheduled") or {}
    conditions = [
        _condition("PodReadyToStartContainers", sandbox_ready, prev, now),
        _condition("Initialized", True, prev, now),
        _condition("Ready", pod_ready, prev, now, pod_reason, pod_message),
        _condition("ContainersReady", ready, prev, now, reason, message),
        {"type": "PodScheduled", "status": "True", "lastProbeTime": None,
         "lastTransitionTime": scheduled.get("lastTransitionTime") or now},
    ]
    # conditions other writers own (readiness gates, DisruptionTarget, ...) are kept
    ours = {c["type"] for c in conditions}
    conditions += [c for c in previous or [] if c.get("type") not in ours]
    return conditions


def pod_status(pod: dict, containers: list[ContainerState], *, pod_ip: str, host_ip: str,
               start_time: str, sandbox_ready: bool, previous_conditions: list[dict],
               now: str | None = None) -> dict:
    """The status the agent reports for a pod, ready to be sent as a merge patch."""
    now = now or now_rfc3339()
    restart_policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
    phase = pod_phase(restart_policy, containers)
    status = {
        "phase": phase,
        "conditions": pod_conditions(pod, phase, containers, sandbox_ready,
                                     previous_conditions, now),
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": start_time,
        "containerStatuses": [c.to_status() for c in containers],
    }
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    return status
