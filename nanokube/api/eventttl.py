"""Events expire, as kube-apiserver's `--event-ttl` (default 1h) makes etcd forget them.

kube-apiserver writes every Event with an etcd lease of the TTL, renewed on each write, so an
Event goes an hour after it last changed. Here one task of the API server (the elected one when
several share a store) deletes, once a minute, the Events last written longer ago than the TTL:
without it a cluster that runs for days keeps every pod's Scheduled/Pulled/Started forever.
"""
from __future__ import annotations

import asyncio
import logging
import time

from nanokube.api import errors as E
from nanokube.apitime import parse_time

log = logging.getLogger("nanokube.eventttl")

DEFAULT_EVENT_TTL = 3600.0
SWEEP_INTERVAL = 60.0
PAGE = 500


def last_written(event: dict) -> float:
    """When the Event last changed: the newest of its own times (a repeat moves lastTimestamp,
    an events.k8s.io series its lastObservedTime), else the server's creationTimestamp; 0 when
    it has none."""
    own = (event.get("lastTimestamp"), event.get("eventTime"),
           (event.get("series") or {}).get("lastObservedTime"))
    times = [t for t in map(parse_time, own) if t is not None]
    if not times:
        times = [parse_time((event.get("metadata") or {}).get("creationTimestamp")) or 0.0]
    return max(times)


class EventTTL:
    def __init__(self, storage, ttl: float = DEFAULT_EVENT_TTL,
                 interval: float = SWEEP_INTERVAL):
        self.storage = storage        # the ResourceStorage of core/v1 events
        self.ttl = ttl
        self.interval = interval

    async def run(self) -> None:
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:                  # noqa: BLE001 - try again next round
                log.exception("expiring events")
            await asyncio.sleep(self.interval)

    async def sweep(self, now: float | None = None) -> int:
        """Delete the Events older than the TTL, a page at a time; returns how many went."""
        deadline = (time.time() if now is None else now) - self.ttl
        gone, after = 0, ""
        while True:
            events, _, more, after = await self.storage.list(None, limit=PAGE,
                                                             start_after=after)
            for event in events:
                if last_written(event) < deadline:
                    gone += await self._delete(event)
            if not more:
                return gone

    async def _delete(self, event: dict) -> int:
        meta = event["metadata"]
        try:
            # only the version we judged: a repeat written meanwhile keeps the Event
            await self.storage.delete(meta.get("namespace"), meta["name"], {
                "preconditions": {"resourceVersion": meta["resourceVersion"]}})
            return 1
        except E.StatusError as e:           # rewritten (409) or deleted (404) meanwhile
            if e.code not in (404, 409):
                raise
            return 0
