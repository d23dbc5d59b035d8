"""Generic registry storage: one `ResourceStorage` per kind, between the REST layer and the store.

It owns what every kind shares in Kubernetes' generic registry: metadata (uid, creationTimestamp,
generation, resourceVersion), the call order of the strategy hooks, compare-and-swap updates,
no-op updates, graceful deletion with finalizers, and watch event shaping with selectors.
Objects are held in the storage version; the REST layer converts for the client.
"""
from __future__ import annotations

import copy
import datetime as dt
import json
import random
import uuid
from typing import AsyncIterator, Callable

from nanokube.api import errors as E
from nanokube.apitime import now_rfc3339
from nanokube.registry.base import Strategy
from nanokube.store import (CompactedError, ConflictError, KeyExistsError, KeyValue,
                            NotFoundError, Store)

_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"   # as utilrand.String: no vowels, no 0/1/3


def encode(obj: dict) -> bytes:
    """Stored form: the object without its resourceVersion (the revision is the version)."""
    meta = obj.get("metadata", {})
    rv = meta.pop("resourceVersion", None)
    try:
        return json.dumps(obj, separators=(",", ":")).encode()
    finally:
        if rv is not None:
            meta["resourceVersion"] = rv


def decode(kv: KeyValue) -> dict:
    obj = json.loads(kv.value)
    obj.setdefault("metadata", {})["resourceVersion"] = str(kv.mod_revision)
    return obj


def _spec_of(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _same_ignoring_rv(a: dict, b: dict) -> bool:
    ma, mb = a.get("metadata", {}), b.get("metadata", {})
    if {k: v for k, v in ma.items() if k != "resourceVersion"} != \
            {k: v for k, v in mb.items() if k != "resourceVersion"}:
        return False
    return {k: v for k, v in a.items() if k != "metadata"} == \
        {k: v for k, v in b.items() if k != "metadata"}


class ResourceStorage:
    def __init__(self, strategy: Strategy, store: Store,
                 namespace_check: Callable | None = None):
        self.strategy = strategy
        self.store = store
        self.namespace_check = namespace_check
        s = strategy
        self.base = f"/registry/{s.group or 'core'}/{s.plural}/"

    # ---- keys -----------------------------------------------------------------------------
    def key(self, namespace: str | None, name: str) -> str:
        if self.strategy.namespaced:
            return f"{self.base}{namespace}/{name}"
        return f"{self.base}{name}"

    def prefix(self, namespace: str | None) -> str:
        if self.strategy.namespaced and namespace:
            return f"{self.base}{namespace}/"
        return self.base

    def _not_found(self, name: str) -> E.StatusError:
        return E.not_found_error(self.strategy.plural, self.strategy.group, name)

    def _conflict(self, name: str) -> E.StatusError:
        return E.conflict_error(self.strategy.plural, self.strategy.group, name)

    def _invalid(self, name: str, errs) -> E.StatusError:
        return E.invalid_error(self.strategy.kind, self.strategy.group, name, errs)

    # ---- reads ----------------------------------------------------------------------------
    async def get(self, namespace: str | None, name: str) -> dict:
        kv = await self.store.get(self.key(namespace, name))
        if kv is None:
            raise self._not_found(name)
        return decode(kv)

    async def list(self, namespace: str | None, revision: int = 0, limit: int = 0,
                   start_after: str = "") -> tuple[list[dict], int, bool, str]:
        """Objects, the list's revision, whether more remain, and the last key returned."""
        try:
            kvs, rev, more = await self.store.list(self.prefix(namespace), revision, limit,
                                                   start_after)
        except CompactedError as e:
            raise E.gone(f"too old resource version: {revision} ({e.compacted})") from None
        return [decode(kv) for kv in kvs], rev, more, (kvs[-1].key if kvs else "")

    async def watch(self, namespace: str | None,
                    after_revision: int) -> AsyncIterator[tuple[str, dict, dict | None]]:
        """(type, object, previous object) in revision order."""
        events = self.store.watch(self.prefix(namespace), after_revision)
        try:
            async for batch in events:
                for ev in batch:
                    prev = decode(ev.prev) if ev.prev is not None else None
                    yield ev.type, decode(ev.kv), prev
        finally:
            await events.aclose()

    # ---- writes ---------------------------------------------------------------------------
    def _type_meta(self, obj: dict) -> None:
        s = self.strategy
        obj["apiVersion"] = f"{s.group}/{s.version}" if s.group else s.version
        obj["kind"] = s.kind

    def _init_meta(self, obj: dict, namespace: str | None) -> dict:
        self._type_meta(obj)
        meta = obj.setdefault("metadata", {})
        if self.strategy.namespaced:
            meta["namespace"] = namespace
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(
                random.choice(_GENERATE_ALPHABET) for _ in range(5))
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        meta.pop("resourceVersion", None)
        meta.pop("deletionTimestamp", None)
        meta.pop("deletionGracePeriodSeconds", None)
        meta.pop("managedFields", None)
        if self.strategy.has_status or "spec" in obj:
            meta["generation"] = 1
        return meta

    async def create(self, namespace: str | None, obj: dict, dry_run: bool = False) -> dict:
        s = self.strategy
        meta = self._init_meta(obj, namespace)
        s.default(obj)
        s.prepare_create(obj)
        errs = s.validate(obj)
        if errs:
            raise self._invalid(meta.get("name", ""), errs)
        if self.namespace_check and s.namespaced:
            await self.namespace_check(namespace)
        txn = await s.allocate_create(obj, dry_run)
        if dry_run:
            txn.rollback()
            return obj
        try:
            kv = await self.store.create(self.key(namespace, meta["name"]), encode(obj))
        except KeyExistsError:
            txn.rollback()
            raise E.already_exists_error(s.plural, s.group, meta["name"]) from None
        except BaseException:
            txn.rollback()
            raise
        txn.commit()
        meta["resourceVersion"] = str(kv.mod_revision)
        return obj

    async def update(self, namespace: str | None, name: str, obj: dict,
                     subresource: str = "", old: dict | None = None,
                     dry_run: bool = False) -> dict:
        """PUT semantics: CAS on metadata.resourceVersion when the client set it."""
        s = self.strategy
        if old is None:
            old = await self.get(namespace, name)
        meta = obj.setdefault("metadata", {})
        if meta.get("name", name) != name:
            raise E.bad_request(f'the name of the object ({meta.get("name")}) does not match '
                                f"the name on the URL ({name})")
        want_rv = meta.get("resourceVersion") or ""
        if want_rv and want_rv != old["metadata"]["resourceVersion"]:
            raise self._conflict(name)
        self._type_meta(obj)
        self._carry_meta(obj, old)
        if subresource == "binding":
            pass  # the scheduler's assignment: built from the old object by bind()
        elif subresource == "status":
            s.prepare_status_update(obj, old)
        elif subresource == "finalize":
            # Namespaces' /finalize changes spec.finalizers and nothing else.
            finalizers = (obj.get("spec") or {}).get("finalizers") or []
            obj.clear()
            obj.update(copy.deepcopy(old))
            obj.setdefault("spec", {})["finalizers"] = finalizers
        else:
            s.default(obj)
            s.prepare_update(obj, old)
            if _spec_of(obj) != _spec_of(old):
                meta["generation"] = old["metadata"].get("generation", 0) + 1
        errs = s.validate_update(obj, old) if subresource != "binding" else []
        if errs:
            raise self._invalid(name, errs)
        if _same_ignoring_rv(obj, old):
            return old
        if self._finalized(obj):
            return await self._delete_now(namespace, name, old)
        txn = (await s.allocate_update(obj, old, dry_run)
               if subresource in ("", "finalize") else None)
        if dry_run:
            if txn:
                txn.rollback()
            return obj
        try:
            kv = await self.store.update(self.key(namespace, name), encode(obj),
                                         int(old["metadata"]["resourceVersion"]))
        except ConflictError:
            if txn:
                txn.rollback()
            raise self._conflict(name) from None
        except NotFoundError:
            if txn:
                txn.rollback()
            raise self._not_found(name) from None
        except BaseException:
            if txn:
                txn.rollback()
            raise
        if txn:
            txn.commit()
        meta["resourceVersion"] = str(kv.mod_revision)
        return obj

    @staticmethod
    def _carry_meta(obj: dict, old: dict) -> None:
        """Fields of metadata clients cannot change."""
        meta, old_meta = obj["metadata"], old["metadata"]
        for k in ("uid", "creationTimestamp", "generation", "deletionTimestamp",
                  "deletionGracePeriodSeconds"):
            if k in old_meta:
                meta[k] = old_meta[k]
            else:
                meta.pop(k, None)
        meta["name"] = old_meta["name"]
        if "namespace" in old_meta:
            meta["namespace"] = old_meta["namespace"]
        meta["resourceVersion"] = old_meta["resourceVersion"]
        meta.pop("managedFields", None)

    def _finalizers(self, obj: dict) -> list[str]:
        """What blocks deletion: metadata.finalizers, and a Namespace's spec.finalizers."""
        spec = obj.get("spec") if self.strategy.kind == "Namespace" else None
        return list(obj["metadata"].get("finalizers") or []) + \
            list((spec or {}).get("finalizers") or [])

    def _finalized(self, obj: dict) -> bool:
        return bool(obj["metadata"].get("deletionTimestamp")) and not self._finalizers(obj)

    async def guaranteed_update(self, namespace: str | None, name: str,
                                mutate: Callable[[dict], dict], subresource: str = "",
                                dry_run: bool = False, retries: int = 5) -> dict:
        """Read-modify-write with retries on conflict (PATCH, controllers)."""
        for attempt in range(retries):
            old = await self.get(namespace, name)
            new = mutate(copy.deepcopy(old))
            new.setdefault("metadata", {})["resourceVersion"] = old["metadata"]["resourceVersion"]
            try:
                return await self.update(namespace, name, new, subresource, old=old,
                                         dry_run=dry_run)
            except E.StatusError as e:
                if e.code != 409 or e.reason != "Conflict" or attempt == retries - 1:
                    raise
        raise self._conflict(name)

    async def delete(self, namespace: str | None, name: str, options: dict | None = None,
                     dry_run: bool = False) -> tuple[dict, bool]:
        """Returns (object, deleted now). Objects with finalizers, and Foreground deletion, are
        only marked with deletionTimestamp and removed once their finalizers are gone."""
        options = options or {}
        old = await self.get(namespace, name)
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != old["metadata"].get("uid"):
            raise self._conflict(name)
        if pre.get("resourceVersion") and pre["resourceVersion"] != old["metadata"]["resourceVersion"]:
            raise self._conflict(name)
        finalizers = list(old["metadata"].get("finalizers") or [])
        blocked = bool(self._finalizers(old))
        policy = options.get("propagationPolicy") or ""
        if options.get("orphanDependents") is True:
            policy = "Orphan"
        if policy == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        if policy == "Orphan" and "orphan" not in finalizers:
            finalizers.append("orphan")
        grace = self.strategy.deletion_grace_seconds(old, options)
        if grace > 0 and not dry_run:
            marked = await self._mark_graceful(namespace, name, old, grace)
            if marked is not None:
                return marked, False
        elif finalizers or blocked:
            if old["metadata"].get("deletionTimestamp"):
                return old, False
            if dry_run:
                return old, False
            marked = copy.deepcopy(old)
            if finalizers:
                marked["metadata"]["finalizers"] = finalizers
            if self.strategy.kind == "Namespace":
                marked.setdefault("status", {})["phase"] = "Terminating"
            marked["metadata"]["deletionTimestamp"] = now_rfc3339()
            marked["metadata"]["deletionGracePeriodSeconds"] = 0
            kv = await self.store.update(self.key(namespace, name), encode(marked),
                                         int(old["metadata"]["resourceVersion"]))
            marked["metadata"]["resourceVersion"] = str(kv.mod_revision)
            return marked, False
        if dry_run:
            return old, True
        return await self._delete_now(namespace, name, old), True

    async def _mark_graceful(self, namespace, name, old: dict, grace: int) -> dict | None:
        """Graceful deletion (pods on a node): deletionTimestamp now + grace; the node agent
        stops the pod and then deletes it with a grace period of 0."""
        meta = old["metadata"]
        if meta.get("deletionTimestamp") and meta.get("deletionGracePeriodSeconds", 0) <= grace:
            return old
        marked = copy.deepcopy(old)
        deadline = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=grace)
        marked["metadata"]["deletionTimestamp"] = deadline.strftime("%Y-%m-%dT%H:%M:%SZ")
        marked["metadata"]["deletionGracePeriodSeconds"] = grace
        kv = await self.store.update(self.key(namespace, name), encode(marked),
                                     int(meta["resourceVersion"]))
        marked["metadata"]["resourceVersion"] = str(kv.mod_revision)
        return marked

    async def _delete_now(self, namespace: str | None, name: str, old: dict) -> dict:
        try:
            kv = await self.store.delete(self.key(namespace, name),
                                         int(old["metadata"]["resourceVersion"]))
        except NotFoundError:
            raise self._not_found(name) from None
        except ConflictError:
            raise self._conflict(name) from None
        self.strategy.begin_delete(old).commit()
        gone = decode(kv)
        return gone
