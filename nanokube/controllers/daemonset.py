"""The DaemonSet controller: one pod of the set on every node that should run it.

As kube-controller-manager's (pkg/controller/daemon):
- a node should run the daemon pod when it matches the template's nodeSelector and required node
  affinity and has no NoSchedule/NoExecute taint the pod does not tolerate; a pod stays while the
  node matches and has no untolerated NoExecute taint;
- pods are made as Kubernetes >= 1.12 does: with a required node affinity
  `matchFields metadata.name In [node]` and the default DaemonSet tolerations, and the scheduler
  binds them to that node;
- a node with more than one daemon pod keeps the oldest; failed pods are deleted and made again;
  pods on nodes that are gone or no longer match (misscheduled) are deleted;
- revisions are ControllerRevisions <set>-<hash> (the StatefulSet controller's helpers), the pods
  are labelled controller-revision-hash=<hash>; RollingUpdate replaces old pods node by node,
  at most maxUnavailable nodes without an available pod at a time (or, with maxSurge, the new pod
  comes up next to the old one first); OnDelete replaces a pod only when it is deleted.

`plan()` decides, from the set, the nodes and the pods, what to do now; `DaemonSetController`
does it.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

from nanokube.api.errors import StatusError
from nanokube.controllers.events import NORMAL, WARNING, EventRecorder
from nanokube.controllers.informer import object_key
from nanokube.controllers.manager import (Controller, controlled_by, is_pod_available, is_pod_ready,
                                          owner_key, owner_reference)
from nanokube.controllers.scheduler import node_selector_matches, tolerates
from nanokube.controllers.statefulset import (REVISION_LABEL, StatefulSetController,
                                              apply_revision, is_terminating,
                                              revisions_to_prune)

COMPONENT = "daemonset-controller"

# AddOrUpdateDaemonPodTolerations: what every daemon pod tolerates.
DEFAULT_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
]
HOST_NETWORK_TOLERATION = {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists",
                           "effect": "NoSchedule"}


# ---- pods ---------------------------------------------------------------------------------------

def add_default_tolerations(pod_spec: dict) -> None:
    tolerations = pod_spec.setdefault("tolerations", [])
    wanted = DEFAULT_TOLERATIONS + ([HOST_NETWORK_TOLERATION] if pod_spec.get("hostNetwork")
                                    else [])
    for toleration in wanted:
        if not any(t.get("key") == toleration["key"] and t.get("effect") == toleration["effect"]
                   for t in tolerations):
            tolerations.append(dict(toleration))


def node_name_affinity(pod_spec: dict, node: str) -> None:
    """ReplaceDaemonSetPodNodeNameNodeAffinity: the required terms become `metadata.name In
    [node]` (the node already matched the set's own terms)."""
    affinity = pod_spec.setdefault("affinity", {})
    node_affinity = affinity.setdefault("nodeAffinity", {})
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]}


def new_pod(ds: dict, node: str, revision_hash: str) -> dict:
    """A daemon pod of the set's template for one node, labelled with its revision hash."""
    template = ds["spec"].get("template") or {}
    tmeta = template.get("metadata") or {}
    meta = {"generateName": f"{ds['metadata']['name']}-", "namespace": ds["metadata"]["namespace"],
            "labels": {**(tmeta.get("labels") or {}), REVISION_LABEL: revision_hash},
            "ownerReferences": [owner_reference(ds, "apps/v1", "DaemonSet")]}
    if tmeta.get("annotations"):
        meta["annotations"] = dict(tmeta["annotations"])
    spec = copy.deepcopy(template.get("spec") or {})
    node_name_affinity(spec, node)
    add_default_tolerations(spec)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def target_node(pod: dict) -> str:
    """GetTargetNodeName: the node the pod is bound to, or the one its affinity names."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return spec["nodeName"]
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution")) or {}
    for term in required.get("nodeSelectorTerms") or []:
        for req in term.get("matchFields") or []:
            if req.get("key") == "metadata.name" and req.get("operator") == "In" and \
                    len(req.get("values") or []) == 1:
                return req["values"][0]
    return ""


def pod_hash(pod: dict) -> str:
    return (pod["metadata"].get("labels") or {}).get(REVISION_LABEL, "")


def should_run(ds: dict, node: dict) -> tuple[bool, bool]:
    """NodeShouldRunDaemonPod: (should run, should continue running)."""
    template = copy.deepcopy(ds["spec"].get("template") or {})
    spec = template.setdefault("spec", {})
    if spec.get("nodeName") and spec["nodeName"] != node["metadata"]["name"]:
        return False, False
    if not node_selector_matches(template, node):
        return False, False
    add_default_tolerations(spec)
    run = keep = True
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not any(tolerates(t, taint) for t in spec["tolerations"]):
            run = False
            keep = keep and taint.get("effect") != "NoExecute"
    return run, keep


# ---- the plan of one sync -----------------------------------------------------------------------

@dataclass
class Action:
    verb: str            # "create" or "delete"
    pod: dict
    node: str = ""


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    status: dict = field(default_factory=dict)
    requeue: float | None = None


def _scaled(value, total: int) -> int:
    """GetScaledValueFromIntOrPercent, rounding up."""
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(int(value[:-1]) * total / 100)
    return value if isinstance(value, int) else 0


def _oldest_first(pods: list[dict]) -> list[dict]:
    return sorted(pods, key=lambda p: (p["metadata"].get("creationTimestamp") or "",
                                       p["metadata"].get("name", "")))


def _status(ds: dict, nodes: list[dict], by_node: dict[str, list[dict]], update_hash: str,
            now: float) -> dict:
    """updateDaemonSetStatus; the omitempty fields are left out when zero, as Go does."""
    min_ready = ds["spec"].get("minReadySeconds") or 0
    counts = dict.fromkeys(("desiredNumberScheduled", "currentNumberScheduled",
                            "numberMisscheduled", "numberReady", "updatedNumberScheduled",
                            "numberAvailable"), 0)
    for node in nodes:
        run, _ = should_run(ds, node)
        pods = [p for p in by_node.get(node["metadata"]["name"], []) if not is_terminating(p)]
        if run:
            counts["desiredNumberScheduled"] += 1
        if not pods:
            continue
        if not run:
            counts["numberMisscheduled"] += 1
            continue
        counts["currentNumberScheduled"] += 1
        ready = [p for p in pods if is_pod_ready(p)]
        pod = (ready or _oldest_first(pods))[0]
        if is_pod_ready(pod):
            counts["numberReady"] += 1
            if is_pod_available(pod, min_ready, now):
                counts["numberAvailable"] += 1
        if any(pod_hash(p) == update_hash for p in pods):
            counts["updatedNumberScheduled"] += 1
    status = {"observedGeneration": ds["metadata"].get("generation", 0), **counts,
              "numberUnavailable": counts["desiredNumberScheduled"] - counts["numberAvailable"]}
    collision = (ds.get("status") or {}).get("collisionCount")
    if collision:
        status["collisionCount"] = collision
    required = ("desiredNumberScheduled", "currentNumberScheduled", "numberMisscheduled",
                "numberReady")
    return {k: v for k, v in status.items() if v or k in required}


def _rolling_update(ds: dict, wanted: dict[str, list[dict]], update_hash: str, now: float,
                    out: Plan) -> None:
    """rollingUpdate: replace the pods of an old revision, keeping at most maxUnavailable
    nodes without an available pod (or, with maxSurge, starting the new pod first)."""
    rolling = (ds["spec"].get("updateStrategy") or {}).get("rollingUpdate") or {}
    desired = len(wanted)
    max_unavailable = _scaled(rolling.get("maxUnavailable", 1), desired)
    max_surge = _scaled(rolling.get("maxSurge", 0), desired)
    min_ready = ds["spec"].get("minReadySeconds") or 0
    busy = {a.node for a in out.actions}
    unavailable = sum(1 for pods in wanted.values()
                      if not any(is_pod_available(p, min_ready, now) and not is_terminating(p)
                                 for p in pods))
    surging = sum(1 for pods in wanted.values()
                  if any(pod_hash(p) == update_hash for p in pods) and
                  any(pod_hash(p) != update_hash for p in pods))
    for node, pods in sorted(wanted.items()):
        live = [p for p in pods if not is_terminating(p)]
        old = [p for p in live if pod_hash(p) != update_hash]
        new = [p for p in live if pod_hash(p) == update_hash]
        if node in busy or not old:
            continue
        old_available = any(is_pod_available(p, min_ready, now) for p in old)
        if max_surge:
            if not new and old_available and surging < max_surge:
                out.actions.append(Action("create", {}, node))
                surging += 1
            elif not new and not old_available:
                out.actions += [Action("delete", p, node) for p in old]
            elif new and all(is_pod_available(p, min_ready, now) for p in new):
                out.actions += [Action("delete", p, node) for p in old]
            continue
        if new:
            continue
        if not old_available:          # an unavailable old pod goes at once
            out.actions += [Action("delete", p, node) for p in old]
        elif unavailable < max_unavailable:
            out.actions += [Action("delete", p, node) for p in old]
            unavailable += 1


def plan(ds: dict, nodes: list[dict], pods: list[dict], update_hash: str,
         now: float | None = None) -> Plan:
    """What one sync does (manage, then rollingUpdate): `pods` are the set's pods as observed.
    A "create" action carries the node; the controller makes the pod."""
    now = time.time() if now is None else now
    by_node: dict[str, list[dict]] = {}
    for pod in pods:
        by_node.setdefault(target_node(pod), []).append(pod)
    out = Plan(status=_status(ds, nodes, by_node, update_hash, now))
    if ds["metadata"].get("deletionTimestamp"):
        return out
    wanted: dict[str, list[dict]] = {}
    known = set()
    for node in nodes:
        name = node["metadata"]["name"]
        known.add(name)
        run, keep = should_run(ds, node)
        on_node = _oldest_first(by_node.get(name, []))
        live = [p for p in on_node if not is_terminating(p)]
        if run:
            wanted[name] = on_node
            if not on_node:            # (a terminating pod is waited for: hostPorts)
                out.actions.append(Action("create", {}, name))
            failed = [p for p in live if (p.get("status") or {}).get("phase") == "Failed"]
            out.actions += [Action("delete", p, name) for p in failed]
            live = [p for p in live if p not in failed]
            # more than one: keep the oldest (unless an update is surging on this node)
            if len(live) > 1 and not _surge_pair(live, update_hash):
                out.actions += [Action("delete", p, name) for p in live[1:]]
        elif not keep:
            out.actions += [Action("delete", p, name) for p in live]
    for name, on_node in by_node.items():
        if name not in known:          # the node is gone (or the pod names none)
            out.actions += [Action("delete", p, name) for p in on_node if not is_terminating(p)]
    if (ds["spec"].get("updateStrategy") or {}).get("type") == "RollingUpdate":
        _rolling_update(ds, wanted, update_hash, now, out)
    return out


def _placement(node: dict) -> tuple:
    """What of a node decides whether daemon pods run there."""
    ready = next((c.get("status") for c in (node.get("status") or {}).get("conditions") or []
                  if c.get("type") == "Ready"), None)
    spec = node.get("spec") or {}
    return (node["metadata"].get("labels"), spec.get("taints"), spec.get("unschedulable"), ready)


def _surge_pair(live: list[dict], update_hash: str) -> bool:
    """An old and a new pod on one node: a surge in progress, which the rolling update ends."""
    return len(live) == 2 and len({pod_hash(p) == update_hash for p in live}) == 2


# ---- the controller -----------------------------------------------------------------------------

class DaemonSetController(Controller):
    name = "daemonset"
    workers = 2

    # The ControllerRevision handling is the StatefulSet controller's: it needs only
    # self.client, self.revisions and self.sets.
    _update_revision = StatefulSetController._update_revision
    _prune = StatefulSetController._prune

    def __init__(self, client, informers):
        super().__init__(client, informers)
        self.sets = informers.informer("apps", "v1", "daemonsets")
        self.revisions = informers.informer("apps", "v1", "controllerrevisions")
        self.pods = informers.pods()
        self.nodes = informers.nodes()
        self.recorder = EventRecorder(client, COMPONENT)
        self.sets.add_handler(lambda old, new: self.enqueue(object_key(new or old)))
        self.pods.add_handler(self._on_owned)
        self.revisions.add_handler(self._on_owned)
        self.nodes.add_handler(self._on_node)

    def _on_owned(self, old: dict | None, new: dict | None) -> None:
        self.enqueue(owner_key(new or old, "DaemonSet"))

    def _on_node(self, old: dict | None, new: dict | None) -> None:
        """A node came, went or changed its labels, taints or readiness: every set looks
        (status heartbeats alone do not matter: shouldIgnoreNodeUpdate)."""
        if old is not None and new is not None and _placement(old) == _placement(new):
            return
        for key in self.sets.keys():
            self.enqueue(key)

    def _owned(self, informer, ds: dict) -> list[dict]:
        return controlled_by(informer.list(ds["metadata"]["namespace"]), ds)

    async def reconcile(self, key: str) -> float | None:
        ds = self.sets.get(key)
        if ds is None:
            return None
        ds = {**ds, "apiVersion": "apps/v1", "kind": "DaemonSet"}
        pods = self._owned(self.pods, ds)
        revisions = self._owned(self.revisions, ds)
        collision = (ds.get("status") or {}).get("collisionCount") or 0
        update_rev = await self._update_revision(ds, revisions, collision)
        update = update_rev["metadata"]["name"]
        update_hash = update[len(ds["metadata"]["name"]) + 1:]
        decided = plan(ds, self.nodes.list(), pods, update_hash)
        template_set = apply_revision(ds, update_rev)
        error = None
        for action in decided.actions:
            try:
                await self._act(ds, template_set, update_hash, action)
            except StatusError as e:
                error = error or e
        await self.sets.update_status(ds, decided.status)
        # Revisions some pod still runs are history in use; the rest are pruned to the limit.
        used = {f"{ds['metadata']['name']}-{pod_hash(p)}" for p in pods}
        known = revisions + ([update_rev] if update not in
                             {r["metadata"]["name"] for r in revisions} else [])
        unused = [r for r in known if r["metadata"]["name"] not in used]
        if revisions_to_prune(ds, unused, [], update, update):
            await self._prune(ds, unused, [], update, update)
        if error is not None:
            raise error
        return decided.requeue

    async def _act(self, ds: dict, template_set: dict, update_hash: str, action: Action) -> None:
        ns = ds["metadata"]["namespace"]
        if action.verb == "create":
            pod = new_pod(template_set, action.node, update_hash)
            try:
                created = await self.client.create(
                    self.client.resource_path("", "v1", "pods", ns), pod)
            except StatusError as e:
                self.recorder.record(ds, WARNING, "FailedCreate",
                                     f"Error creating: {e.message}")
                raise
            self.pods.write_through(created)
            self.recorder.record(ds, NORMAL, "SuccessfulCreate",
                                 f"Created pod: {created['metadata']['name']}")
            return
        pod = action.pod
        try:
            if not await self.pods.delete(pod):
                return
        except StatusError as e:
            self.recorder.record(ds, WARNING, "FailedDelete", f"Error deleting: {e.message}")
            raise
        self.recorder.record(ds, NORMAL, "SuccessfulDelete",
                             f"Deleted pod: {pod['metadata']['name']}")
