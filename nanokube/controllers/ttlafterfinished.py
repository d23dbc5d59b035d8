"""The TTL-after-finished controller (pkg/controller/ttlafterfinished): a Job with
spec.ttlSecondsAfterFinished is deleted that many seconds after it finished (the time of its
Complete or Failed condition), in the foreground, so that its pods go with it through the
garbage collector."""
from __future__ import annotations

import time

from nanokube.api.errors import StatusError
from nanokube.apitime import parse_time
from nanokube.controllers.informer import object_key
from nanokube.controllers.manager import Controller


def finish_time(job: dict) -> float | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return parse_time(cond.get("lastTransitionTime"))
    return None


def time_left(job: dict, now: float) -> float | None:
    """Seconds until the Job is due for deletion (0: now); None when it never is (no TTL,
    not finished, or already being deleted)."""
    ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
    finished = finish_time(job)
    if ttl is None or finished is None or job["metadata"].get("deletionTimestamp"):
        return None
    return max(0.0, finished + ttl - now)


class TTLAfterFinishedController(Controller):
    name = "ttl-after-finished"

    def __init__(self, client, informers):
        super().__init__(client, informers)
        self.jobs = informers.informer("batch", "v1", "jobs")
        self.jobs.add_handler(lambda old, new: new and self.enqueue(object_key(new)))

    async def reconcile(self, key: str) -> float | None:
        job = self.jobs.get(key)
        if job is None:
            return None
        left = time_left(job, time.time())
        if left is None:
            return None
        if left > 0:
            return left
        meta = job["metadata"]
        try:
            await self.client.delete(
                self.client.resource_path("batch", "v1", "jobs", meta["namespace"], meta["name"]),
                {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Foreground",
                 "preconditions": {"uid": meta["uid"]}})
        except StatusError as e:
            if e.code not in (404, 409):
                raise
        return None
