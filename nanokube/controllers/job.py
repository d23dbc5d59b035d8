"""The Job controller: pods that run to completion, as kube-controller-manager's
(pkg/controller/job) does it with the defaults of Kubernetes 1.32.

- up to spec.parallelism pods at once until spec.completions pods have succeeded (NonIndexed),
  or until each index 0..completions-1 has a succeeded pod (Indexed: the pod is labelled and
  annotated batch.kubernetes.io/job-completion-index, its containers get JOB_COMPLETION_INDEX
  and its hostname is <job>-<index>); without completions, until one pod has succeeded and
  none is left running;
- a failed pod is replaced after a back-off of 10 s doubling with each failure since the last
  success (at most 10 minutes, MaxJobPodFailureBackOff); more than spec.backoffLimit failed
  pods (or, for restartPolicy OnFailure, as many container restarts) fail the Job with
  BackoffLimitExceeded; running longer than spec.activeDeadlineSeconds with DeadlineExceeded;
- the terminal condition comes in two steps, as 1.32 writes them (JobPodReplacementPolicy and
  JobManagedBy are on by default): SuccessCriteriaMet (or FailureTarget) at once, the running
  pods are deleted, and Complete (or Failed) once none is left;
- spec.suspend deletes the running pods and says so with the Suspended condition.

Counting. Kubernetes puts a finalizer (batch.kubernetes.io/job-tracking) on every pod so that
a finished pod is counted before anything may remove it; it has a pod garbage collector that
deletes terminated pods at will. nanokube has none: a finished pod stays until its Job goes, so
the controller counts the pods it sees and never lets a count go down (status.succeeded and
status.failed only grow). No finalizer means nothing to remove when a pod or the Job is deleted.

`plan()` decides from the Job and its pods; `JobController` carries the plan out.
"""
from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from nanokube.api.errors import StatusError
from nanokube.apitime import parse_time
from nanokube.controllers.events import NORMAL, WARNING, EventRecorder
from nanokube.controllers.informer import object_key
from nanokube.controllers.manager import (Controller, controlled_by, is_pod_ready, owner_key,
                                          owner_reference)
from nanokube.registry.job import COMPLETION_INDEX, INDEXED

log = logging.getLogger("nanokube.job")

COMPONENT = "job-controller"
POD_FAILURE_BACKOFF = 10.0          # DefaultJobPodFailureBackOff
MAX_POD_FAILURE_BACKOFF = 600.0     # MaxJobPodFailureBackOff

COMPLETIONS_REACHED = ("CompletionsReached", "Reached expected number of succeeded pods")
BACKOFF_LIMIT_EXCEEDED = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
DEADLINE_EXCEEDED = ("DeadlineExceeded", "Job was active longer than specified deadline")


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- pods ---------------------------------------------------------------------------------------

def phase(pod: dict) -> str:
    return (pod.get("status") or {}).get("phase") or ""


def is_terminating(pod: dict) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp")) and \
        phase(pod) not in ("Succeeded", "Failed")


def is_active(pod: dict) -> bool:
    return phase(pod) not in ("Succeeded", "Failed") and not pod["metadata"].get(
        "deletionTimestamp")


def completion_index(pod: dict) -> int | None:
    """The pod's index from its annotation (or label); None when it has none."""
    meta = pod["metadata"]
    text = (meta.get("annotations") or {}).get(COMPLETION_INDEX) or \
        (meta.get("labels") or {}).get(COMPLETION_INDEX)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def finished_at(pod: dict) -> float:
    """getFinishedTime: the last container's finish, else the Ready=False transition, else
    the creation."""
    status = pod.get("status") or {}
    times = [parse_time(((c.get("state") or {}).get("terminated") or {}).get("finishedAt"))
             for c in status.get("containerStatuses") or []]
    if times and all(t is not None for t in times):
        return max(times)   # type: ignore[type-var]
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Ready" and cond.get("status") == "False":
            t = parse_time(cond.get("lastTransitionTime"))
            if t is not None:
                return t
    return parse_time(pod["metadata"].get("creationTimestamp")) or 0.0


def restart_count(pod: dict) -> int:
    status = pod.get("status") or {}
    return sum(c.get("restartCount") or 0 for c in
               (status.get("initContainerStatuses") or []) + (status.get("containerStatuses")
                                                              or []))


def new_pod(job: dict, index: int | None = None) -> dict:
    """A pod from the Job's template, owned by it (with its index when Indexed)."""
    template = job["spec"].get("template") or {}
    tmeta = template.get("metadata") or {}
    name = job["metadata"]["name"]
    labels = dict(tmeta.get("labels") or {})
    annotations = dict(tmeta.get("annotations") or {})
    spec = copy.deepcopy(template.get("spec") or {})
    generate = f"{name}-"
    if index is not None:
        generate = f"{name}-{index}-"
        annotations[COMPLETION_INDEX] = str(index)
        labels[COMPLETION_INDEX] = str(index)
        if not spec.get("hostname"):
            spec["hostname"] = f"{name}-{index}"
        env = {"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
            "apiVersion": "v1", "fieldPath": f"metadata.annotations['{COMPLETION_INDEX}']"}}}
        for key in ("initContainers", "containers"):
            for c in spec.get(key) or []:
                if not any(e.get("name") == "JOB_COMPLETION_INDEX" for e in c.get("env") or []):
                    c["env"] = [*(c.get("env") or []), dict(env)]
    meta = {"generateName": generate, "namespace": job["metadata"]["namespace"],
            "labels": labels,
            "ownerReferences": [owner_reference(job, "batch/v1", "Job")]}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


# ---- indexes ------------------------------------------------------------------------------------

def format_indexes(indexes: set[int]) -> str:
    """completedIndexes: "1,3-5,7" (ranges of three or more; a pair is written 1,2)."""
    out, ordered, i = [], sorted(indexes), 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        if j == i:
            out.append(str(ordered[i]))
        elif j == i + 1:
            out += [str(ordered[i]), str(ordered[j])]
        else:
            out.append(f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(out)


def parse_indexes(text: str | None, completions: int) -> set[int]:
    out: set[int] = set()
    for part in (text or "").split(","):
        lo, _, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi or lo)
        except ValueError:
            continue
        out.update(i for i in range(first, last + 1) if 0 <= i < completions)
    return out


# ---- the plan of one sync -----------------------------------------------------------------------

@dataclass
class Plan:
    create: list[dict] = field(default_factory=list)       # pods to create
    delete: list[dict] = field(default_factory=list)       # pods to delete
    status: dict = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)   # (type, reason, message)
    requeue: float | None = None


def get_condition(status: dict, kind: str) -> dict | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == kind:
            return cond
    return None


def is_finished(job: dict) -> bool:
    status = job.get("status") or {}
    return any((get_condition(status, k) or {}).get("status") == "True"
               for k in ("Complete", "Failed"))


def set_condition(status: dict, kind: str, value: str, reason: str, message: str,
                  now: str) -> bool:
    """ensureJobConditionStatus: add or change a condition; False when already so (a False
    condition is never added where there was none)."""
    conditions = status.setdefault("conditions", [])
    cond = get_condition(status, kind)
    if cond is None:
        if value != "True":
            if not conditions:
                status.pop("conditions")
            return False
        conditions.append({"type": kind, "status": value, "lastProbeTime": now,
                           "lastTransitionTime": now, "reason": reason, "message": message})
        return True
    if cond.get("status") == value and cond.get("reason") == reason and \
            cond.get("message") == message:
        return False
    if cond.get("status") != value:
        cond["lastTransitionTime"] = now
    cond.update(status=value, reason=reason, message=message, lastProbeTime=now)
    return True


def pod_failure_backoff(failed: list[dict], succeeded: list[dict], now: float) -> float:
    """Seconds left before a failed pod may be replaced: 10 s doubling with each failure since
    the last success, from the last failure (at most MaxJobPodFailureBackOff)."""
    last_success = max((finished_at(p) for p in succeeded), default=0.0)
    since_success = [finished_at(p) for p in failed if finished_at(p) >= last_success]
    if not since_success:
        return 0.0
    delay = min(POD_FAILURE_BACKOFF * 2 ** (len(since_success) - 1), MAX_POD_FAILURE_BACKOFF)
    return max(0.0, max(since_success) + delay - now)


def _removal_order(pods: list[dict]) -> list[dict]:
    """activePodsForRemoval, simplified: not ready before ready, newest first."""
    return sorted(pods, key=lambda p: (is_pod_ready(p),
                                       -(parse_time(p["metadata"].get("creationTimestamp"))
                                         or 0.0)))


def _failure(job: dict, active: list[dict], now: float, start: float | None) -> tuple | None:
    spec = job["spec"]
    status = job.get("status") or {}
    failed_count = status.get("failed") or 0
    limit = spec.get("backoffLimit")
    limit = 6 if limit is None else limit
    if failed_count > limit:
        return BACKOFF_LIMIT_EXCEEDED
    if ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy") == "OnFailure":
        restarts = sum(restart_count(p) for p in active if phase(p) in ("Running", "Pending"))
        if (restarts > 0) if limit == 0 else (restarts >= limit):
            return BACKOFF_LIMIT_EXCEEDED
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and start is not None and now - start >= deadline:
        return DEADLINE_EXCEEDED
    return None


def plan(job: dict, pods: list[dict], now: float | None = None) -> Plan:
    """What one sync does (syncJob): `pods` are the Job's pods as observed."""
    now = time.time() if now is None else now
    stamp = rfc3339(now)
    spec = job["spec"]
    old = job.get("status") or {}
    status = copy.deepcopy(old)
    out = Plan(status=status)
    if is_finished(job):
        return out
    indexed = spec.get("completionMode") == INDEXED
    completions = spec.get("completions")
    suspended = bool(spec.get("suspend"))
    active = [p for p in pods if is_active(p)]
    terminating = [p for p in pods if is_terminating(p)]
    succeeded = [p for p in pods if phase(p) == "Succeeded"]
    failed = [p for p in pods if phase(p) == "Failed"]

    # Counts never go down: a pod that is gone was counted while it was there.
    status["failed"] = max(old.get("failed") or 0, len(failed))
    if indexed:
        done = parse_indexes(old.get("completedIndexes"), completions or 0)
        done |= {i for p in succeeded if (i := completion_index(p)) is not None
                 and 0 <= i < (completions or 0)}
        status["completedIndexes"] = format_indexes(done)
        status["succeeded"] = len(done)
    else:
        status["succeeded"] = max(old.get("succeeded") or 0, len(succeeded))
    status["uncountedTerminatedPods"] = {}

    # suspend / resume
    if suspended:
        if set_condition(status, "Suspended", "True", "JobSuspended", "Job suspended", stamp):
            out.events.append((NORMAL, "Suspended", "Job suspended"))
        out.delete += active
    else:
        if set_condition(status, "Suspended", "False", "JobResumed", "Job resumed", stamp):
            out.events.append((NORMAL, "Resumed", "Job resumed"))
            status["startTime"] = stamp     # the deadline counts from the resume
        status.setdefault("startTime", stamp)
    start = parse_time(status.get("startTime"))

    # failure, then success
    job_now = {**job, "status": status}
    target = get_condition(status, "FailureTarget")
    reason = (target["reason"], target["message"]) if target and target.get("status") == "True" \
        else None if suspended else _failure(job_now, active, now, start)
    success = get_condition(status, "SuccessCriteriaMet")
    complete = bool(success and success.get("status") == "True")
    if reason is None and not complete and not suspended:
        if indexed or completions is not None:
            complete = status["succeeded"] >= (completions or 0)
        else:
            complete = status["succeeded"] > 0 and not active
    if reason is not None or complete:
        out.delete = active
        if reason is not None:
            set_condition(status, "FailureTarget", "True", *reason, stamp)
        else:
            set_condition(status, "SuccessCriteriaMet", "True", *COMPLETIONS_REACHED, stamp)
        if not active and not terminating:
            if reason is not None:
                set_condition(status, "Failed", "True", *reason, stamp)
                out.events.append((WARNING, *reason))
            else:
                set_condition(status, "Complete", "True", *COMPLETIONS_REACHED, stamp)
                status["completionTime"] = stamp
                out.events.append((NORMAL, "Completed", "Job completed"))
    elif not suspended:
        _manage(job, out, active, terminating, succeeded, failed, now, start)
    left = len(active) - len(out.delete)
    status["active"] = left
    status["ready"] = sum(1 for p in active if is_pod_ready(p) and p not in out.delete)
    status["terminating"] = len(terminating) + len(out.delete)
    return out


def _manage(job: dict, out: Plan, active: list[dict], terminating: list[dict],
            succeeded: list[dict], failed: list[dict], now: float, start: float | None) -> None:
    """manageJob: create or delete pods toward parallelism; note when to look again."""
    spec, status = job["spec"], out.status
    completions, parallelism = spec.get("completions"), spec.get("parallelism") or 0
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and start is not None:
        out.requeue = max(0.0, start + deadline - now)
    if completions is None:
        want = len(active) if status["succeeded"] > 0 else parallelism
    else:
        want = max(0, min(parallelism, completions - status["succeeded"]))
    busy = len(active)
    if spec.get("podReplacementPolicy") == "Failed":
        busy += len(terminating)     # a replacement waits for the pod to be gone
    if len(active) > want:
        out.delete += _removal_order(active)[:len(active) - want]
        return
    slots = want - busy
    if slots <= 0:
        return
    wait = pod_failure_backoff(failed, succeeded, now)
    if wait > 0:
        out.requeue = wait if out.requeue is None else min(out.requeue, wait)
        return
    if spec.get("completionMode") == INDEXED:
        done = parse_indexes(status.get("completedIndexes"), completions or 0)
        taken = {completion_index(p) for p in active}
        if spec.get("podReplacementPolicy") == "Failed":
            taken |= {completion_index(p) for p in terminating}
        free = [i for i in range(completions or 0) if i not in done and i not in taken]
        out.create += [new_pod(job, i) for i in free[:slots]]
    else:
        out.create += [new_pod(job) for _ in range(slots)]


# ---- the controller -----------------------------------------------------------------------------

class JobController(Controller):
    name = "job"
    workers = 4

    def __init__(self, client, informers):
        super().__init__(client, informers)
        self.jobs = informers.informer("batch", "v1", "jobs")
        self.pods = informers.pods()
        self.recorder = EventRecorder(client, COMPONENT)
        self.jobs.add_handler(lambda old, new: self.enqueue(object_key(new or old)))
        self.pods.add_handler(self._on_pod)

    def _on_pod(self, old: dict | None, new: dict | None) -> None:
        self.enqueue(owner_key(new or old, "Job"))

    async def reconcile(self, key: str) -> float | None:
        job = self.jobs.get(key)
        if job is None or job["metadata"].get("deletionTimestamp"):
            return None
        job = {**job, "apiVersion": "batch/v1", "kind": "Job"}
        pods = controlled_by(self.pods.list(job["metadata"]["namespace"]), job)
        decided = plan(job, pods)
        error = await self._delete(job, decided.delete)
        error = await self._create(job, decided.create) or error
        await self.jobs.update_status(job, decided.status)
        for type_, reason, message in decided.events:
            self.recorder.record(job, type_, reason, message)
        if error is not None:
            raise error
        return decided.requeue

    async def _create(self, job: dict, pods: list[dict]) -> Exception | None:
        ns = job["metadata"]["namespace"]
        for pod in pods:
            try:
                created = await self.client.create(
                    self.client.resource_path("", "v1", "pods", ns), pod)
            except StatusError as e:
                self.recorder.record(job, WARNING, "FailedCreate", f"Error creating: {e.message}")
                return e
            self.pods.write_through(created)
            self.recorder.record(job, NORMAL, "SuccessfulCreate",
                                 f"Created pod: {created['metadata']['name']}")
        return None

    async def _delete(self, job: dict, pods: list[dict]) -> Exception | None:
        for pod in pods:
            try:
                if not await self.pods.delete(pod):
                    continue
            except StatusError as e:
                self.recorder.record(job, WARNING, "FailedDelete", f"Error deleting: {e.message}")
                return e
            self.recorder.record(job, NORMAL, "SuccessfulDelete",
                                 f"Deleted pod: {pod['metadata']['name']}")
        return None
