"""The scheduler: binds each pending pod of default-scheduler to a node.

Filters (as kube-scheduler's plugins): the node is Ready and schedulable, its NoSchedule and
NoExecute taints are tolerated, nodeSelector and required node affinity match. Score: the fewest
pods of the same controller (spreading a ReplicaSet), then the fewest pods, then the name.
A pod that fits nowhere gets PodScheduled=False/Unschedulable with kube-scheduler's message and
is tried again whenever a node changes. One worker, so that every decision sees the previous
ones (the pods it bound are "assumed" until the cache shows their nodeName).
"""
from __future__ import annotations

import logging
from collections import Counter

from nanokube.api.errors import StatusError
from nanokube.apitime import now_rfc3339
from nanokube.client import STRATEGIC_MERGE_PATCH
from nanokube.controllers.events import NORMAL, WARNING, EventRecorder
from nanokube.controllers.informer import object_key
from nanokube.controllers.manager import (Controller, controller_ref, get_condition,
                                          is_pod_terminal)

log = logging.getLogger("nanokube.scheduler")

DEFAULT_SCHEDULER = "default-scheduler"
RETRY_UNSCHEDULABLE = 15.0
NODE_SELECTOR_MISMATCH = "node(s) didn't match Pod's node affinity/selector"
UNSCHEDULABLE_NODE = "node(s) were unschedulable"


# ---- filters ------------------------------------------------------------------------------------

def tolerates(toleration: dict, taint: dict) -> bool:
    """ToleratesTaint: same effect (or any), same key (or any with Exists), same value."""
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    operator = toleration.get("operator") or "Equal"
    if not toleration.get("key"):
        return operator == "Exists"
    if toleration["key"] != taint.get("key"):
        return False
    return operator == "Exists" or (toleration.get("value") or "") == (taint.get("value") or "")


def untolerated_taint(pod: dict, node: dict) -> dict | None:
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not any(tolerates(t, taint) for t in tolerations):
            return taint
    return None


def _requirement_matches(req: dict, labels: dict) -> bool:
    key, op, values = req.get("key"), req.get("operator"), req.get("values") or []
    value = labels.get(key)
    if op == "In":
        return value is not None and value in values
    if op == "NotIn":
        return value is None or value not in values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt") and value is not None and values:
        try:
            a, b = int(value), int(values[0])
        except ValueError:
            return False
        return a > b if op == "Gt" else a < b
    return False


def node_selector_matches(pod: dict, node: dict) -> bool:
    spec = pod.get("spec") or {}
    labels = node["metadata"].get("labels") or {}
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if not required:
        return True
    fields = {"metadata.name": node["metadata"]["name"]}
    for term in required.get("nodeSelectorTerms") or []:
        exprs, field_exprs = term.get("matchExpressions") or [], term.get("matchFields") or []
        if not exprs and not field_exprs:
            continue
        if all(_requirement_matches(r, labels) for r in exprs) and \
                all(_requirement_matches(r, fields) for r in field_exprs):
            return True
    return False


def node_is_ready(node: dict) -> bool:
    cond = get_condition(node, "Ready")
    return bool(cond and cond.get("status") == "True")


def why_not(pod: dict, node: dict) -> str | None:
    """None if the pod fits the node, else kube-scheduler's reason."""
    if (node.get("spec") or {}).get("unschedulable"):
        return UNSCHEDULABLE_NODE
    taint = untolerated_taint(pod, node)
    if taint is not None:
        return f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value') or ''}}}"
    if not node_is_ready(node):
        # kube-scheduler sees the not-ready taint the node lifecycle controller would add
        return "node(s) had untolerated taint {node.kubernetes.io/not-ready: }"
    if not node_selector_matches(pod, node):
        return NODE_SELECTOR_MISMATCH
    return None


def unschedulable_message(total: int, reasons: Counter) -> str:
    if total == 0:
        return "no nodes available to schedule pods"
    parts = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
    return (f"0/{total} nodes are available: {parts}. preemption: 0/{total} nodes are "
            f"available: {total} Preemption is not helpful for scheduling.")


def choose_node(pod: dict, nodes: list[dict], placed: list[tuple[str, str | None]]
                ) -> tuple[str | None, str]:
    """(node name, "") or (None, why). `placed`: (node, controller uid) of every pod already on a
    node, so that a controller's pods spread first, then the node with fewest pods wins."""
    owner = (controller_ref(pod) or {}).get("uid")
    same_owner: Counter = Counter()
    total: Counter = Counter()
    for node_name, pod_owner in placed:
        total[node_name] += 1
        if owner and pod_owner == owner:
            same_owner[node_name] += 1
    reasons: Counter = Counter()
    fits = []
    for node in nodes:
        reason = why_not(pod, node)
        if reason:
            reasons[reason] += 1
        else:
            fits.append(node["metadata"]["name"])
    if not fits:
        return None, unschedulable_message(len(nodes), reasons)
    return min(fits, key=lambda n: (same_owner[n], total[n], n)), ""


# ---- the controller -----------------------------------------------------------------------------

class Scheduler(Controller):
    name = "scheduler"
    workers = 1

    def __init__(self, client, informers):
        super().__init__(client, informers)
        self.pods = informers.pods()
        self.nodes = informers.nodes()
        self.assumed: dict[str, str] = {}      # pod key -> node, bound but not yet in the cache
        self.unschedulable: set[str] = set()
        self.recorder = EventRecorder(client, DEFAULT_SCHEDULER)
        self.pods.add_handler(self._on_pod)
        self.nodes.add_handler(self._on_node)

    def _on_pod(self, old: dict | None, new: dict | None) -> None:
        if new is None:
            key = object_key(old)
            self.assumed.pop(key, None)
            self.unschedulable.discard(key)
        elif not (new.get("spec") or {}).get("nodeName"):
            # a change of status only (our own PodScheduled=False) is no reason to try again
            if old is None or old.get("spec") != new.get("spec") or \
                    old["metadata"].get("labels") != new["metadata"].get("labels"):
                self.enqueue(object_key(new))
        else:
            self.assumed.pop(object_key(new), None)

    def _on_node(self, old: dict | None, new: dict | None) -> None:
        if new is None or old is None or any(
                (old.get(part) or {}).get(f) != (new.get(part) or {}).get(f)
                for part, f in (("spec", "taints"), ("spec", "unschedulable"),
                                ("status", "conditions"), ("metadata", "labels"))):
            for key in list(self.unschedulable):
                self.enqueue(key)

    def _placed(self) -> list[tuple[str, str | None]]:
        placed = []
        for pod in self.pods.list():
            node = (pod.get("spec") or {}).get("nodeName") or self.assumed.get(object_key(pod))
            if node and not is_pod_terminal(pod):
                placed.append((node, (controller_ref(pod) or {}).get("uid")))
        return placed

    async def reconcile(self, key: str) -> float | None:
        pod = self.pods.get(key)
        if pod is None:
            self.unschedulable.discard(key)
            return None
        spec = pod.get("spec") or {}
        if spec.get("nodeName") or key in self.assumed or \
                (spec.get("schedulerName") or DEFAULT_SCHEDULER) != DEFAULT_SCHEDULER or \
                pod["metadata"].get("deletionTimestamp") or is_pod_terminal(pod):
            self.unschedulable.discard(key)
            return None
        node, message = choose_node(pod, self.nodes.list(), self._placed())
        if node is None:
            self.unschedulable.add(key)
            # every failed attempt is an Event (repeats add up in its count)
            self.recorder.record(pod, WARNING, "FailedScheduling", message)
            await self._mark_unschedulable(pod, message)
            return RETRY_UNSCHEDULABLE
        self.unschedulable.discard(key)
        await self._bind(pod, node)
        return None

    async def _bind(self, pod: dict, node: str) -> None:
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        body = {"apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": name, "namespace": ns},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
        self.assumed[object_key(pod)] = node
        try:
            await self.client.create(self.client.resource_path("", "v1", "pods", ns, name,
                                                               "binding"), body)
        except StatusError as e:
            self.assumed.pop(object_key(pod), None)
            if e.code == 409:      # already bound by someone else: nothing left to do
                return
            raise
        self.recorder.record(pod, NORMAL, "Scheduled",
                             f"Successfully assigned {ns}/{name} to {node}")
        log.info("bound %s/%s to %s", ns, name, node)

    async def _mark_unschedulable(self, pod: dict, message: str) -> None:
        current = get_condition(pod, "PodScheduled")
        if current and current.get("status") == "False" and \
                current.get("reason") == "Unschedulable" and current.get("message") == message:
            return
        cond = {"type": "PodScheduled", "status": "False", "lastProbeTime": None,
                "lastTransitionTime": now_rfc3339(), "reason": "Unschedulable",
                "message": message}
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        await self.client.patch(self.client.resource_path("", "v1", "pods", ns, name, "status"),
                                {"status": {"conditions": [cond]}}, STRATEGIC_MERGE_PATCH)
        log.info("pod %s/%s is unschedulable: %s", ns, name, message)
