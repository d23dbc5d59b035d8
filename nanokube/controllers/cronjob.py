"""The CronJob controller (pkg/controller/cronjob, the v2 controller): Jobs on a schedule.

For each CronJob, `plan()` decides from the CronJob, the Jobs it owns and the time:
- status.active is kept to the unfinished Jobs it created; a Job seen finished is dropped from
  it (SawCompletedJob) and a successful one advances status.lastSuccessfulTime;
- a suspended CronJob, or one whose schedule or time zone no longer parses, starts nothing;
- otherwise the most recent schedule time since status.lastScheduleTime (else the creation) is
  due, unless spec.startingDeadlineSeconds has passed since it (MissSchedule). More than 100
  missed times are reported (TooManyMissedTimes) but the most recent one still runs;
- concurrencyPolicy Forbid skips a run while a Job is active (JobAlreadyActive), Replace deletes
  the active Jobs first, Allow runs alongside;
- the Job is named <cronjob>-<schedule time in minutes since the epoch>, so that a run is
  created once however often the controller looks, and carries the annotation
  batch.kubernetes.io/cronjob-scheduled-timestamp;
- finished Jobs beyond successfulJobsHistoryLimit / failedJobsHistoryLimit are deleted, the
  oldest first.
The controller looks again just after the next schedule time.
"""
from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from nanokube.api.errors import StatusError
from nanokube.apitime import parse_time
from nanokube.controllers.events import NORMAL, WARNING, EventRecorder
from nanokube.controllers.informer import object_key
from nanokube.controllers.job import rfc3339
from nanokube.controllers.manager import Controller, controlled_by, owner_key, owner_reference
from nanokube.registry.cronjob import (FORBID, REPLACE, ScheduleError, last_at_or_before,
                                       location, parse_schedule, scheduled_after)
from nanokube.registry.job import has_condition

log = logging.getLogger("nanokube.cronjob")

COMPONENT = "cronjob-controller"
SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"
TOO_MANY_MISSED = 100
NEXT_SCHEDULE_DELTA = 0.1     # look again a little after the schedule time, as Kubernetes does


@dataclass
class Plan:
    status: dict
    create: dict | None = None
    delete: list[dict] = field(default_factory=list)          # Replace: the active Jobs
    prune: list[dict] = field(default_factory=list)           # finished Jobs beyond history
    events: list[tuple[str, str, str]] = field(default_factory=list)
    requeue: float | None = None


# ---- schedule math ------------------------------------------------------------------------------

def most_recent_schedule(schedule, tz, earliest: float, now: float) -> tuple[float | None, int]:
    """The last schedule time in (earliest, now] and how many there were (counting stops just
    past TOO_MANY_MISSED)."""
    recent, missed, t = None, 0, earliest
    while True:
        t = scheduled_after(schedule, t, tz)
        if t > now:
            return recent, missed
        recent, missed = t, missed + 1
        if missed > TOO_MANY_MISSED:
            break
    # Too many to walk: the latest is the activation just before now.
    return last_at_or_before(schedule, tz, recent, now), missed


def job_name(cronjob: dict, scheduled: float) -> str:
    """getJobName: the schedule time in minutes, so that each run has one name."""
    return f"{cronjob['metadata']['name']}-{int(scheduled // 60)}"


def is_finished(job: dict) -> bool:
    return has_condition(job, "Complete") or has_condition(job, "Failed")


def new_job(cronjob: dict, scheduled: float, tz) -> dict:
    """getJobFromTemplate2: the template's labels, annotations and spec, owned by the CronJob."""
    template = cronjob["spec"].get("jobTemplate") or {}
    tmeta = template.get("metadata") or {}
    annotations = dict(tmeta.get("annotations") or {})
    annotations[SCHEDULED_TIMESTAMP] = datetime.fromtimestamp(scheduled, tz).isoformat()
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": job_name(cronjob, scheduled),
                         "namespace": cronjob["metadata"]["namespace"],
                         "labels": dict(tmeta.get("labels") or {}),
                         "annotations": annotations,
                         "ownerReferences": [owner_reference(cronjob, "batch/v1", "CronJob")]},
            "spec": copy.deepcopy(template.get("spec") or {})}


def job_ref(job: dict) -> dict:
    meta = job["metadata"]
    return {"kind": "Job", "apiVersion": "batch/v1", "namespace": meta["namespace"],
            "name": meta["name"], "uid": meta["uid"],
            "resourceVersion": meta.get("resourceVersion", "")}


# ---- the plan -----------------------------------------------------------------------------------

def _track_jobs(cronjob: dict, jobs: list[dict], out: Plan) -> None:
    """Keep status.active to the unfinished Jobs; note finished ones and the last success."""
    status = out.status
    by_uid = {j["metadata"]["uid"]: j for j in jobs}
    active = []
    for ref in status.get("active") or []:
        job = by_uid.get(ref.get("uid"))
        if job is None:
            continue            # deleted: nothing to track
        if is_finished(job):
            reason = "Complete" if has_condition(job, "Complete") else "Failed"
            out.events.append((NORMAL, "SawCompletedJob",
                               f"Saw completed job: {job['metadata']['name']}, "
                               f"condition: {reason}"))
        else:
            active.append(ref)
    for job in jobs:
        if has_condition(job, "Complete"):
            done = (job.get("status") or {}).get("completionTime")
            last = status.get("lastSuccessfulTime")
            if done and (last is None or parse_time(done) > parse_time(last)):
                status["lastSuccessfulTime"] = done
    if active:
        status["active"] = active
    else:
        status.pop("active", None)


def _history(cronjob: dict, jobs: list[dict]) -> list[dict]:
    """cleanupFinishedJobs: the oldest finished Jobs beyond each history limit."""
    spec = cronjob["spec"]
    doomed = []
    for kind, key in (("Complete", "successfulJobsHistoryLimit"),
                      ("Failed", "failedJobsHistoryLimit")):
        limit = spec.get(key)
        if limit is None:
            continue
        done = [j for j in jobs if has_condition(j, kind)
                and not j["metadata"].get("deletionTimestamp")]
        done.sort(key=lambda j: (parse_time((j.get("status") or {}).get("startTime"))
                                 or parse_time(j["metadata"].get("creationTimestamp")) or 0.0,
                                 j["metadata"]["name"]))
        doomed += done[:max(0, len(done) - limit)]
    return doomed


def plan(cronjob: dict, jobs: list[dict], now: float) -> Plan:
    """syncCronJob: what to create, delete and write, and when to look again."""
    spec = cronjob["spec"]
    out = Plan(status=copy.deepcopy(cronjob.get("status") or {}))
    _track_jobs(cronjob, jobs, out)
    out.prune = _history(cronjob, jobs)
    if cronjob["metadata"].get("deletionTimestamp") or spec.get("suspend"):
        return out
    try:
        tz = location(spec.get("timeZone"))
    except Exception:
        out.events.append((WARNING, "UnknownTimeZone",
                           f"invalid timeZone: {spec.get('timeZone')!r}"))
        return out
    try:
        schedule = parse_schedule(spec.get("schedule") or "")
    except ScheduleError as e:
        out.events.append((WARNING, "UnparseableSchedule",
                           f"unparseable schedule: {spec.get('schedule')!r} : {e}"))
        return out
    out.requeue = scheduled_after(schedule, now, tz) - now + NEXT_SCHEDULE_DELTA
    earliest = parse_time(out.status.get("lastScheduleTime")) or \
        parse_time(cronjob["metadata"].get("creationTimestamp")) or now
    deadline = spec.get("startingDeadlineSeconds")
    if deadline is not None:
        earliest = max(earliest, now - deadline)
    scheduled, missed = most_recent_schedule(schedule, tz, earliest, now) \
        if earliest <= now else (None, 0)
    if scheduled is None:
        return out
    if missed > TOO_MANY_MISSED:
        out.events.append((WARNING, "TooManyMissedTimes",
                           "too many missed start times. Set or decrease "
                           ".spec.startingDeadlineSeconds or check clock skew"))
    if deadline is not None and scheduled + deadline < now:
        out.events.append((WARNING, "MissSchedule", f"Missed scheduled time to start a job: "
                           f"{rfc3339(scheduled)}"))
        return out
    name = job_name(cronjob, scheduled)
    if any(j["metadata"]["name"] == name for j in jobs):
        return out          # this run exists already
    active = out.status.get("active") or []
    if spec.get("concurrencyPolicy") == FORBID and active:
        out.events.append((NORMAL, "JobAlreadyActive", "Not starting job because prior "
                           "execution is running and concurrency policy is Forbid"))
        return out
    if spec.get("concurrencyPolicy") == REPLACE:
        uids = {r.get("uid") for r in active}
        out.delete = [j for j in jobs if j["metadata"]["uid"] in uids]
        out.status.pop("active", None)
    out.create = new_job(cronjob, scheduled, tz)
    out.status["lastScheduleTime"] = rfc3339(scheduled)
    return out


# ---- the controller -----------------------------------------------------------------------------

class CronJobController(Controller):
    name = "cronjob"

    def __init__(self, client, informers, clock: Callable[[], float] = time.time):
        super().__init__(client, informers)
        self.clock = clock
        self.cronjobs = informers.informer("batch", "v1", "cronjobs")
        self.jobs = informers.informer("batch", "v1", "jobs")
        self.recorder = EventRecorder(client, COMPONENT)
        self.cronjobs.add_handler(lambda old, new: self.enqueue(object_key(new or old)))
        self.jobs.add_handler(self._on_job)

    def _on_job(self, old: dict | None, new: dict | None) -> None:
        self.enqueue(owner_key(new or old, "CronJob"))

    async def reconcile(self, key: str) -> float | None:
        cronjob = self.cronjobs.get(key)
        if cronjob is None:
            return None
        cronjob = {**cronjob, "apiVersion": "batch/v1", "kind": "CronJob"}
        jobs = controlled_by(self.jobs.list(cronjob["metadata"]["namespace"]), cronjob)
        decided = plan(cronjob, jobs, self.clock())
        for type_, reason, message in decided.events:
            self.recorder.record(cronjob, type_, reason, message)
        for job in decided.delete + decided.prune:
            await self._delete(cronjob, job)
        if decided.create is not None:
            created = await self._create(cronjob, decided.create)
            if created is None:
                decided.status = copy.deepcopy(cronjob.get("status") or {})
            else:
                decided.status["active"] = [*decided.status.get("active", []),
                                            job_ref(created)]
        await self.cronjobs.update_status(cronjob, decided.status)
        return decided.requeue

    async def _create(self, cronjob: dict, job: dict) -> dict | None:
        ns = cronjob["metadata"]["namespace"]
        try:
            created = await self.client.create(
                self.client.resource_path("batch", "v1", "jobs", ns), job)
        except StatusError as e:
            if e.code == 409:   # made by an earlier look; the informer will bring it
                return None
            self.recorder.record(cronjob, WARNING, "FailedCreate",
                                 f"Error creating job: {e.message}")
            raise
        self.jobs.write_through(created)
        self.recorder.record(cronjob, NORMAL, "SuccessfulCreate",
                             f"Created job {created['metadata']['name']}")
        return created

    async def _delete(self, cronjob: dict, job: dict) -> None:
        meta = job["metadata"]
        try:
            await self.client.delete(
                self.client.resource_path("batch", "v1", "jobs", meta["namespace"],
                                          meta["name"]),
                {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background",
                 "preconditions": {"uid": meta["uid"]}})
        except StatusError as e:
            if e.code in (404, 409):
                return
            self.recorder.record(cronjob, WARNING, "FailedDelete",
                                 f"Deleted job {meta['name']}: {e.message}")
            raise
        self.jobs.write_through(None, f"{meta['namespace']}/{meta['name']}")
        self.recorder.record(cronjob, NORMAL, "SuccessfulDelete", f"Deleted job {meta['name']}")
