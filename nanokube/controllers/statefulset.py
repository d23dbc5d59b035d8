"""The StatefulSet controller: pods with a stable identity, made and removed in order.

As kube-controller-manager's (pkg/controller/statefulset):
- pod <set>-<ordinal> for each ordinal in [ordinals.start, ordinals.start + replicas), with
  hostname = its name and subdomain = spec.serviceName, so that the headless Service publishes
  <pod>.<service>.<namespace>.svc records; labels statefulset.kubernetes.io/pod-name,
  apps.kubernetes.io/pod-index and controller-revision-hash;
- OrderedReady: one pod at a time, the next ordinal only once every lower one is Running and
  Ready, scale down from the highest ordinal, nothing while a pod is unhealthy; Parallel: all at
  once;
- revisions are ControllerRevisions named <set>-<hash of the template>; RollingUpdate replaces
  pods of another revision from the highest ordinal down to the partition, one at a time, each
  after the one before is Ready; OnDelete replaces a pod only when it is deleted;
- a pod that was deleted or failed comes back with the same name.

`plan()` decides, from the set and its pods, what to do now; `StatefulSetController` does it.
"""
from __future__ import annotations

import asyncio
import copy
import json
import logging
import re
import time
from dataclasses import dataclass, field

from nanokube.api.errors import StatusError
from nanokube.apitime import parse_time
from nanokube.controllers.events import NORMAL, WARNING, EventRecorder
from nanokube.controllers.informer import object_key
from nanokube.controllers.manager import (Controller, controlled_by, controller_ref, get_condition,
                                          owner_key, owner_reference)

log = logging.getLogger("nanokube.statefulset")

COMPONENT = "statefulset-controller"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
REVISION_LABEL = "controller-revision-hash"

_STATEFUL_POD = re.compile(r"^(.*)-([0-9]+)$")


# ---- identity -----------------------------------------------------------------------------------

def parent_and_ordinal(name: str) -> tuple[str, int]:
    """getParentNameAndOrdinal: ("web", 2) for "web-2"; ("", -1) for a name of another form."""
    m = _STATEFUL_POD.match(name)
    if not m:
        return "", -1
    ordinal = int(m.group(2))
    return (m.group(1), ordinal) if ordinal < 2 ** 31 else ("", -1)


def ordinal_of(pod: dict) -> int:
    return parent_and_ordinal(pod["metadata"]["name"])[1]


def start_ordinal(sts: dict) -> int:
    return ((sts["spec"].get("ordinals") or {}).get("start")) or 0


def pod_name(sts: dict, ordinal: int) -> str:
    return f"{sts['metadata']['name']}-{ordinal}"


def claim_name(claim: dict, sts: dict, ordinal: int) -> str:
    """getPersistentVolumeClaimName: <claim>-<set>-<ordinal>."""
    return f"{(claim.get('metadata') or {}).get('name', '')}-{sts['metadata']['name']}-{ordinal}"


def identity_labels(sts: dict, ordinal: int) -> dict:
    return {POD_NAME_LABEL: pod_name(sts, ordinal), POD_INDEX_LABEL: str(ordinal)}


def identity_matches(sts: dict, pod: dict) -> bool:
    """The pod's name and identity labels are those of its ordinal in this set. (Hostname and
    subdomain are set at creation and a pod's spec cannot change, so they are not repaired.)"""
    parent, ordinal = parent_and_ordinal(pod["metadata"]["name"])
    labels = pod["metadata"].get("labels") or {}
    return (ordinal >= 0 and parent == sts["metadata"]["name"]
            and pod["metadata"].get("namespace") == sts["metadata"]["namespace"]
            and all(labels.get(k) == v for k, v in identity_labels(sts, ordinal).items()))


def pod_revision(pod: dict) -> str:
    return (pod["metadata"].get("labels") or {}).get(REVISION_LABEL, "")


def new_pod(sts: dict, ordinal: int, revision: str) -> dict:
    """newStatefulSetPod from the set's template (the set as of `revision`), labelled with it."""
    template = sts["spec"].get("template") or {}
    tmeta = template.get("metadata") or {}
    name = pod_name(sts, ordinal)
    labels = {**(tmeta.get("labels") or {}), **identity_labels(sts, ordinal),
              REVISION_LABEL: revision}
    meta = {"name": name, "namespace": sts["metadata"]["namespace"], "labels": labels,
            "ownerReferences": [owner_reference(sts, "apps/v1", "StatefulSet")]}
    if tmeta.get("annotations"):
        meta["annotations"] = dict(tmeta["annotations"])
    spec = copy.deepcopy(template.get("spec") or {})
    spec["hostname"] = name
    if sts["spec"].get("serviceName"):
        spec["subdomain"] = sts["spec"]["serviceName"]
    claims = sts["spec"].get("volumeClaimTemplates") or []
    if claims:
        # updateStorage: each claim template becomes a volume of that name, replacing the
        # template's own volume of the same name. (nanokube makes no claim: see the docs.)
        names = {(c.get("metadata") or {}).get("name") for c in claims}
        spec["volumes"] = [{"name": (c.get("metadata") or {}).get("name"),
                            "persistentVolumeClaim": {"claimName": claim_name(c, sts, ordinal)}}
                           for c in claims] + \
            [v for v in spec.get("volumes") or [] if v.get("name") not in names]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


# ---- pod state ----------------------------------------------------------------------------------

def is_created(pod: dict) -> bool:
    """Observed from the API (a pod this sync only means to create has no phase yet)."""
    return bool((pod.get("status") or {}).get("phase"))


def is_terminating(pod: dict) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def is_running_and_ready(pod: dict) -> bool:
    cond = get_condition(pod, "Ready")
    return (pod.get("status") or {}).get("phase") == "Running" and \
        bool(cond and cond.get("status") == "True")


def available_in(pod: dict, min_ready_seconds: int, now: float) -> float:
    """Seconds until the pod has been ready for minReadySeconds (0: available now)."""
    if not min_ready_seconds:
        return 0.0
    since = parse_time((get_condition(pod, "Ready") or {}).get("lastTransitionTime"))
    return 0.0 if since is None else max(0.0, since + min_ready_seconds - now)


def is_healthy(pod: dict) -> bool:
    return is_running_and_ready(pod) and not is_terminating(pod)


# ---- revisions ----------------------------------------------------------------------------------

_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"   # rand.SafeEncodeString: no vowels, no 0/1/3


def safe_encode(text: str) -> str:
    return "".join(_SAFE_ALPHABET[b % len(_SAFE_ALPHABET)] for b in text.encode())


def fnv32(data: bytes) -> int:
    """FNV-1 (hash/fnv.New32), what HashControllerRevision uses."""
    h = 0x811C9DC5
    for b in data:
        h = (h * 0x01000193) & 0xFFFFFFFF
        h ^= b
    return h


def revision_data(sts: dict) -> dict:
    """getPatch: the template, as a strategic merge patch that replaces it wholesale."""
    template = copy.deepcopy(sts["spec"].get("template") or {})
    template["$patch"] = "replace"
    return {"spec": {"template": template}}


def revision_hash(data: dict, collision_count: int = 0) -> str:
    raw = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        raw += str(collision_count).encode()
    return safe_encode(str(fnv32(raw)))


def new_revision(sts: dict, number: int, collision_count: int = 0) -> dict:
    """A ControllerRevision <set>-<hash> holding the set's template (newRevision), owned by the
    set (a StatefulSet or, for the DaemonSet controller, a DaemonSet: its `kind`)."""
    data = revision_data(sts)
    meta = sts["metadata"]
    tmeta = (sts["spec"].get("template") or {}).get("metadata") or {}
    out = {"apiVersion": "apps/v1", "kind": "ControllerRevision",
           "metadata": {"name": f"{meta['name']}-{revision_hash(data, collision_count)}",
                        "namespace": meta["namespace"],
                        "labels": dict(tmeta.get("labels") or {}),
                        # the DaemonSet controller makes its revisions here too
                        "ownerReferences": [owner_reference(sts, "apps/v1",
                                                            sts.get("kind") or "StatefulSet")]},
           "data": data, "revision": number}
    if meta.get("annotations"):       # kubectl rollout history shows the change-cause
        out["metadata"]["annotations"] = dict(meta["annotations"])
    return out


def apply_revision(sts: dict, revision: dict) -> dict:
    """The set as of a revision: its template replaced by the revision's."""
    out = copy.deepcopy(sts)
    template = copy.deepcopy(((revision.get("data") or {}).get("spec") or {}).get("template")
                             or {})
    template.pop("$patch", None)
    out["spec"]["template"] = template
    return out


def sorted_revisions(revisions: list[dict]) -> list[dict]:
    return sorted(revisions, key=lambda r: (r.get("revision") or 0, r["metadata"]["name"]))


def next_revision_number(revisions: list[dict]) -> int:
    return (sorted_revisions(revisions)[-1].get("revision") or 0) + 1 if revisions else 1


def revisions_to_prune(sts: dict, revisions: list[dict], pods: list[dict],
                       current: str, update: str) -> list[dict]:
    """truncateHistory: the oldest revisions no pod uses, beyond revisionHistoryLimit."""
    live = {pod_revision(p) for p in pods} | {current, update}
    history = [r for r in sorted_revisions(revisions) if r["metadata"]["name"] not in live]
    limit = sts["spec"].get("revisionHistoryLimit")
    limit = 10 if limit is None else limit
    return history[:max(0, len(history) - limit)]


# ---- the plan of one sync -----------------------------------------------------------------------

@dataclass
class Action:
    verb: str                # "create", "delete" or "relabel"
    pod: dict
    why: str = ""            # for a delete: "scale", "update", "failed", "succeeded"


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    status: dict = field(default_factory=dict)
    requeue: float | None = None     # look again after this many seconds (minReadySeconds)


def _versioned_pod(sts: dict, current_set: dict, current: str, update: str,
                   ordinal: int) -> dict:
    """newVersionedStatefulSetPod: below the partition a new pod is of the current revision."""
    strategy = sts["spec"].get("updateStrategy") or {}
    if strategy.get("type") == "RollingUpdate":
        rolling = strategy.get("rollingUpdate")
        below = ordinal < start_ordinal(sts) + (
            (rolling.get("partition") or 0) if rolling is not None
            else ((sts.get("status") or {}).get("currentReplicas") or 0))
        if below:
            return new_pod(current_set, ordinal, current)
    return new_pod(sts, ordinal, update)


def replica_status(sts: dict, pods: list[dict], current: str, update: str,
                   now: float, collision_count: int) -> dict:
    """Status from the observed pods, then completeRollingUpdate. Zero counts are left out as
    Go's omitempty does (replicas and availableReplicas are always there)."""
    min_ready = sts["spec"].get("minReadySeconds") or 0
    counts = {"replicas": 0, "readyReplicas": 0, "availableReplicas": 0,
              "currentReplicas": 0, "updatedReplicas": 0}
    for pod in pods:
        counts["replicas"] += 1
        if is_running_and_ready(pod):
            counts["readyReplicas"] += 1
            if available_in(pod, min_ready, now) == 0:
                counts["availableReplicas"] += 1
        if not is_terminating(pod):
            counts["currentReplicas"] += pod_revision(pod) == current
            counts["updatedReplicas"] += pod_revision(pod) == update
    if (sts["spec"].get("updateStrategy") or {}).get("type") == "RollingUpdate" and \
            counts["updatedReplicas"] == counts["replicas"] == counts["readyReplicas"]:
        counts["currentReplicas"], current = counts["updatedReplicas"], update
    status = {"observedGeneration": sts["metadata"].get("generation", 0), **counts,
              "currentRevision": current, "updateRevision": update,
              "collisionCount": collision_count}
    status = {k: v for k, v in status.items()
              if v or k in ("replicas", "availableReplicas", "collisionCount")}
    conditions = (sts.get("status") or {}).get("conditions")
    if conditions:
        status["conditions"] = conditions
    return status


def plan(sts: dict, current_set: dict, current: str, update: str, pods: list[dict],
         now: float | None = None, collision_count: int = 0) -> Plan:
    """What one sync does (updateStatefulSet): `pods` are the set's pods as observed,
    `current_set` the set at its current revision `current`, `update` the update revision."""
    now = time.time() if now is None else now
    spec = sts["spec"]
    count, start = spec.get("replicas") or 0, start_ordinal(sts)
    min_ready = spec.get("minReadySeconds") or 0
    replicas: list[dict | None] = [None] * count
    condemned: list[dict] = []
    for pod in pods:
        ordinal = ordinal_of(pod)
        if start <= ordinal < start + count:
            replicas[ordinal - start] = pod
        elif ordinal >= 0:
            condemned.append(pod)
    observed = [p for p in replicas if p is not None] + condemned
    out = Plan(status=replica_status(sts, observed, current, update, now, collision_count))
    for i, pod in enumerate(replicas):
        if pod is None:
            replicas[i] = _versioned_pod(sts, current_set, current, update, start + i)
    condemned.sort(key=ordinal_of, reverse=True)
    unhealthy = [p for p in replicas + condemned if not is_healthy(p)]   # type: ignore[operator]
    first_unhealthy = unhealthy[0] if unhealthy else None
    if sts["metadata"].get("deletionTimestamp"):
        return out
    monotonic = spec.get("podManagementPolicy") != "Parallel"

    def wait_available(pod: dict) -> bool:
        """Monotonic and the pod not yet available: note when to look again."""
        left = available_in(pod, min_ready, now)
        if left and monotonic:
            out.requeue = left
            return True
        return False

    for i, pod in enumerate(replicas):
        assert pod is not None
        phase = (pod.get("status") or {}).get("phase")
        if is_created(pod) and phase in ("Failed", "Succeeded") and not is_terminating(pod):
            out.actions.append(Action("delete", pod, phase.lower()))
            pod = replicas[i] = _versioned_pod(sts, current_set, current, update, start + i)
        if not is_created(pod):
            out.actions.append(Action("create", pod))
            if monotonic:
                return out
            continue
        if monotonic and (is_terminating(pod) or not is_running_and_ready(pod)):
            return out
        if wait_available(pod):
            return out
        if not identity_matches(sts, pod):
            out.actions.append(Action("relabel", pod))

    for pod in condemned:
        if is_terminating(pod):
            if monotonic:
                return out
            continue
        if monotonic and pod is not first_unhealthy and \
                (not is_running_and_ready(pod) or available_in(pod, min_ready, now)):
            return out
        out.actions.append(Action("delete", pod, "scale"))
        if monotonic:
            return out

    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type") == "OnDelete":
        return out
    partition = (strategy.get("rollingUpdate") or {}).get("partition") or 0
    for target in range(len(replicas) - 1, partition - 1, -1):
        pod = replicas[target]
        assert pod is not None
        if pod_revision(pod) != update and not is_terminating(pod):
            out.actions.append(Action("delete", pod, "update"))
            return out
        if not is_healthy(pod):
            return out
    return out


# ---- the controller -----------------------------------------------------------------------------

class StatefulSetController(Controller):
    name = "statefulset"
    workers = 4

    def __init__(self, client, informers):
        super().__init__(client, informers)
        self.sets = informers.informer("apps", "v1", "statefulsets")
        self.revisions = informers.informer("apps", "v1", "controllerrevisions")
        self.pods = informers.pods()
        self.recorder = EventRecorder(client, COMPONENT)
        self._warned_claims: set[str] = set()     # uids told that no PVC is made
        self.sets.add_handler(lambda old, new: self.enqueue(object_key(new or old)))
        self.pods.add_handler(self._on_owned)
        self.revisions.add_handler(self._on_owned)

    def _on_owned(self, old: dict | None, new: dict | None) -> None:
        self.enqueue(owner_key(new or old, "StatefulSet"))

    def _owned(self, informer, sts: dict) -> list[dict]:
        return controlled_by(informer.list(sts["metadata"]["namespace"]), sts)

    async def reconcile(self, key: str) -> float | None:
        sts = self.sets.get(key)
        if sts is None:
            return None
        sts = {**sts, "apiVersion": "apps/v1", "kind": "StatefulSet"}
        pods = self._owned(self.pods, sts)
        revisions = self._owned(self.revisions, sts)
        collision = (sts.get("status") or {}).get("collisionCount") or 0
        update_rev = await self._update_revision(sts, revisions, collision)
        names = {r["metadata"]["name"]: r for r in revisions}
        current_rev = names.get((sts.get("status") or {}).get("currentRevision") or "",
                                update_rev)
        current, update = current_rev["metadata"]["name"], update_rev["metadata"]["name"]
        await self._warn_about_claims(sts)
        decided = plan(sts, apply_revision(sts, current_rev), current, update, pods,
                       collision_count=collision)
        error = await self._run(sts, decided.actions,
                                sts["spec"].get("podManagementPolicy") == "Parallel")
        await self.sets.update_status(sts, decided.status)
        await self._prune(sts, revisions + ([update_rev] if update not in names else []),
                          pods, current, update)
        if error is not None:
            raise error
        return decided.requeue

    # ---- revisions ----------------------------------------------------------------------------
    async def _update_revision(self, sts: dict, revisions: list[dict], collision: int) -> dict:
        """The revision of the set's template: an equal one (renumbered to be the newest if
        it is not), else a new ControllerRevision (getStatefulSetRevisions)."""
        ordered = sorted_revisions(revisions)
        candidate = new_revision(sts, next_revision_number(ordered), collision)
        equal = [r for r in ordered if r.get("data") == candidate["data"]]
        ns = sts["metadata"]["namespace"]
        if equal:
            found = equal[-1]
            if found is ordered[-1]:
                return found
            path = self.client.resource_path("apps", "v1", "controllerrevisions", ns,
                                             found["metadata"]["name"])
            updated = await self.client.patch(path, {"revision": candidate["revision"]})
            self.revisions.write_through(updated)
            return updated
        path = self.client.resource_path("apps", "v1", "controllerrevisions", ns)
        try:
            created = await self.client.create(path, candidate)
        except StatusError as e:
            if e.code != 409:
                raise
            existing = await self.client.get(f"{path}/{candidate['metadata']['name']}")
            if existing.get("data") == candidate["data"] and \
                    (controller_ref(existing) or {}).get("uid") == sts["metadata"]["uid"]:
                return existing
            # A hash collision: another name next time (collisionCount), as Kubernetes does.
            await self.sets.update_status(sts, {**(sts.get("status") or {}),
                                           "collisionCount": collision + 1})
            raise
        self.revisions.write_through(created)
        return created

    async def _prune(self, sts: dict, revisions: list[dict], pods: list[dict],
                     current: str, update: str) -> None:
        ns = sts["metadata"]["namespace"]
        for rev in revisions_to_prune(sts, revisions, pods, current, update):
            name = rev["metadata"]["name"]
            try:
                await self.client.delete(self.client.resource_path(
                    "apps", "v1", "controllerrevisions", ns, name))
            except StatusError as e:
                if e.code != 404:
                    raise
            self.revisions.write_through(None, f"{ns}/{name}")

    # ---- pods ---------------------------------------------------------------------------------
    async def _run(self, sts: dict, actions: list[Action], parallel: bool) -> Exception | None:
        """Carry out the plan: in order, or (Parallel) all at once; the first error is
        returned after the status is written, so the key is retried with back-off."""
        if parallel:
            results = await asyncio.gather(*(self._act(sts, a) for a in actions),
                                           return_exceptions=True)
            return next((r for r in results if isinstance(r, Exception)), None)
        for action in actions:
            try:
                await self._act(sts, action)
            except StatusError as e:
                return e
        return None

    async def _act(self, sts: dict, action: Action) -> None:
        pod, ns = action.pod, sts["metadata"]["namespace"]
        name = pod["metadata"]["name"]
        set_name = sts["metadata"]["name"]
        if action.verb == "create":
            try:
                created = await self.client.create(
                    self.client.resource_path("", "v1", "pods", ns), pod)
            except StatusError as e:
                if e.code == 409:        # the old pod of that name is still going away
                    return
                self.recorder.record(sts, WARNING, "FailedCreate", f"create Pod {name} in "
                                     f"StatefulSet {set_name} failed error: {e.message}")
                raise
            self.pods.write_through(created)
            self.recorder.record(sts, NORMAL, "SuccessfulCreate",
                                 f"create Pod {name} in StatefulSet {set_name} successful")
        elif action.verb == "delete":
            if action.why == "failed":
                self.recorder.record(sts, WARNING, "RecreatingFailedPod", f"StatefulSet "
                                     f"{ns}/{set_name} is recreating failed Pod {name}")
            elif action.why == "succeeded":
                self.recorder.record(sts, NORMAL, "RecreatingTerminatedPod", f"StatefulSet "
                                     f"{ns}/{set_name} is recreating terminated Pod {name}")
            try:
                if not await self.pods.delete(pod):    # already gone, or replaced meanwhile
                    return
            except StatusError as e:
                self.recorder.record(sts, WARNING, "FailedDelete", f"delete Pod {name} in "
                                     f"StatefulSet {set_name} failed error: {e.message}")
                raise
            self.recorder.record(sts, NORMAL, "SuccessfulDelete",
                                 f"delete Pod {name} in StatefulSet {set_name} successful")
        else:
            labels = identity_labels(sts, ordinal_of(pod))
            updated = await self.client.patch(self.client.resource_path(
                "", "v1", "pods", ns, name), {"metadata": {"labels": labels}})
            self.pods.write_through(updated)
            self.recorder.record(sts, NORMAL, "SuccessfulUpdate",
                                 f"update Pod {name} in StatefulSet {set_name} successful")

    async def _warn_about_claims(self, sts: dict) -> None:
        """nanokube has no volumes: say once per set that its claims are not made."""
        claims = sts["spec"].get("volumeClaimTemplates") or []
        uid = sts["metadata"]["uid"]
        if not claims or uid in self._warned_claims:
            return
        self._warned_claims.add(uid)
        names = ", ".join((c.get("metadata") or {}).get("name", "") for c in claims)
        self.recorder.record(sts, WARNING, "VolumeClaimTemplatesIgnored",
                             f"nanokube has no persistent volumes: no PersistentVolumeClaim "
                             f"is made for volumeClaimTemplates [{names}]; the pods run "
                             f"without them (nothing is mounted)")
