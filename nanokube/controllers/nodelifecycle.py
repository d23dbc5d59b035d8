"""Node lifecycle: a node whose agent stops renewing its Lease becomes NotReady.

As kube-controller-manager's node lifecycle controller: once the Lease in kube-node-lease is
older than the grace period, the node's conditions become Unknown ("Kubelet stopped posting node
status."), it gets the unreachable NoSchedule and NoExecute taints, and its pods are marked
Ready=False so that they leave the EndpointSlices. When the lease is renewed and the agent reports
Ready again, the taints go. A node whose agent reports NotReady gets the not-ready taints.
"""
from __future__ import annotations

import logging
import time

from nanokube.apitime import now_rfc3339, parse_time
from nanokube.client import STRATEGIC_MERGE_PATCH
from nanokube.controllers.events import NORMAL, EventRecorder
from nanokube.controllers.informer import object_key
from nanokube.controllers.manager import Controller, get_condition

log = logging.getLogger("nanokube.nodelifecycle")

COMPONENT = "node-controller"
LEASE_NAMESPACE = "kube-node-lease"
UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"
NODE_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
UNKNOWN_REASON = "NodeStatusUnknown"
UNKNOWN_MESSAGE = "Kubelet stopped posting node status."


def last_heartbeat(node: dict, lease: dict | None) -> float:
    """The latest sign of life: the lease's renewTime, else the Ready condition's heartbeat,
    else the node's creation (a new node gets a grace period to post its first status)."""
    times = [parse_time(((lease or {}).get("spec") or {}).get("renewTime")),
             parse_time((get_condition(node, "Ready") or {}).get("lastHeartbeatTime")),
             parse_time(node["metadata"].get("creationTimestamp"))]
    return max([t for t in times if t is not None] or [0.0])


def unknown_conditions(node: dict, now: str) -> list[dict] | None:
    """The node's conditions with the kubelet-owned ones turned Unknown; None if they already
    are (so nothing needs writing)."""
    conditions = [dict(c) for c in (node.get("status") or {}).get("conditions") or []]
    changed = False
    present = {c.get("type") for c in conditions}
    for cond in conditions:
        if cond.get("type") in NODE_CONDITIONS and cond.get("status") != "Unknown":
            cond.update(status="Unknown", reason=UNKNOWN_REASON, message=UNKNOWN_MESSAGE,
                        lastTransitionTime=now)
            changed = True
    if "Ready" not in present:
        conditions.append({"type": "Ready", "status": "Unknown", "reason": "NodeStatusNeverUpdated",
                           "message": UNKNOWN_MESSAGE, "lastHeartbeatTime": now,
                           "lastTransitionTime": now})
        changed = True
    return conditions if changed else None


def wanted_taints(node: dict, stale: bool) -> list[dict]:
    """The node's taints with the unreachable/not-ready ones set as the node's state asks."""
    ready = get_condition(node, "Ready")
    status = "Unknown" if stale else (ready or {}).get("status", "Unknown")
    keep = [t for t in (node.get("spec") or {}).get("taints") or []
            if t.get("key") not in (UNREACHABLE, NOT_READY)]
    current = {(t.get("key"), t.get("effect")): t for t in (node.get("spec") or {}).get("taints")
               or []}
    if stale:
        key = UNREACHABLE
    elif status == "False":
        key = NOT_READY
    elif status == "Unknown":
        # lease renewed but the agent has not said Ready yet: keep what is there
        return list((node.get("spec") or {}).get("taints") or [])
    else:
        return keep
    for effect in ("NoSchedule", "NoExecute"):
        taint = current.get((key, effect)) or {"key": key, "effect": effect}
        if effect == "NoExecute" and "timeAdded" not in taint:
            taint = {**taint, "timeAdded": now_rfc3339()}
        keep.append(taint)
    return keep


def _same_taints(a: list[dict], b: list[dict]) -> bool:
    strip = lambda ts: sorted((t.get("key"), t.get("value"), t.get("effect")) for t in ts)  # noqa
    return strip(a) == strip(b)


class NodeLifecycleController(Controller):
    name = "nodelifecycle"
    workers = 2

    def __init__(self, client, informers, grace_period: float):
        super().__init__(client, informers)
        self.grace_period = float(grace_period)
        self.nodes = informers.nodes()
        self.pods = informers.pods()
        self.leases = informers.informer("coordination.k8s.io", "v1", "leases",
                                         LEASE_NAMESPACE)
        self.recorder = EventRecorder(client, COMPONENT)
        self._ready: dict[str, str] = {}      # node -> the Ready status seen last
        self.nodes.add_handler(self._on_node)
        self.leases.add_handler(lambda old, new: self.enqueue((new or old)["metadata"]["name"]))
        self.pods.add_handler(self._on_pod)

    def _on_node(self, old: dict | None, new: dict | None) -> None:
        if old is None and new is not None:
            name = new["metadata"]["name"]
            self.recorder.record(new, NORMAL, "RegisteredNode",
                                 f"Node {name} event: Registered Node {name} in Controller")
        if new is None:
            self._ready.pop(old["metadata"]["name"], None)
        self.enqueue(object_key(new or old))

    def _note_readiness(self, node: dict) -> None:
        """RecordNodeStatusChange when the node leaves Ready (whoever said so)."""
        name = node["metadata"]["name"]
        status = (get_condition(node, "Ready") or {}).get("status", "Unknown")
        if self._ready.get(name) == "True" and status != "True":
            self.recorder.record(node, NORMAL, "NodeNotReady",
                                 f"Node {name} status is now: NodeNotReady")
        self._ready[name] = status

    def _on_pod(self, old: dict | None, new: dict | None) -> None:
        """A pod that turns Ready on a node that is down must be marked again."""
        if new is not None and (new.get("spec") or {}).get("nodeName"):
            node = self.nodes.get(new["spec"]["nodeName"])
            if node is not None and (get_condition(node, "Ready") or {}).get("status") == \
                    "Unknown":
                self.enqueue(new["spec"]["nodeName"])

    async def reconcile(self, key: str) -> float | None:
        node = self.nodes.get(key)
        if node is None:
            return None
        lease = self.leases.get(f"{LEASE_NAMESPACE}/{key}")
        age = time.time() - last_heartbeat(node, lease)
        stale = age > self.grace_period
        path = self.client.resource_path("", "v1", "nodes", None, key)
        if stale:
            conditions = unknown_conditions(node, now_rfc3339())
            if conditions is not None:
                log.warning("node %s: no heartbeat for %.1fs; marking it NotReady", key, age)
                node = await self.client.patch(f"{path}/status",
                                               {"status": {"conditions": conditions}})
                self.nodes.write_through(node)
        self._note_readiness(node)
        taints = wanted_taints(node, stale)
        if not _same_taints(taints, (node.get("spec") or {}).get("taints") or []):
            node = await self.client.patch(path, {"spec": {"taints": taints or None}})
            self.nodes.write_through(node)
        if stale:
            await self._mark_pods_not_ready(key)
            return None      # a renewed lease brings the node back to the queue
        return max(0.1, self.grace_period - age + 0.05)

    async def _mark_pods_not_ready(self, node_name: str) -> None:
        """MarkPodsNotReady: every pod on the node gets Ready=False."""
        for pod in self.pods.list():
            if (pod.get("spec") or {}).get("nodeName") != node_name:
                continue
            ready = get_condition(pod, "Ready")
            if ready is None or ready.get("status") == "False":
                continue
            ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
            cond = {**ready, "status": "False", "lastTransitionTime": now_rfc3339()}
            updated = await self.client.patch(
                self.client.resource_path("", "v1", "pods", ns, name, "status"),
                {"status": {"conditions": [cond]}}, STRATEGIC_MERGE_PATCH)
            self.pods.write_through(updated)
            log.info("pod %s/%s on unreachable node %s: Ready=False", ns, name, node_name)
