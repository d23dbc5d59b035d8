"""Shared informers: one list+watch per resource into a local cache, with event handlers.

As client-go's reflector + indexer: the informer lists, replaces its cache (telling handlers
what was added, changed or removed meanwhile), then watches from the list's resourceVersion.
A 410 Expired or a broken stream makes it list again. Controllers read only from these caches.
"""
from __future__ import annotations

import asyncio
import logging
import random
from typing import Callable, Iterable

from nanokube.api.errors import StatusError
from nanokube.client import Client

log = logging.getLogger("nanokube.informer")

# handler(old, new): old is None for an add, new is None for a delete.
Handler = Callable[[dict | None, dict | None], None]

WATCH_TIMEOUT_SECONDS = 300     # servers end watches; we simply resume from the last RV


def object_key(obj: dict) -> str:
    """"namespace/name", or "name" for cluster-scoped objects (client-go's MetaNamespaceKey)."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name', '')}" if ns else meta.get("name", "")


def split_key(key: str) -> tuple[str | None, str]:
    ns, _, name = key.rpartition("/")
    return (ns or None), name


def _rv(obj: dict) -> int | None:
    try:
        return int(obj["metadata"]["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return None


class Informer:
    """The cache of one resource (optionally one namespace), kept by list+watch."""

    def __init__(self, client: Client, group: str, version: str, plural: str,
                 namespace: str | None = None):
        self.client = client
        self.path = Client.resource_path(group, version, plural, namespace)
        self.group, self.version, self.plural = group, version, plural
        self._store: dict[str, dict] = {}
        self._by_namespace: dict[str, set[str]] = {}
        self._handlers: list[Handler] = []
        self.synced = asyncio.Event()

    # ---- reading the cache -----------------------------------------------------------------
    def get(self, key: str) -> dict | None:
        return self._store.get(key)

    def list(self, namespace: str | None = None) -> list[dict]:
        if namespace is None:
            return list(self._store.values())
        return [self._store[k] for k in self._by_namespace.get(namespace, ())]

    def keys(self) -> Iterable[str]:
        return list(self._store)

    def add_handler(self, handler: Handler) -> None:
        self._handlers.append(handler)

    # ---- writing the cache -----------------------------------------------------------------
    def _set(self, obj: dict) -> None:
        key = object_key(obj)
        old = self._store.get(key)
        new_rv, old_rv = _rv(obj), (_rv(old) if old else None)
        if old is not None and new_rv is not None and old_rv is not None and new_rv < old_rv:
            return      # an older event than what a controller already wrote through
        self._store[key] = obj
        ns = (obj.get("metadata") or {}).get("namespace")
        if ns:
            self._by_namespace.setdefault(ns, set()).add(key)
        if old is None or old_rv != new_rv:
            self._notify(old, obj)

    def _remove(self, key: str) -> None:
        old = self._store.pop(key, None)
        if old is None:
            return
        ns = (old.get("metadata") or {}).get("namespace")
        if ns and ns in self._by_namespace:
            self._by_namespace[ns].discard(key)
            if not self._by_namespace[ns]:
                del self._by_namespace[ns]
        self._notify(old, None)

    def write_through(self, obj: dict | None, key: str | None = None) -> None:
        """Put what the API answered to our own write into the cache at once, so that the next
        reconcile does not act on a cache that has not seen the watch event yet."""
        if obj is None:
            if key:
                self._remove(key)
            return
        self._set(obj)

    async def update_status(self, obj: dict, status: dict) -> None:
        """Write a status a controller computed through the status subresource, if it changed
        (no resourceVersion: the controller owns status), and cache the answer."""
        if status == (obj.get("status") or {}):
            return
        meta = obj["metadata"]
        body = {**obj, "status": status,
                "metadata": {k: v for k, v in meta.items() if k != "resourceVersion"}}
        self.write_through(await self.client.update(Client.resource_path(
            self.group, self.version, self.plural, meta.get("namespace"), meta["name"],
            "status"), body))

    async def delete(self, obj: dict) -> bool:
        """Delete this very object (a uid precondition: not a namesake made since) and cache
        the answer: still there while it terminates, else gone. False when it was already
        gone or replaced (404, 409); other errors are raised."""
        meta = obj["metadata"]
        try:
            gone = await self.client.delete(Client.resource_path(
                self.group, self.version, self.plural, meta.get("namespace"), meta["name"]),
                {"kind": "DeleteOptions", "apiVersion": "v1",
                 "preconditions": {"uid": meta["uid"]}})
        except StatusError as e:
            if e.code in (404, 409):
                return False
            raise
        if isinstance(gone, dict) and gone.get("kind") != "Status" and \
                (gone.get("metadata") or {}).get("deletionTimestamp"):
            self.write_through(gone)
        else:
            self.write_through(None, object_key(obj))
        return True

    def _notify(self, old: dict | None, new: dict | None) -> None:
        for handler in self._handlers:
            try:
                handler(old, new)
            except Exception:
                log.exception("%s handler failed", self.plural)

    # ---- list + watch ------------------------------------------------------------------------
    def _replace(self, items: list[dict]) -> None:
        fresh = {object_key(o): o for o in items}
        for key in [k for k in self._store if k not in fresh]:
            self._remove(key)
        for obj in items:
            self._set(obj)

    async def run(self) -> None:
        backoff = 0.2
        while True:
            try:
                listing = await self.client.list(self.path)
                self._replace(listing.get("items") or [])
                self.synced.set()
                backoff = 0.2
                await self._watch(listing["metadata"].get("resourceVersion") or "0")
            except asyncio.CancelledError:
                raise
            except StatusError as e:
                if e.code != 410:
                    log.warning("%s: %s; listing again", self.plural, e)
                    await asyncio.sleep(backoff)
            except Exception as e:     # connection lost or refused: list again after a pause
                log.warning("%s: watch broken (%s); listing again", self.plural, e)
                await asyncio.sleep(backoff + random.random() * backoff)
                backoff = min(backoff * 2, 5.0)

    async def _watch(self, rv: str) -> None:
        """Follow the stream; a clean end (timeoutSeconds) resumes from the last seen RV."""
        while True:
            async for event in self.client.watch(self.path, resource_version=rv,
                                                 allowWatchBookmarks="true",
                                                 timeoutSeconds=WATCH_TIMEOUT_SECONDS):
                obj = event.get("object") or {}
                rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
                kind = event.get("type")
                if kind in ("ADDED", "MODIFIED"):
                    self._set(obj)
                elif kind == "DELETED":
                    self._remove(object_key(obj))


class InformerFactory:
    """One informer per (group, version, plural, namespace), shared by every controller."""

    def __init__(self, client: Client):
        self.client = client
        self._informers: dict[tuple, Informer] = {}

    def informer(self, group: str, version: str, plural: str,
                 namespace: str | None = None) -> Informer:
        key = (group, version, plural, namespace)
        if key not in self._informers:
            self._informers[key] = Informer(self.client, group, version, plural, namespace)
        return self._informers[key]

    def pods(self) -> Informer:
        return self.informer("", "v1", "pods")

    def nodes(self) -> Informer:
        return self.informer("", "v1", "nodes")

    def services(self) -> Informer:
        return self.informer("", "v1", "services")

    def all(self) -> list[Informer]:
        return list(self._informers.values())

    async def wait_synced(self) -> None:
        await asyncio.gather(*(i.synced.wait() for i in self.all()))
