"""Recording core/v1 Events about objects, as client-go's EventRecorder does.

An Event is named <object name>.<hex nanoseconds>, lives in the object's namespace (default for
cluster-scoped objects) and says which component reported it. A repeat of the same event
(same object and field path, type, reason and message) bumps the count and lastTimestamp of the
Event already written instead of creating another one (client-go's EventCorrelator, simplified).

Events are best effort. `record()` never waits: it puts the Event on a small bounded queue that
one task per recorder writes out, one at a time, and that forgets the oldest Event when it is
full (client-go's broadcaster likewise queues a bounded number and drops the rest), so a slow or
absent API server never holds up a pod's start or a controller's sync. `event()` writes at once
and is for callers that want the written Event back.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

from nanokube.api.errors import StatusError
from nanokube.apitime import now_rfc3339
from nanokube.client import Client

log = logging.getLogger("nanokube.events")

NORMAL = "Normal"
WARNING = "Warning"
MAX_REMEMBERED = 4096     # repeats remembered for aggregation (oldest forgotten first)
MAX_QUEUED = 1000         # Events waiting to be written (client-go: maxQueuedEvents = 1000)


def involved_object(obj: dict, field_path: str = "") -> dict:
    meta = obj.get("metadata") or {}
    ref = {"kind": obj.get("kind", ""), "name": meta.get("name", ""),
           "apiVersion": obj.get("apiVersion", ""), "uid": meta.get("uid", ""),
           "resourceVersion": meta.get("resourceVersion", "")}
    if meta.get("namespace"):
        ref["namespace"] = meta["namespace"]
    if field_path:
        ref["fieldPath"] = field_path
    return ref


def node_reference(node_name: str) -> dict:
    """The kubelet and the node controller refer to a Node with its name as uid (kubectl
    describe node looks its Events up that way)."""
    return {"kind": "Node", "metadata": {"name": node_name, "uid": node_name}}


def container_field_path(container: str) -> str:
    return f"spec.containers{{{container}}}"


class EventRecorder:
    def __init__(self, client: Client, component: str, host: str = "",
                 max_queued: int = MAX_QUEUED):
        self.client = client
        self.component = component
        self.host = host
        # (uid, fieldPath, type, reason, message) -> (namespace, event name, count)
        self._seen: dict[tuple, tuple[str, str, int]] = {}
        self._queue: deque[tuple] = deque(maxlen=max_queued)
        self._writer: asyncio.Task | None = None
        self.dropped = 0

    def record(self, obj: dict, type_: str, reason: str, message: str,
               field_path: str = "") -> None:
        """Queue an Event and return at once (client-go's Eventf)."""
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
            log.debug("event queue of %s full: dropping the oldest Event", self.component)
        self._queue.append((involved_object(obj, field_path), type_, reason, message,
                            now_rfc3339()))
        if self._writer is None or self._writer.done():
            try:
                self._writer = asyncio.get_running_loop().create_task(self._write_queued())
            except RuntimeError:        # no loop (a synchronous caller): nothing can write
                self._queue.clear()

    async def flush(self) -> None:
        """Wait until the queued Events are written (tests; shutting down)."""
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)

    async def _write_queued(self) -> None:
        while self._queue:
            ref, type_, reason, message, when = self._queue.popleft()
            try:
                await self._record(ref, type_, reason, message, when)
            except Exception as e:       # noqa: BLE001 - best effort: log and go on
                log.warning("event %s %s on %s: %s", type_, reason, ref.get("name"), e)

    async def event(self, obj: dict, type_: str, reason: str, message: str) -> dict | None:
        """Record an Event now; errors are logged, never raised (events are best effort)."""
        try:
            return await self._record(involved_object(obj), type_, reason, message,
                                      now_rfc3339())
        except Exception as e:       # noqa: BLE001 - an Event must never break a controller
            log.warning("event %s %s on %s: %s", type_, reason,
                        (obj.get("metadata") or {}).get("name"), e)
            return None

    async def _record(self, ref: dict, type_: str, reason: str, message: str,
                      now: str) -> dict:
        namespace = ref.get("namespace") or "default"
        key = (ref["uid"] or f"{namespace}/{ref['name']}", ref.get("fieldPath", ""), type_,
               reason, message)
        seen = self._seen.get(key)
        if seen is not None:
            ns, name, count = seen
            path = Client.resource_path("", "v1", "events", ns, name)
            try:
                event = await self.client.patch(path, {"count": count + 1, "lastTimestamp": now})
                self._remember(key, (ns, name, count + 1))
                return event
            except StatusError as e:
                if e.code != 404:
                    raise
        name = f"{ref['name']}.{time.time_ns():x}"
        body = {"apiVersion": "v1", "kind": "Event",
                "metadata": {"name": name, "namespace": namespace},
                "involvedObject": ref, "reason": reason, "message": message, "type": type_,
                "source": {"component": self.component, **({"host": self.host}
                                                           if self.host else {})},
                "firstTimestamp": now, "lastTimestamp": now, "count": 1,
                "reportingComponent": self.component, "reportingInstance": self.host}
        event = await self.client.create(Client.resource_path("", "v1", "events", namespace),
                                         body)
        self._remember(key, (namespace, name, 1))
        return event

    def _remember(self, key: tuple, value: tuple) -> None:
        self._seen.pop(key, None)
        self._seen[key] = value
        while len(self._seen) > MAX_REMEMBERED:
            self._seen.pop(next(iter(self._seen)))
