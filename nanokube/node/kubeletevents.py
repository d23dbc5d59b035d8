"""The Events the kubelet records about pods, containers and its Node, in its own words.

Container Events follow from the container runner's state transitions: the runner sets a new
state object at every transition (started, waiting to restart, failed to start), so the pod
worker compares, by identity, the state it saw last with the current one after every change
and records what the kubelet would have said at that moment. Probe Events come from the probe
workers through `ProbeEvents`, which the pod worker puts in each container's task context.
"""
from __future__ import annotations

from typing import Callable

from nanokube.controllers.events import NORMAL, WARNING, container_field_path
from nanokube.node.status import ContainerState

COMPONENT = "kubelet"

# waiting reasons of a container that could not be started, each an Event "Error: <message>"
FAILED_TO_START = ("CreateContainerConfigError", "StartError", "RunContainerError")

# node conditions -> the Event for (condition status True, False), as the kubelet's setters
_CONDITION_EVENTS = {
    "MemoryPressure": ("NodeHasInsufficientMemory", "NodeHasSufficientMemory"),
    "DiskPressure": ("NodeHasDiskPressure", "NodeHasNoDiskPressure"),
    "PIDPressure": ("NodeHasInsufficientPID", "NodeHasSufficientPID"),
    "Ready": ("NodeReady", "NodeNotReady"),
}

Event = tuple[str, str, str]      # (type, reason, message)


def format_pod(pod: dict) -> str:
    """format.Pod: name_namespace(uid)."""
    meta = pod.get("metadata") or {}
    return f"{meta.get('name', '')}_{meta.get('namespace', '')}({meta.get('uid', '')})"


def pulled(image: str) -> Event:
    # an image is a local program here: it is always "present", never pulled
    return NORMAL, "Pulled", f'Container image "{image}" already present on machine'


def container_events(pod: dict, seen: dict | None, container: ContainerState) -> list[Event]:
    """What the kubelet records when `container` moved from the state object `seen` to the
    one it has now (nothing if it is the same object)."""
    state = container.state
    if state is seen:
        return []
    name = container.name
    if "running" in state:
        return [pulled(container.image),
                (NORMAL, "Created", f"Created container: {name}"),
                (NORMAL, "Started", f"Started container {name}")]
    waiting = state.get("waiting") or {}
    reason, message = waiting.get("reason"), waiting.get("message") or ""
    if reason == "CrashLoopBackOff":
        return [(WARNING, "BackOff",
                 f"Back-off restarting failed container {name} in pod {format_pod(pod)}")]
    if reason == "ErrImagePull":
        return [(WARNING, "Failed", f'Failed to pull image "{container.image}": {message}'),
                (WARNING, "Failed", "Error: ErrImagePull")]
    if reason in FAILED_TO_START:
        return [(WARNING, "Failed", f"Error: {message}")]
    return []


def killing(container: str) -> Event:
    return NORMAL, "Killing", f"Stopping container {container}"


def node_status_events(node_name: str, previous: list[dict] | None,
                       current: list[dict]) -> list[Event]:
    """recordNodeStatusEvent for every condition that is new or changed."""
    before = {c.get("type"): c.get("status") for c in previous or []}
    events = []
    for cond in current:
        ctype, status = cond.get("type"), cond.get("status")
        if ctype not in _CONDITION_EVENTS or before.get(ctype) == status:
            continue
        if_true, if_false = _CONDITION_EVENTS[ctype]
        if ctype == "Ready" and status != "True" and before.get(ctype) != "True":
            continue         # NodeNotReady only when it was Ready
        reason = if_true if status == "True" else if_false
        events.append((NORMAL, reason, f"Node {node_name} status is now: {reason}"))
    return events


class ProbeEvents:
    """Where one container's probe workers report: an Unhealthy Event for every failed check,
    and Killing when a liveness or startup probe has the container restarted."""

    def __init__(self, container: str, record: Callable[[str, str, str, str], None]):
        self.container = container
        self._record = record        # (type, reason, message, field path)

    def unhealthy(self, kind: str, output: str) -> None:
        self._record(WARNING, "Unhealthy", f"{kind.capitalize()} probe failed: {output}",
                     container_field_path(self.container))

    def will_restart(self, kind: str) -> None:
        self._record(NORMAL, "Killing", f"Container {self.container} failed {kind} probe, "
                     "will be restarted", container_field_path(self.container))
