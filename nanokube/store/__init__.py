"""The revisioned key-value store under the API server (DESIGN §2).

Every write gets a new, global, increasing revision; the revision is the Kubernetes
resourceVersion. Backends: `nanokube.store.sqlite.SQLiteStore` (embedded, kine's model, one
API server) and `nanokube.store.etcd.EtcdStore` (an etcd cluster, several API servers).
Nothing above this interface knows which one runs (`open_store` picks it from --store).
"""
from __future__ import annotations

import abc
import asyncio
import logging
from dataclasses import dataclass
from typing import AsyncIterator

__all__ = [
    "KeyValue", "Event", "ADDED", "MODIFIED", "DELETED",
    "StoreError", "KeyExistsError", "NotFoundError", "ConflictError", "CompactedError",
    "WatcherTooSlowError", "FutureRevisionError", "Store", "PeriodicCompactor", "open_store",
]

ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes          # the object JSON as stored
    create_revision: int
    mod_revision: int     # for a DELETE event: the revision of the delete


@dataclass(frozen=True, slots=True)
class Event:
    type: str             # ADDED | MODIFIED | DELETED
    kv: KeyValue          # DELETED: kv.value is the last value, kv.mod_revision the delete's revision
    prev: KeyValue | None  # the value before this event (None for ADDED)


class StoreError(Exception):
    pass


class KeyExistsError(StoreError):
    def __init__(self, key: str):
        super().__init__(f"key already exists: {key}")
        self.key = key


class NotFoundError(StoreError):
    def __init__(self, key: str):
        super().__init__(f"key not found: {key}")
        self.key = key


class ConflictError(StoreError):
    """A compare-and-swap failed: the key's mod_revision is not the expected one."""

    def __init__(self, key: str, expected: int, current: KeyValue | None):
        have = current.mod_revision if current else 0
        super().__init__(f"revision mismatch on {key}: expected {expected}, have {have}")
        self.key = key
        self.expected = expected
        self.current = current


class CompactedError(StoreError):
    """The requested revision is older than the compacted one (Kubernetes: 410 Expired,
    "too old resource version: requested (compacted)")."""

    def __init__(self, requested: int, compacted: int, message: str | None = None):
        super().__init__(message or f"required revision {requested} has been compacted (compacted revision {compacted})")
        self.requested = requested
        self.compacted = compacted


class WatcherTooSlowError(CompactedError):
    """A watcher fell too far behind the writers and was ended; the client must re-list.
    `requested` is the last revision it received, `compacted` the store's revision then."""

    def __init__(self, requested: int, compacted: int):
        super().__init__(requested, compacted,
                         f"watcher fell behind at revision {requested} (current {compacted})")


class FutureRevisionError(StoreError):
    def __init__(self, requested: int, current: int):
        super().__init__(f"required revision {requested} is a future revision (current {current})")
        self.requested = requested
        self.current = current


class Store(abc.ABC):
    """A revisioned key-value store. All methods are called from one event loop."""

    shared = False   # True when other API servers write to the same store (etcd)

    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the store; running watches end (StopAsyncIteration)."""

    @abc.abstractmethod
    def current_revision(self) -> int:
        """The highest revision written (0 when nothing was ever written)."""

    @abc.abstractmethod
    def compacted_revision(self) -> int: ...

    @abc.abstractmethod
    async def get(self, key: str) -> KeyValue | None: ...

    @abc.abstractmethod
    async def list(self, prefix: str, revision: int = 0, limit: int = 0,
                   start_after: str = "") -> tuple[list[KeyValue], int, bool]:
        """Live keys under `prefix` as of `revision` (0 = current), sorted by key, at most
        `limit` (0 = all), keys > `start_after`. Returns (items, the revision the list is at,
        whether more remain). CompactedError if revision < compacted_revision()."""

    @abc.abstractmethod
    async def count(self, prefix: str) -> int: ...

    @abc.abstractmethod
    async def create(self, key: str, value: bytes) -> KeyValue:
        """KeyExistsError if the key is live."""

    @abc.abstractmethod
    async def update(self, key: str, value: bytes, expected_revision: int = 0) -> KeyValue:
        """Compare-and-swap on mod_revision unless expected_revision is 0.
        NotFoundError / ConflictError."""

    @abc.abstractmethod
    async def delete(self, key: str, expected_revision: int = 0) -> KeyValue:
        """Returns the deleted value with mod_revision = the delete's revision."""

    @abc.abstractmethod
    def watch(self, prefix: str, after_revision: int) -> AsyncIterator[list[Event]]:
        """Batches of events under `prefix` with revision > after_revision, in revision order,
        none skipped: history first, then live. CompactedError on the first iteration if
        after_revision < compacted_revision(); WatcherTooSlowError if the consumer falls far
        behind. Stop it with `aclose()` or by breaking out of the loop."""

    @abc.abstractmethod
    async def compact(self, revision: int) -> None:
        """Drop history superseded at or before `revision`, and tombstones; the newest state
        of every key is always kept."""


class PeriodicCompactor:
    """Compacts a store every `interval` seconds up to its revision minus `retain`, as kine and
    kube-apiserver do (every 5 minutes); a failed round is logged and tried again next time."""

    def __init__(self, store: Store, interval: float, retain: int,
                 errors: tuple[type[Exception], ...] = (StoreError,)):
        self.store, self.interval, self.retain, self.errors = store, interval, retain, errors
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self.interval > 0:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            target = self.store.current_revision() - self.retain
            if target > self.store.compacted_revision():
                try:
                    await self.store.compact(target)
                except self.errors:
                    logging.getLogger(__name__).exception(
                        "compaction to revision %d failed", target)


def prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string starting with `prefix` (None: no bound)."""
    while prefix:
        last = ord(prefix[-1])
        if last < 0x10FFFF:
            nxt = last + 1 if last + 1 != 0xD800 else 0xE000  # UTF-8 cannot encode surrogates
            return prefix[:-1] + chr(nxt)
        prefix = prefix[:-1]
    return None


async def open_store(url: str | None, data_dir: str) -> Store:
    """The store --store names: `etcd://host:port[,host:port...]`, or `sqlite` / nothing for
    the SQLite file state.db in `data_dir`."""
    if url and url.startswith("etcd://"):
        from nanokube.store.etcd import EtcdStore
        store: Store = EtcdStore(url)
    elif not url or url == "sqlite":
        import os
        from nanokube.store.sqlite import SQLiteStore
        store = SQLiteStore(os.path.join(data_dir, "state.db"))
    else:
        raise ValueError(f"unsupported --store {url!r}: want etcd://host:port[,...] or sqlite")
    await store.open()
    return store
