"""Allocations shared by several API servers on one store (etcd): a claim key per value.

The in-process bitmaps (ClusterIPAllocator, NodePortAllocator) stay what picks a value, but on a
shared store a value is only ours once its claim key is created, and `create` is a
compare-and-swap on the key's absence, so two API servers can never both hold one value. This is
Kubernetes' newer ClusterIP model (KEP-1880: one IPAddress object per allocated address,
created exclusively), applied to NodePorts as well:

    /nanokube/allocations/clusterips/<ip>    -> {"namespace", "name", "uid"} of the Service
    /nanokube/allocations/nodeports/<port>   -> the same

The keys live outside /registry/, so no list, watch or garbage collector of objects sees them.
A claim that loses the race marks the value taken in the local bitmap and the allocation is
done again from the Service as it was sent. Claims of values a Service no longer holds are
deleted after the write commits (owner uid checked, by compare-and-swap), claims of a failed
write after its rollback. A watch on the claims keeps each server's bitmaps close to the union
of all claims, so races stay rare, and a repair loop (as kube-apiserver's ClusterIP and NodePort
repair controllers) creates claims missing for stored Services (after `nanokube migrate`) and
deletes claims no Service has held for two rounds (a server that died between claim and write).
"""
from __future__ import annotations

import asyncio
import copy
import json
import logging
from typing import Callable

from nanokube.allocators.clusterip import AllocationError, family_of
from nanokube.allocators.service import (NONE, ServiceAllocators, is_headless,
                                         needs_cluster_ip, needs_health_check, node_ports_of)
from nanokube.api import errors as E
from nanokube.registry.base import Txn
from nanokube.store import (DELETED, CompactedError, ConflictError, KeyExistsError,
                            NotFoundError, Store, StoreError)

log = logging.getLogger(__name__)

PREFIX = "/nanokube/allocations/"
SERVICES = "/registry/core/services/"
MAX_RACES = 20


def held_values(svc: dict | None) -> set[str]:
    """What a stored Service holds: "clusterips/<ip>" and "nodeports/<port>" names."""
    if not svc:
        return set()
    spec = svc.get("spec") or {}
    held = set()
    if needs_cluster_ip(svc) and not is_headless(svc):
        held |= {f"clusterips/{ip}" for ip in spec.get("clusterIPs") or [] if ip and ip != NONE}
    held |= {f"nodeports/{port}" for port in node_ports_of(svc)}
    if needs_health_check(svc) and spec.get("healthCheckNodePort"):
        held.add(f"nodeports/{spec['healthCheckNodePort']}")
    return held


def owner_of(svc: dict) -> dict:
    meta = svc.get("metadata") or {}
    return {"namespace": meta.get("namespace", ""), "name": meta.get("name", ""),
            "uid": meta.get("uid", "")}


class SharedAllocations:
    """The claims of one API server's ServiceAllocators on a shared store."""

    def __init__(self, store: Store, allocators: ServiceAllocators,
                 repair_interval: float = 180.0):
        self.store = store
        self.allocators = allocators
        self.repair_interval = repair_interval
        self._tasks: set[asyncio.Task] = set()
        self._suspects: set[str] = set()    # claims seen without a Service in the last repair

    # ---- the local bitmaps ----------------------------------------------------------------
    def mark(self, value: str, taken: bool) -> None:
        """Record in the bitmaps that `value` is (or no longer is) claimed somewhere."""
        kind, _, text = value.partition("/")
        try:
            if kind == "clusterips":
                allocator = self.allocators.ip_allocators.get(family_of(text))
                if allocator is None or not allocator.contains(text):
                    return
                if not taken:
                    allocator.release(text)
                elif not allocator.has(text):
                    allocator.allocate(text)
            elif kind == "nodeports":
                ports, port = self.allocators.node_ports, int(text)
                if not ports.range.contains(port):
                    return
                if not taken:
                    ports.release(port)
                elif not ports.has(port):
                    ports.allocate(port)
        except (AllocationError, ValueError):
            pass

    # ---- claims ---------------------------------------------------------------------------
    async def _claim(self, values: set[str], owner: dict) -> list[str]:
        """Claim every value; if one is taken, give back the others and return the taken."""
        body = json.dumps(owner, separators=(",", ":")).encode()
        claimed, raced = [], []
        try:
            for value in sorted(values):
                try:
                    await self.store.create(PREFIX + value, body)
                    claimed.append(value)
                except KeyExistsError:
                    raced.append(value)
        except BaseException:
            self._release_later(claimed, owner["uid"])
            raise
        if raced:
            self._release_later(claimed, owner["uid"])
        return raced

    async def allocate(self, obj: dict, old: dict | None, begin: Callable[[], Txn]) -> Txn:
        """begin() (the in-process allocation, filling `obj`), then the claims of what it
        newly holds; on a lost race, again from `obj` as it was."""
        sent = copy.deepcopy(obj)
        before = held_values(old)
        for _ in range(MAX_RACES):
            txn = begin()
            wanted = held_values(obj) - before
            raced = await self._claim(wanted, owner_of(obj)) if wanted else []
            if not raced:
                return ClaimsTxn(self, txn, obj, claimed=wanted, released=before - held_values(obj))
            txn.rollback()
            for value in raced:
                self.mark(value, True)
            obj.clear()
            obj.update(copy.deepcopy(sent))
        raise E.internal_error("failed to allocate: too many concurrent allocations, try again")

    def release_all(self, txn: Txn, svc: dict) -> Txn:
        """The delete of a Service: its claims go once the delete is committed."""
        return ClaimsTxn(self, txn, svc, claimed=set(), released=held_values(svc))

    def _release_later(self, values, uid: str) -> None:
        if not values:
            return
        task = asyncio.get_running_loop().create_task(self._release(list(values), uid))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _release(self, values: list[str], uid: str) -> None:
        for value in values:
            try:
                kv = await self.store.get(PREFIX + value)
                if kv is not None and json.loads(kv.value).get("uid") == uid:
                    await self.store.delete(PREFIX + value, kv.mod_revision)
            except (NotFoundError, ConflictError):
                pass   # gone, or claimed anew by someone else: not ours to delete
            except (StoreError, OSError):
                log.exception("releasing claim %s failed (the repair loop will)", value)

    # ---- keeping the bitmaps in step, and repair ----------------------------------------------
    async def start(self) -> None:
        """Mark every claim taken, claim what stored Services hold without a claim, then follow
        the claims and repair periodically."""
        kvs, rev, _ = await self.store.list(PREFIX)
        for kv in kvs:
            self.mark(kv.key[len(PREFIX):], True)
        await self.repair(delete_leaked=False)
        self._spawn(self._follow(rev))
        if self.repair_interval > 0:
            self._spawn(self._repair_loop())

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _follow(self, rev: int) -> None:
        while True:
            try:
                async for batch in self.store.watch(PREFIX, rev):
                    for ev in batch:
                        rev = ev.kv.mod_revision
                        self.mark(ev.kv.key[len(PREFIX):], ev.type != DELETED)
                return   # the store closed
            except CompactedError:
                kvs, rev, _ = await self.store.list(PREFIX)
                for kv in kvs:
                    self.mark(kv.key[len(PREFIX):], True)
            except (StoreError, OSError):
                log.exception("watch of allocation claims failed; retrying")
                await asyncio.sleep(1)

    async def _repair_loop(self) -> None:
        while True:
            await asyncio.sleep(self.repair_interval)
            try:
                await self.repair()
            except (StoreError, OSError):
                log.exception("repair of allocation claims failed")

    async def repair(self, delete_leaked: bool = True) -> tuple[int, int]:
        """Create claims Services lack; delete claims no Service held in two rounds.
        Returns (created, deleted)."""
        services, _, _ = await self.store.list(SERVICES)
        holder: dict[str, dict] = {}
        for kv in services:
            svc = json.loads(kv.value)
            for value in held_values(svc):
                holder.setdefault(value, svc)
        claims, _, _ = await self.store.list(PREFIX)
        claimed = {kv.key[len(PREFIX):]: kv for kv in claims}
        created = deleted = 0
        for value, svc in sorted(holder.items()):
            if value not in claimed:
                if not await self._claim({value}, owner_of(svc)):
                    created += 1
                    self.mark(value, True)
        leaked = {v for v, kv in claimed.items()
                  if v not in holder or holder[v]["metadata"].get("uid") != json.loads(kv.value).get("uid")}
        if delete_leaked:
            for value in sorted(leaked & self._suspects):
                try:
                    await self.store.delete(PREFIX + value, claimed[value].mod_revision)
                    deleted += 1
                except (NotFoundError, ConflictError):
                    pass
            self._suspects = leaked - self._suspects
        else:
            self._suspects = leaked
        if created or deleted:
            log.info("allocation repair: %d claim(s) created, %d leaked claim(s) deleted",
                     created, deleted)
        return created, deleted


class ClaimsTxn(Txn):
    """The allocator's txn, plus the claims: released ones go after commit, new ones after a
    rollback."""

    def __init__(self, shared: SharedAllocations, inner: Txn, svc: dict, claimed: set[str],
                 released: set[str]):
        self.shared = shared
        self.inner = inner
        self.uid = (svc.get("metadata") or {}).get("uid", "")
        self.claimed = claimed
        self.released = released

    def commit(self) -> None:
        self.inner.commit()
        self.shared._release_later(self.released, self.uid)

    def rollback(self) -> None:
        self.inner.rollback()
        self.shared._release_later(self.claimed, self.uid)

