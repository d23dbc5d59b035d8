"""Garbage collection through ownerReferences, as kube-controller-manager's garbage collector.

It keeps a graph of owners and dependents from one watch over the whole store, and:
- deletes a dependent once none of its owners exists (background propagation);
- for an owner being deleted in the foreground (finalizer foregroundDeletion), deletes its
  dependents first and then lets the owner go;
- for an owner deleted with orphan propagation (finalizer orphan), removes the ownerReferences
  that point to it and then lets the owner go.
It runs inside the API server process and works on its storages directly.
"""
from __future__ import annotations

import asyncio
import json
import logging

from nanokube.api import errors as E

log = logging.getLogger("nanokube.gc")

PREFIX = "/registry/"


def _parse_key(key: str) -> tuple[str, str, str | None, str]:
    """/registry/<group|core>/<plural>/[<ns>/]<name> -> (group, plural, namespace, name)."""
    parts = key[len(PREFIX):].split("/")
    group = "" if parts[0] == "core" else parts[0]
    if len(parts) == 4:
        return group, parts[1], parts[2], parts[3]
    return group, parts[1], None, parts[2]


class GarbageCollector:
    def __init__(self, server):
        self.server = server
        self.objects: dict[str, dict] = {}      # key -> metadata of every object
        self.by_uid: dict[str, str] = {}        # uid -> key
        self.dependents: dict[str, set[str]] = {}  # owner uid -> dependent keys
        self.queue: asyncio.Queue[str] = asyncio.Queue()

    async def run(self) -> None:
        store = self.server.store
        kvs, rev, _ = await store.list(PREFIX)
        for kv in kvs:
            self._observe(kv.key, json.loads(kv.value)["metadata"])
        for key in list(self.objects):
            self.queue.put_nowait(key)
        worker = asyncio.create_task(self._work())
        try:
            while True:
                try:
                    async for batch in store.watch(PREFIX, rev):
                        for ev in batch:
                            rev = ev.kv.mod_revision
                            self._on_event(ev)
                except Exception:  # a compacted or ended watch: resync from a fresh list
                    log.exception("garbage collector watch ended; resyncing")
                    await asyncio.sleep(1)
                    kvs, rev, _ = await store.list(PREFIX)
                    self.objects.clear(), self.by_uid.clear(), self.dependents.clear()
                    for kv in kvs:
                        self._observe(kv.key, json.loads(kv.value)["metadata"])
                        self.queue.put_nowait(kv.key)
        finally:
            worker.cancel()

    # ---- graph ----------------------------------------------------------------------------
    def _observe(self, key: str, meta: dict) -> None:
        self._forget(key)
        self.objects[key] = meta
        if meta.get("uid"):
            self.by_uid[meta["uid"]] = key
        for ref in meta.get("ownerReferences") or []:
            self.dependents.setdefault(ref.get("uid", ""), set()).add(key)

    def _forget(self, key: str) -> dict | None:
        meta = self.objects.pop(key, None)
        if meta is None:
            return None
        if self.by_uid.get(meta.get("uid")) == key:
            del self.by_uid[meta["uid"]]
        for ref in meta.get("ownerReferences") or []:
            deps = self.dependents.get(ref.get("uid", ""))
            if deps is not None:
                deps.discard(key)
                if not deps:
                    self.dependents.pop(ref.get("uid", ""), None)
        return meta

    def _on_event(self, ev) -> None:
        key = ev.kv.key
        if ev.type == "DELETED":
            meta = self._forget(key) or {}
            for dep in self.dependents.get(meta.get("uid", ""), ()):
                self.queue.put_nowait(dep)
            for ref in meta.get("ownerReferences") or []:
                owner = self.by_uid.get(ref.get("uid", ""))
                if owner:  # a foreground owner may now be free to go
                    self.queue.put_nowait(owner)
            return
        meta = json.loads(ev.kv.value)["metadata"]
        self._observe(key, meta)
        if meta.get("ownerReferences") or meta.get("deletionTimestamp"):
            self.queue.put_nowait(key)

    # ---- decisions ------------------------------------------------------------------------
    async def _work(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                await self._sync(key)
            except E.StatusError as e:
                if e.code not in (404, 409):
                    log.warning("gc of %s: %s", key, e)
            except Exception:
                log.exception("gc of %s failed", key)

    def _storage(self, key: str):
        group, plural, ns, name = _parse_key(key)
        return self.server.storages.get((group, plural)), ns, name

    async def _sync(self, key: str) -> None:
        meta = self.objects.get(key)
        if meta is None:
            return
        finalizers = meta.get("finalizers") or []
        if meta.get("deletionTimestamp") and "orphan" in finalizers:
            await self._orphan_dependents(meta)
            await self._remove_finalizer(key, "orphan")
            return
        if meta.get("deletionTimestamp") and "foregroundDeletion" in finalizers:
            deps = list(self.dependents.get(meta.get("uid", ""), ()))
            if deps:
                for dep in deps:
                    await self._delete(dep, "Foreground")
            else:
                await self._remove_finalizer(key, "foregroundDeletion")
            return
        refs = meta.get("ownerReferences") or []
        if refs and not any(r.get("uid") in self.by_uid and
                            not self._owner_gone(r) for r in refs):
            await self._delete(key, "Background")

    def _owner_gone(self, ref: dict) -> bool:
        owner = self.objects.get(self.by_uid.get(ref.get("uid"), ""), {})
        # An owner being deleted in the foreground still "exists" for its dependents.
        return not owner

    async def _delete(self, key: str, policy: str) -> None:
        storage, ns, name = self._storage(key)
        if storage is None:
            return
        meta = self.objects.get(key, {})
        opts = {"propagationPolicy": policy, "preconditions": {"uid": meta.get("uid")}}
        log.info("deleting %s (owner gone, %s)", key, policy)
        await storage.delete(ns, name, opts)

    async def _orphan_dependents(self, owner_meta: dict) -> None:
        uid = owner_meta.get("uid")
        for dep in list(self.dependents.get(uid, ())):
            storage, ns, name = self._storage(dep)
            if storage is None:
                continue

            def drop(obj: dict) -> dict:
                refs = [r for r in obj["metadata"].get("ownerReferences") or []
                        if r.get("uid") != uid]
                if refs:
                    obj["metadata"]["ownerReferences"] = refs
                else:
                    obj["metadata"].pop("ownerReferences", None)
                return obj
            await storage.guaranteed_update(ns, name, drop)

    async def _remove_finalizer(self, key: str, finalizer: str) -> None:
        storage, ns, name = self._storage(key)
        if storage is None:
            return

        def drop(obj: dict) -> dict:
            rest = [f for f in obj["metadata"].get("finalizers") or [] if f != finalizer]
            if rest:
                obj["metadata"]["finalizers"] = rest
            else:
                obj["metadata"].pop("finalizers", None)
            return obj
        await storage.guaranteed_update(ns, name, drop)
