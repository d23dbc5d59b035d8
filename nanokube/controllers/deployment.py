"""The Deployment controller: ReplicaSets per template, rolling updates, Recreate, scaling.

The arithmetic follows kube-controller-manager's deployment controller (rolling.go, sync.go,
recreate.go, deployment/util) so that rollouts advance in the same steps: each reconcile makes
one step (scale the new ReplicaSet up, or old ones down), and the ReplicaSet status changes that
follow bring the Deployment back to the queue for the next one.
"""
from __future__ import annotations

import copy
import json
import logging
import math
import time

from nanokube.api.errors import StatusError
from nanokube.apitime import now_rfc3339, parse_time
from nanokube.controllers.events import NORMAL, WARNING, EventRecorder
from nanokube.controllers.informer import object_key
from nanokube.controllers.manager import (Controller, controller_ref, get_condition, owner_key,
                                          owner_reference)

log = logging.getLogger("nanokube.deployment")

COMPONENT = "deployment-controller"
REVISION = "deployment.kubernetes.io/revision"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
HASH_LABEL = "pod-template-hash"
# Deployment annotations that are not copied to its ReplicaSets (annotationsToSkip).
_SKIP_ANNOTATIONS = {"kubectl.kubernetes.io/last-applied-configuration", REVISION,
                     "deployment.kubernetes.io/revision-history", DESIRED_REPLICAS, MAX_REPLICAS,
                     "deprecated.deployment.rollback.to"}
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


# ---- arithmetic -----------------------------------------------------------------------------------

def scaled_value(value, total: int, round_up: bool) -> int:
    """GetScaledValueFromIntOrPercent: an int as is, "N%" of total rounded up or down."""
    if isinstance(value, str) and value.endswith("%"):
        exact = int(value[:-1]) * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(value or 0)


def _replicas_of(obj: dict | None) -> int:
    return ((obj or {}).get("spec") or {}).get("replicas") or 0


def _is_rolling(d: dict) -> bool:
    return ((d["spec"].get("strategy") or {}).get("type") or "RollingUpdate") == "RollingUpdate"


def resolve_fenceposts(d: dict) -> tuple[int, int]:
    """(maxSurge, maxUnavailable): surge rounds up, unavailable down; never both 0."""
    rolling = (d["spec"].get("strategy") or {}).get("rollingUpdate") or {}
    desired = _replicas_of(d)
    surge = scaled_value(rolling.get("maxSurge", "25%"), desired, True)
    unavailable = scaled_value(rolling.get("maxUnavailable", "25%"), desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_surge(d: dict) -> int:
    return resolve_fenceposts(d)[0] if _is_rolling(d) else 0


def max_unavailable(d: dict) -> int:
    if not _is_rolling(d) or _replicas_of(d) == 0:
        return 0
    return min(resolve_fenceposts(d)[1], _replicas_of(d))


def _available(rs: dict | None) -> int:
    return ((rs or {}).get("status") or {}).get("availableReplicas") or 0


def _created(rs: dict) -> tuple:
    return (parse_time(rs["metadata"].get("creationTimestamp")) or 0.0, rs["metadata"]["name"])


def revision_of(rs: dict) -> int:
    try:
        return int((rs["metadata"].get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def new_rs_new_replicas(d: dict, all_rss: list[dict], new_rs: dict) -> int:
    """NewRSNewReplicas: how far the new ReplicaSet may grow in this step."""
    if not _is_rolling(d):
        return _replicas_of(d)
    current = sum(_replicas_of(rs) for rs in all_rss)
    max_total = _replicas_of(d) + max_surge(d)
    if current >= max_total:
        return _replicas_of(new_rs)
    scale_up = min(max_total - current, _replicas_of(d) - _replicas_of(new_rs))
    return _replicas_of(new_rs) + scale_up


def reconcile_new_replica_set(d: dict, all_rss: list[dict], new_rs: dict) -> int | None:
    """The new ReplicaSet's next size, or None when it stays as it is."""
    want, current = _replicas_of(d), _replicas_of(new_rs)
    if current == want:
        return None
    if current > want:
        return want
    target = new_rs_new_replicas(d, all_rss, new_rs)
    return target if target != current else None


def reconcile_old_replica_sets(d: dict, all_rss: list[dict], old_rss: list[dict],
                               new_rs: dict) -> dict[str, int]:
    """Old ReplicaSets' next sizes: unhealthy replicas go first, then as many available ones as
    maxUnavailable allows (reconcileOldReplicaSets)."""
    if sum(_replicas_of(rs) for rs in old_rss) == 0:
        return {}
    all_count = sum(_replicas_of(rs) for rs in all_rss)
    min_available = _replicas_of(d) - max_unavailable(d)
    new_unavailable = _replicas_of(new_rs) - _available(new_rs)
    max_scaled_down = all_count - min_available - new_unavailable
    if max_scaled_down <= 0:
        return {}
    olds = sorted(old_rss, key=_created)
    sizes = {rs["metadata"]["name"]: _replicas_of(rs) for rs in olds}
    cleaned = 0
    for rs in olds:                                     # cleanupUnhealthyReplicas
        name = rs["metadata"]["name"]
        if cleaned >= max_scaled_down:
            break
        unhealthy = sizes[name] - _available(rs)
        if sizes[name] == 0 or unhealthy <= 0:
            continue
        n = min(max_scaled_down - cleaned, unhealthy)
        sizes[name] -= n
        cleaned += n
    available = sum(_available(rs) for rs in all_rss)   # scaleDownOldReplicaSetsForRollingUpdate
    if available > min_available:
        total, done = available - min_available, 0
        for rs in olds:
            name = rs["metadata"]["name"]
            if done >= total:
                break
            if sizes[name] == 0:
                continue
            n = min(sizes[name], total - done)
            sizes[name] -= n
            done += n
    return {rs["metadata"]["name"]: sizes[rs["metadata"]["name"]] for rs in olds
            if sizes[rs["metadata"]["name"]] != _replicas_of(rs)}


def rolling_step(d: dict, new_rs: dict, old_rss: list[dict]) -> dict[str, int]:
    """rolloutRolling: first the new ReplicaSet grows; when it cannot, old ones shrink."""
    all_rss = [*old_rss, new_rs]
    target = reconcile_new_replica_set(d, all_rss, new_rs)
    if target is not None:
        return {new_rs["metadata"]["name"]: target}
    return reconcile_old_replica_sets(d, all_rss, old_rss, new_rs)


def _active(rss: list[dict]) -> list[dict]:
    return [rs for rs in rss if _replicas_of(rs) > 0]


def _desired_annotation(rs: dict) -> int | None:
    try:
        return int((rs["metadata"].get("annotations") or {})[DESIRED_REPLICAS])
    except (KeyError, ValueError):
        return None


def is_scaling_event(d: dict, rss: list[dict]) -> bool:
    """Some active ReplicaSet was sized for another spec.replicas."""
    for rs in _active(rss):
        desired = _desired_annotation(rs)
        if desired is not None and desired != _replicas_of(d):
            return True
    return False


def _is_saturated(d: dict, rs: dict | None) -> bool:
    return rs is not None and _desired_annotation(rs) == _replicas_of(d) and \
        _available(rs) == _replicas_of(d) and _replicas_of(rs) == _replicas_of(d)


def scale_plan(d: dict, new_rs: dict | None, old_rss: list[dict]) -> dict[str, int]:
    """scale(): the one active ReplicaSet takes spec.replicas; with several, the change is
    shared in proportion to their sizes, leftovers going to the largest."""
    want = _replicas_of(d)
    olds = sorted(old_rss, key=_created, reverse=True)
    active = _active(olds + ([new_rs] if new_rs else []))
    if new_rs is not None or olds:
        if not active:
            target = new_rs if new_rs is not None else olds[0]
        elif len(active) == 1:
            target = active[0]
        else:
            target = None
        if target is not None:
            return {} if _replicas_of(target) == want else {target["metadata"]["name"]: want}
    if _is_saturated(d, new_rs):
        return {rs["metadata"]["name"]: 0 for rs in _active(olds)}
    if not _is_rolling(d):
        return {}
    allowed = want + max_surge(d) if want > 0 else 0
    to_add = allowed - sum(_replicas_of(rs) for rs in active)
    if to_add == 0:
        return {}
    # larger first; among equals the newer first when growing, the older when shrinking
    sign = -1 if to_add > 0 else 1
    active.sort(key=lambda rs: (-_replicas_of(rs), sign * _created(rs)[0]))
    sizes, added = {}, 0
    for rs in active:
        proportion = _proportion(rs, d, to_add, added)
        sizes[rs["metadata"]["name"]] = _replicas_of(rs) + proportion
        added += proportion
    first = active[0]["metadata"]["name"]
    sizes[first] = max(0, sizes[first] + to_add - added)
    return {name: n for name, n in sizes.items()
            if n != _replicas_of(next(rs for rs in active if rs["metadata"]["name"] == name))}


def _proportion(rs: dict, d: dict, to_add: int, added: int) -> int:
    if _replicas_of(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    if _replicas_of(d) == 0:
        fraction = -_replicas_of(rs)
    else:
        try:
            annotated = int((rs["metadata"].get("annotations") or {})[MAX_REPLICAS])
        except (KeyError, ValueError):
            annotated = (d.get("status") or {}).get("replicas") or 0
        size = _replicas_of(rs) * (_replicas_of(d) + max_surge(d)) / annotated if annotated \
            else _replicas_of(rs)
        fraction = int(math.floor(size + 0.5)) - _replicas_of(rs)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


# ---- templates and hashes -------------------------------------------------------------------------

def pod_template_hash(template: dict, collision_count: int | None = None) -> str:
    """A stable FNV-1a hash of the template (and collisionCount), encoded like rand.SafeEncodeString
    so that it is a valid, vowel-free label value."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        data += str(collision_count).encode()
    h = 0x811C9DC5
    for byte in data:
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(_SAFE_ALPHABET[ord(c) % len(_SAFE_ALPHABET)] for c in str(h))


def _without_hash(template: dict) -> dict:
    t = copy.deepcopy(template or {})
    meta = t.get("metadata") or {}
    labels = meta.get("labels") or {}
    labels.pop(HASH_LABEL, None)
    if not labels:
        meta.pop("labels", None)
    if not meta:
        t.pop("metadata", None)
    return t


def equal_ignore_hash(a: dict, b: dict) -> bool:
    return _without_hash(a) == _without_hash(b)


def find_new_replica_set(d: dict, rss: list[dict]) -> dict | None:
    """The oldest ReplicaSet whose template is the Deployment's."""
    for rs in sorted(rss, key=_created):
        if equal_ignore_hash(rs["spec"].get("template") or {}, d["spec"].get("template") or {}):
            return rs
    return None


def new_replica_set(d: dict, old_rss: list[dict], revision: int) -> dict:
    collisions = (d.get("status") or {}).get("collisionCount")
    template = copy.deepcopy(d["spec"].get("template") or {})
    hash_ = pod_template_hash(template, collisions)
    template.setdefault("metadata", {})
    template["metadata"]["labels"] = {**(template["metadata"].get("labels") or {}),
                                      HASH_LABEL: hash_}
    selector = copy.deepcopy(d["spec"].get("selector") or {})
    selector["matchLabels"] = {**(selector.get("matchLabels") or {}), HASH_LABEL: hash_}
    annotations = {k: v for k, v in (d["metadata"].get("annotations") or {}).items()
                   if k not in _SKIP_ANNOTATIONS}
    annotations.update({REVISION: str(revision), DESIRED_REPLICAS: str(_replicas_of(d)),
                        MAX_REPLICAS: str(_replicas_of(d) + max_surge(d))})
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
          "metadata": {"name": f"{d['metadata']['name']}-{hash_}",
                       "namespace": d["metadata"]["namespace"],
                       "labels": dict(template["metadata"]["labels"]),
                       "annotations": annotations,
                       "ownerReferences": [owner_reference(d, "apps/v1", "Deployment")]},
          "spec": {"replicas": 0, "selector": selector, "template": template}}
    if d["spec"].get("minReadySeconds"):
        rs["spec"]["minReadySeconds"] = d["spec"]["minReadySeconds"]
    rs["spec"]["replicas"] = new_rs_new_replicas(d, [*old_rss, rs], rs)
    return rs


def scaling_message(rs_name: str, before: int, after: int) -> str:
    """The deployment controller's ScalingReplicaSet message (since Kubernetes 1.26 it names
    the size before, too)."""
    direction = "up" if after > before else "down"
    return f"Scaled {direction} replica set {rs_name} from {before} to {after}"


# ---- status ---------------------------------------------------------------------------------------

def _condition(kind: str, status: str, reason: str, message: str, now: str) -> dict:
    return {"type": kind, "status": status, "lastUpdateTime": now, "lastTransitionTime": now,
            "reason": reason, "message": message}


def set_condition(status: dict, cond: dict) -> None:
    """SetDeploymentCondition: no change for the same status and reason; a same-status change
    keeps lastTransitionTime."""
    conditions = status.setdefault("conditions", [])
    current = next((c for c in conditions if c.get("type") == cond["type"]), None)
    if current and current.get("status") == cond["status"] and \
            current.get("reason") == cond["reason"]:
        return
    if current and current.get("status") == cond["status"]:
        cond["lastTransitionTime"] = current.get("lastTransitionTime")
    status["conditions"] = [c for c in conditions if c.get("type") != cond["type"]] + [cond]


def deployment_complete(d: dict, status: dict) -> bool:
    want = _replicas_of(d)
    return status.get("updatedReplicas", 0) == want and status.get("replicas", 0) == want \
        and status.get("availableReplicas", 0) == want and \
        status.get("observedGeneration", 0) >= d["metadata"].get("generation", 0)


def _progressing(old: dict, new: dict) -> bool:
    g = lambda s, k: s.get(k) or 0  # noqa: E731
    return g(new, "updatedReplicas") > g(old, "updatedReplicas") or \
        g(new, "replicas") - g(new, "updatedReplicas") < \
        g(old, "replicas") - g(old, "updatedReplicas") or \
        g(new, "readyReplicas") > g(old, "readyReplicas") or \
        g(new, "availableReplicas") > g(old, "availableReplicas")


def _timed_out(d: dict, status: dict, now: float) -> bool:
    cond = get_condition({"status": status}, "Progressing")
    if cond is None or cond.get("reason") == "NewReplicaSetAvailable":
        return False
    if cond.get("reason") == "ProgressDeadlineExceeded":
        return True
    since = parse_time(cond.get("lastUpdateTime"))
    deadline = d["spec"].get("progressDeadlineSeconds")
    return since is not None and deadline is not None and since + deadline < now


def deployment_status(d: dict, all_rss: list[dict], new_rs: dict | None, now: float) -> dict:
    """calculateStatus + syncRolloutStatus's Progressing condition."""
    old_status = d.get("status") or {}
    g = lambda rs, k: ((rs or {}).get("status") or {}).get(k) or 0  # noqa: E731
    available = sum(g(rs, "availableReplicas") for rs in all_rss)
    status = {
        "observedGeneration": d["metadata"].get("generation", 0),
        "replicas": sum(g(rs, "replicas") for rs in all_rss),
        "updatedReplicas": g(new_rs, "replicas"),
        "readyReplicas": sum(g(rs, "readyReplicas") for rs in all_rss),
        "availableReplicas": available,
        "unavailableReplicas": max(0, sum(_replicas_of(rs) for rs in all_rss) - available),
        "collisionCount": old_status.get("collisionCount"),
        "conditions": copy.deepcopy(old_status.get("conditions") or []),
    }
    stamp = now_rfc3339()
    if available >= _replicas_of(d) - max_unavailable(d):
        set_condition(status, _condition("Available", "True", "MinimumReplicasAvailable",
                                         "Deployment has minimum availability.", stamp))
    else:
        set_condition(status, _condition("Available", "False", "MinimumReplicasUnavailable",
                                         "Deployment does not have minimum availability.",
                                         stamp))
    what = f'ReplicaSet "{new_rs["metadata"]["name"]}"' if new_rs else \
        f'Deployment "{d["metadata"]["name"]}"'
    current = get_condition(d, "Progressing")
    complete_before = current is not None and current.get("reason") == "NewReplicaSetAvailable" \
        and status["replicas"] == status["updatedReplicas"]
    if d["spec"].get("progressDeadlineSeconds") is not None and not complete_before:
        if deployment_complete(d, status):
            set_condition(status, _condition("Progressing", "True", "NewReplicaSetAvailable",
                                             f"{what} has successfully progressed.", stamp))
        elif _progressing(old_status, status) or current is None:
            cond = _condition("Progressing", "True", "ReplicaSetUpdated",
                              f"{what} is progressing.", stamp)
            if current is not None and current.get("status") == "True":
                cond["lastTransitionTime"] = current.get("lastTransitionTime")
            status["conditions"] = [c for c in status["conditions"]
                                    if c.get("type") != "Progressing"] + [cond]
        elif _timed_out(d, status, now):
            set_condition(status, _condition("Progressing", "False", "ProgressDeadlineExceeded",
                                             f"{what} has timed out progressing.", stamp))
    return {k: v for k, v in status.items() if v or k in ("replicas",)}


def _same_status(a: dict, b: dict) -> bool:
    """Deep equality, whatever the key order."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def cleanup_candidates(d: dict, old_rss: list[dict]) -> list[dict]:
    """Old, empty ReplicaSets beyond revisionHistoryLimit, oldest revision first."""
    limit = d["spec"].get("revisionHistoryLimit")
    if limit is None:
        return []
    alive = [rs for rs in old_rss if not rs["metadata"].get("deletionTimestamp")]
    diff = len(alive) - limit
    if diff <= 0:
        return []
    alive.sort(key=lambda rs: (revision_of(rs), _created(rs)))
    return [rs for rs in alive[:diff]
            if _replicas_of(rs) == 0 and not (rs.get("status") or {}).get("replicas") and
            rs["metadata"].get("generation", 0) <=
            (rs.get("status") or {}).get("observedGeneration", 0)]


# ---- the controller -------------------------------------------------------------------------------

class DeploymentController(Controller):
    name = "deployment"
    workers = 2

    def __init__(self, client, informers):
        super().__init__(client, informers)
        self.deployments = informers.informer("apps", "v1", "deployments")
        self.rss = informers.informer("apps", "v1", "replicasets")
        self.pods = informers.pods()
        self.recorder = EventRecorder(client, COMPONENT)
        self.deployments.add_handler(lambda old, new: self.enqueue(object_key(new or old)))
        self.rss.add_handler(self._on_rs)
        self.pods.add_handler(self._on_pod)

    def _on_rs(self, old: dict | None, new: dict | None) -> None:
        self.enqueue(owner_key(new or old, "Deployment"))

    def _on_pod(self, old: dict | None, new: dict | None) -> None:
        """Recreate waits for the old pods to be gone: their deletion is news."""
        if new is not None:
            return
        rs_key = owner_key(old, "ReplicaSet")
        rs = self.rss.get(rs_key) if rs_key else None
        if rs is not None:
            self.enqueue(owner_key(rs, "Deployment"))

    def _rs_path(self, ns: str, name: str | None = None, sub: str | None = None) -> str:
        return self.client.resource_path("apps", "v1", "replicasets", ns, name, sub)

    def _d_path(self, ns: str, name: str, sub: str | None = None) -> str:
        return self.client.resource_path("apps", "v1", "deployments", ns, name, sub)

    async def reconcile(self, key: str) -> float | None:
        d = self.deployments.get(key)
        if d is None:
            return None
        ns, uid = d["metadata"]["namespace"], d["metadata"]["uid"]
        rss = [rs for rs in self.rss.list(ns) if (controller_ref(rs) or {}).get("uid") == uid]
        new_rs = find_new_replica_set(d, rss)
        if d["metadata"].get("deletionTimestamp"):
            return await self._sync_status(d, new_rs)
        olds = [rs for rs in rss if rs is not new_rs]
        if new_rs is not None:
            new_rs = await self._sync_revision(d, new_rs, olds)
        if d["spec"].get("paused") or is_scaling_event(d, rss):
            await self._scale_all(d, scale_plan(d, new_rs, olds))
            if d["spec"].get("paused"):
                await self._cleanup(d, olds)
        elif _is_rolling(d):
            if new_rs is None:
                new_rs = await self._create_new_rs(d, olds)
            changes = rolling_step(d, new_rs, olds)
            if changes:
                await self._scale_all(d, changes)
            elif deployment_complete(d, deployment_status(d, [new_rs, *olds], new_rs,
                                                          time.time())):
                await self._cleanup(d, olds)
        else:
            new_rs = await self._recreate(d, new_rs, olds)
        return await self._sync_status(d, new_rs)

    async def _recreate(self, d: dict, new_rs: dict | None, olds: list[dict]) -> dict | None:
        """Recreate: old ReplicaSets to zero, wait for their pods to go, then the new one."""
        if any(_replicas_of(rs) for rs in olds):
            await self._scale_all(d, {rs["metadata"]["name"]: 0 for rs in _active(olds)})
            return new_rs
        old_uids = {rs["metadata"]["uid"] for rs in olds}
        if any((rs.get("status") or {}).get("replicas") for rs in olds) or any(
                (controller_ref(p) or {}).get("uid") in old_uids and
                (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
                for p in self.pods.list(d["metadata"]["namespace"])):
            return new_rs
        if new_rs is None:
            new_rs = await self._create_new_rs(d, olds)
        if _replicas_of(new_rs) != _replicas_of(d):
            await self._scale_all(d, {new_rs["metadata"]["name"]: _replicas_of(d)})
        elif deployment_complete(d, deployment_status(d, [new_rs, *olds], new_rs, time.time())):
            await self._cleanup(d, olds)
        return self.rss.get(object_key(new_rs)) or new_rs

    async def _create_new_rs(self, d: dict, olds: list[dict]) -> dict:
        revision = max([revision_of(rs) for rs in olds] or [0]) + 1
        rs = new_replica_set(d, olds, revision)
        ns = d["metadata"]["namespace"]
        try:
            created = await self.client.create(self._rs_path(ns), rs)
        except StatusError as e:
            if e.code != 409:
                self.recorder.record(d, WARNING, "ReplicaSetCreateError",
                                     f'Failed to create new replica set "{rs["metadata"]["name"]}"'
                                     f": {e}")
                raise
            existing = self.rss.get(f"{ns}/{rs['metadata']['name']}")
            if existing is not None and \
                    (controller_ref(existing) or {}).get("uid") == d["metadata"]["uid"] and \
                    equal_ignore_hash(existing["spec"]["template"], d["spec"]["template"]):
                return existing
            # A hash collision with a foreign ReplicaSet: the next hash includes the count.
            status = dict(d.get("status") or {})
            status["collisionCount"] = (status.get("collisionCount") or 0) + 1
            await self.deployments.update_status(d, status)
            raise
        self.rss.write_through(created)
        if _replicas_of(created):
            self.recorder.record(d, NORMAL, "ScalingReplicaSet",
                                 scaling_message(created["metadata"]["name"], 0,
                                                 _replicas_of(created)))
        log.info("deployment %s: created replicaset %s (%d replicas)", object_key(d),
                 created["metadata"]["name"], _replicas_of(created))
        return created

    async def _sync_revision(self, d: dict, new_rs: dict, olds: list[dict]) -> dict:
        """The new ReplicaSet carries the highest revision (a rollback renumbers an old one);
        the Deployment's revision annotation follows it."""
        revision = max([revision_of(rs) for rs in olds] or [0]) + 1
        ns = d["metadata"]["namespace"]
        if revision_of(new_rs) < revision:
            new_rs = await self.client.patch(
                self._rs_path(ns, new_rs["metadata"]["name"]),
                {"metadata": {"annotations": {REVISION: str(revision)}}})
            self.rss.write_through(new_rs)
        current = str(revision_of(new_rs))
        if (d["metadata"].get("annotations") or {}).get(REVISION) != current:
            updated = await self.client.patch(self._d_path(ns, d["metadata"]["name"]),
                                              {"metadata": {"annotations": {REVISION: current}}})
            self.deployments.write_through(updated)
        return new_rs

    async def _scale_all(self, d: dict, sizes: dict[str, int]) -> None:
        ns = d["metadata"]["namespace"]
        annotations = {DESIRED_REPLICAS: str(_replicas_of(d)),
                       MAX_REPLICAS: str(_replicas_of(d) + max_surge(d))}
        for name, replicas in sizes.items():
            before = _replicas_of(self.rss.get(f"{ns}/{name}"))
            updated = await self.client.patch(self._rs_path(ns, name),
                                              {"metadata": {"annotations": annotations},
                                               "spec": {"replicas": replicas}})
            self.rss.write_through(updated)
            if before != replicas:
                self.recorder.record(d, NORMAL, "ScalingReplicaSet",
                                     scaling_message(name, before, replicas))
            log.info("deployment %s: scaled replicaset %s to %d", object_key(d), name, replicas)

    async def _cleanup(self, d: dict, olds: list[dict]) -> None:
        ns = d["metadata"]["namespace"]
        for rs in cleanup_candidates(d, olds):
            try:
                await self.client.delete(self._rs_path(ns, rs["metadata"]["name"]))
            except StatusError as e:
                if e.code != 404:
                    raise

    async def _sync_status(self, d: dict, new_rs: dict | None) -> float | None:
        d = self.deployments.get(object_key(d)) or d
        uid = d["metadata"]["uid"]
        rss = [rs for rs in self.rss.list(d["metadata"]["namespace"])
               if (controller_ref(rs) or {}).get("uid") == uid]
        new_rs = next((rs for rs in rss if new_rs is not None and
                       rs["metadata"]["uid"] == new_rs["metadata"]["uid"]), new_rs)
        now = time.time()
        status = deployment_status(d, rss, new_rs, now)
        if not _same_status(status, d.get("status") or {}):
            await self.deployments.update_status(d, status)
        deadline = d["spec"].get("progressDeadlineSeconds")
        cond = get_condition({"status": status}, "Progressing")
        if deadline is not None and cond and cond.get("status") == "True" and \
                not deployment_complete(d, status):
            since = parse_time(cond.get("lastUpdateTime")) or now
            return max(1.0, since + deadline - now + 1)
        return None
