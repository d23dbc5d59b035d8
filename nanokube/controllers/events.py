"""Recording core/v1 Events about objects, as client-go's EventRecorder does.

An Event is named <object name>.<hex nanoseconds>, lives in the object's namespace (default for
cluster-scoped objects) and says which component reported it. A repeat of the same event
(same object, type, reason and message) bumps the count and lastTimestamp of the Event already
written instead of creating another one (client-go's EventCorrelator, simplified).
"""
from __future__ import annotations

import logging
import time

from nanokube.api.errors import StatusError
from nanokube.apitime import now_rfc3339
from nanokube.client import Client

log = logging.getLogger("nanokube.events")

NORMAL = "Normal"
WARNING = "Warning"
MAX_REMEMBERED = 4096     # repeats remembered for aggregation (oldest forgotten first)


def involved_object(obj: dict) -> dict:
    meta = obj.get("metadata") or {}
    ref = {"kind": obj.get("kind", ""), "name": meta.get("name", ""),
           "apiVersion": obj.get("apiVersion", ""), "uid": meta.get("uid", ""),
           "resourceVersion": meta.get("resourceVersion", "")}
    if meta.get("namespace"):
        ref["namespace"] = meta["namespace"]
    return ref


class EventRecorder:
    def __init__(self, client: Client, component: str, host: str = ""):
        self.client = client
        self.component = component
        self.host = host
        # (uid, type, reason, message) -> (namespace, event name, count)
        self._seen: dict[tuple, tuple[str, str, int]] = {}

    async def event(self, obj: dict, type_: str, reason: str, message: str) -> dict | None:
        """Record an Event; errors are logged, never raised (events are best effort)."""
        try:
            return await self._record(obj, type_, reason, message)
        except Exception as e:       # noqa: BLE001 - an Event must never break a controller
            log.warning("event %s %s on %s: %s", type_, reason,
                        (obj.get("metadata") or {}).get("name"), e)
            return None

    async def _record(self, obj: dict, type_: str, reason: str, message: str) -> dict:
        ref = involved_object(obj)
        namespace = ref.get("namespace") or "default"
        key = (ref["uid"] or f"{namespace}/{ref['name']}", type_, reason, message)
        now = now_rfc3339()
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
