"""The ReplicaSet controller: keeps spec.replicas Pods of the template, reports status.

Pods belong to a ReplicaSet through a controller ownerReference. Expectations record the
creations and deletions this controller asked for and has not yet seen in its pod cache; while
some are outstanding the ReplicaSet's pods are not counted again, so a lagging cache never leads
to duplicate pods (kube-controller-manager's ControllerExpectations).
"""
from __future__ import annotations

import asyncio
import copy
import logging
import time

from nanokube.api.errors import StatusError
from nanokube.apitime import parse_time
from nanokube.controllers.events import NORMAL, WARNING, EventRecorder
from nanokube.controllers.informer import object_key
from nanokube.controllers.manager import (Controller, controller_ref, get_condition, is_pod_active,
                                          is_pod_available, is_pod_ready, owner_key,
                                          owner_reference)

log = logging.getLogger("nanokube.replicaset")

COMPONENT = "replicaset-controller"
BURST_REPLICAS = 500          # at most this many creations or deletions per sync
EXPECTATIONS_TTL = 60.0       # forget expectations that were never observed (a lost event)


class Expectations:
    """Per controller key: how many creations and deletions are still to be observed."""

    def __init__(self, ttl: float = EXPECTATIONS_TTL, clock=time.monotonic):
        self._pending: dict[str, list] = {}    # key -> [adds, dels, since]
        self.ttl = ttl
        self.clock = clock

    def expect(self, key: str, adds: int = 0, dels: int = 0) -> None:
        self._pending[key] = [adds, dels, self.clock()]

    def creation_observed(self, key: str) -> None:
        if key in self._pending:
            self._pending[key][0] -= 1

    def deletion_observed(self, key: str) -> None:
        if key in self._pending:
            self._pending[key][1] -= 1

    def satisfied(self, key: str) -> bool:
        e = self._pending.get(key)
        if e is None:
            return True
        return (e[0] <= 0 and e[1] <= 0) or self.clock() - e[2] > self.ttl

    def delete(self, key: str) -> None:
        self._pending.pop(key, None)


# ---- pure logic ---------------------------------------------------------------------------------

_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def _deletion_rank(pod: dict) -> tuple:
    """Smaller goes first (ActivePodsWithRanks): unscheduled, pending, not ready, ready for the
    shortest time, most restarts, newest."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    ready = is_pod_ready(pod)
    ready_since = parse_time((get_condition(pod, "Ready") or {}).get("lastTransitionTime")) \
        if ready else None
    restarts = sum(c.get("restartCount") or 0 for c in status.get("containerStatuses") or [])
    created = parse_time(pod["metadata"].get("creationTimestamp")) or 0.0
    return (1 if spec.get("nodeName") else 0, _PHASE_RANK.get(status.get("phase"), 0),
            1 if ready else 0, -(ready_since or 0.0), -restarts, -created)


def pods_to_delete(pods: list[dict], count: int) -> list[dict]:
    return sorted(pods, key=_deletion_rank)[:count]


def replica_set_status(rs: dict, pods: list[dict], now: float) -> dict:
    """calculateStatus over the active pods the ReplicaSet controls. Zero counts are omitted, as
    the Go types' omitempty does."""
    template_labels = ((rs["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}
    min_ready = rs["spec"].get("minReadySeconds") or 0
    status = {
        "replicas": len(pods),
        "fullyLabeledReplicas": sum(
            1 for p in pods
            if all((p["metadata"].get("labels") or {}).get(k) == v
                   for k, v in template_labels.items())),
        "readyReplicas": sum(1 for p in pods if is_pod_ready(p)),
        "availableReplicas": sum(1 for p in pods if is_pod_available(p, min_ready, now)),
        "observedGeneration": rs["metadata"].get("generation", 0),
    }
    status = {k: v for k, v in status.items() if v or k == "replicas"}
    conditions = (rs.get("status") or {}).get("conditions")
    if conditions:
        status["conditions"] = conditions
    return status


def new_pod(rs: dict) -> dict:
    template = rs["spec"].get("template") or {}
    tmeta = template.get("metadata") or {}
    meta = {"generateName": f"{rs['metadata']['name']}-",
            "namespace": rs["metadata"]["namespace"],
            "ownerReferences": [owner_reference(rs, "apps/v1", "ReplicaSet")]}
    for field in ("labels", "annotations"):
        if tmeta.get(field):
            meta[field] = dict(tmeta[field])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": copy.deepcopy(template.get("spec") or {})}


def owned_by(pod: dict, owner: dict) -> bool:
    ref = controller_ref(pod)
    return bool(ref and ref.get("uid") == owner["metadata"]["uid"])


# ---- the controller -----------------------------------------------------------------------------

class ReplicaSetController(Controller):
    name = "replicaset"
    workers = 4

    def __init__(self, client, informers):
        super().__init__(client, informers)
        self.rss = informers.informer("apps", "v1", "replicasets")
        self.pods = informers.pods()
        self.expectations = Expectations()
        self.recorder = EventRecorder(client, COMPONENT)
        self.rss.add_handler(self._on_rs)
        self.pods.add_handler(self._on_pod)

    def _on_rs(self, old: dict | None, new: dict | None) -> None:
        key = object_key(new or old)
        if new is None:
            self.expectations.delete(key)
        self.enqueue(key)

    def _on_pod(self, old: dict | None, new: dict | None) -> None:
        pod = new or old
        key = owner_key(pod, "ReplicaSet")
        if key is None:
            return
        if old is None:
            if pod["metadata"].get("deletionTimestamp"):
                self.expectations.deletion_observed(key)
            else:
                self.expectations.creation_observed(key)
        elif new is None:
            if not old["metadata"].get("deletionTimestamp"):
                self.expectations.deletion_observed(key)
        elif new["metadata"].get("deletionTimestamp") and \
                not old["metadata"].get("deletionTimestamp"):
            self.expectations.deletion_observed(key)
        self.enqueue(key)

    async def reconcile(self, key: str) -> float | None:
        rs = self.rss.get(key)
        if rs is None:
            self.expectations.delete(key)
            return None
        pods = [p for p in self.pods.list(rs["metadata"]["namespace"])
                if owned_by(p, rs) and is_pod_active(p)]
        error = None
        if self.expectations.satisfied(key) and not rs["metadata"].get("deletionTimestamp"):
            try:
                await self._manage_replicas(key, rs, pods)
            except StatusError as e:
                error = e
        now = time.time()
        status = replica_set_status(rs, pods, now)
        if status != (rs.get("status") or {}):
            body = {**rs, "status": status,
                    "metadata": {k: v for k, v in rs["metadata"].items()
                                 if k != "resourceVersion"}}
            ns, name = rs["metadata"]["namespace"], rs["metadata"]["name"]
            updated = await self.client.update(self.client.resource_path(
                "apps", "v1", "replicasets", ns, name, "status"), body)
            self.rss.write_through(updated)
        if error is not None:
            raise error
        min_ready = rs["spec"].get("minReadySeconds") or 0
        if min_ready and status.get("readyReplicas", 0) != status.get("availableReplicas", 0):
            return float(min_ready)
        return None

    async def _manage_replicas(self, key: str, rs: dict, pods: list[dict]) -> None:
        diff = len(pods) - (rs["spec"].get("replicas") or 0)
        ns = rs["metadata"]["namespace"]
        if diff < 0:
            count = min(-diff, BURST_REPLICAS)
            self.expectations.expect(key, adds=count)
            path = self.client.resource_path("", "v1", "pods", ns)
            body = new_pod(rs)
            results = await asyncio.gather(*(self.client.create(path, body)
                                              for _ in range(count)), return_exceptions=True)
            log.info("replicaset %s: created %d pods", key, count)
            self._record_creations(rs, results)
            await self._settle(key, results, self.expectations.creation_observed)
        elif diff > 0:
            victims = pods_to_delete(pods, min(diff, BURST_REPLICAS))
            self.expectations.expect(key, dels=len(victims))
            results = await asyncio.gather(*(self.client.delete(self.client.resource_path(
                "", "v1", "pods", ns, p["metadata"]["name"])) for p in victims),
                return_exceptions=True)
            log.info("replicaset %s: deleted %d pods", key, len(victims))
            self._record_deletions(rs, victims, results)
            await self._settle(key, results, self.expectations.deletion_observed)

    def _record_creations(self, rs: dict, results: list) -> None:
        """RealPodControl's Events: one per pod created, or per failed creation."""
        for r in results:
            if isinstance(r, BaseException):
                self.recorder.record(rs, WARNING, "FailedCreate", f"Error creating: {r}")
            else:
                self.recorder.record(rs, NORMAL, "SuccessfulCreate",
                                     f"Created pod: {r['metadata']['name']}")

    def _record_deletions(self, rs: dict, victims: list[dict], results: list) -> None:
        """A pod already gone is no failure worth an Event."""
        for pod, r in zip(victims, results):
            name = pod["metadata"]["name"]
            if not isinstance(r, BaseException):
                self.recorder.record(rs, NORMAL, "SuccessfulDelete", f"Deleted pod: {name}")
            elif not (isinstance(r, StatusError) and r.code == 404):
                self.recorder.record(rs, WARNING, "FailedDelete", f"Error deleting: {r}")

    @staticmethod
    async def _settle(key: str, results: list, observed) -> None:
        """A write that failed will never be observed: lower the expectation for it."""
        first = None
        for r in results:
            if isinstance(r, BaseException):
                observed(key)
                if not (isinstance(r, StatusError) and r.code == 404):
                    first = first or r
        if first is not None:
            raise first
