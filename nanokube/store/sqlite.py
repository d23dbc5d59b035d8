"""The embedded store: one SQLite table whose autoincrement id is the revision (kine's model).

Every write appends a row: a create (`created=1`), an update (copies create_revision, points
`prev_revision` at the row it replaces and keeps the replaced value in `old_value`), or a
delete tombstone (`deleted=1`, `old_value` = the last value). The newest row of a name is the
key's state; the newest row with id <= R is its state at revision R. A create row stores
create_revision 0: its own id is its create revision.

Calls are plain synchronous sqlite3 calls inside the coroutines (no threads), so the event
loop's order is the commit order and live watchers are fed right after each commit. WAL with
synchronous=NORMAL: a committed write survives a crash of the process (not a power loss).
One process only, like kine's SQLite backend: watchers see this process's writes.
"""
from __future__ import annotations

import asyncio
import logging
import sqlite3
from typing import AsyncIterator

from nanokube.store import (ADDED, DELETED, MODIFIED, CompactedError, ConflictError, Event,
                            FutureRevisionError, KeyExistsError, KeyValue, NotFoundError,
                            PeriodicCompactor, Store, StoreError, prefix_end)
from nanokube.store.watch import Broadcaster, Subscription

log = logging.getLogger(__name__)

# Row id 0 is not a revision: it holds the compacted revision in prev_revision, as kine's
# `compact_rev_key` row does. It is a tombstone, so it is never listed; watches start above 0.
COMPACT_KEY = "compact_rev_key"

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS kv (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        created INTEGER NOT NULL DEFAULT 0,
        deleted INTEGER NOT NULL DEFAULT 0,
        create_revision INTEGER NOT NULL DEFAULT 0,
        prev_revision INTEGER NOT NULL DEFAULT 0,
        value BLOB,
        old_value BLOB)""",
    # (name, id): the newest row of a key, and MAX(id) per name for a list at a revision.
    "CREATE INDEX IF NOT EXISTS kv_name_index ON kv (name)",
    # Two writers racing on the same key from the same state: the second insert fails.
    "CREATE UNIQUE INDEX IF NOT EXISTS kv_name_prev_revision_uindex ON kv (name, prev_revision)",
]

_COLUMNS = "id, name, created, deleted, create_revision, prev_revision, value, old_value"
_INSERT = ("INSERT INTO kv (name, created, deleted, create_revision, prev_revision, value, old_value)"
           " VALUES (?, ?, ?, ?, ?, ?, ?)")
_LATEST = "SELECT id, created, deleted, create_revision, value FROM kv WHERE name = ? ORDER BY id DESC LIMIT 1"


def _range(prefix: str, start_after: str = "") -> tuple[str, list]:
    """SQL condition and parameters for names under `prefix` and greater than `start_after`."""
    if start_after >= prefix:
        cond, params = "name > ?", [start_after]
    else:
        cond, params = "name >= ?", [prefix]
    end = prefix_end(prefix)
    if end is not None:
        cond += " AND name < ?"
        params.append(end)
    return cond, params


class SQLiteStore(Store):
    def __init__(self, path: str, *, compact_interval: float = 300.0, compact_retain: int = 1000,
                 compact_batch: int = 1000, watch_queue_size: int = 10000, history_page: int = 1000):
        self.path = path
        self.compact_interval = compact_interval   # kine: every 5 minutes
        self.compact_retain = compact_retain       # kine: never the newest 1000 revisions
        self.compact_batch = compact_batch         # revisions per compaction transaction
        self.history_page = history_page           # rows per watch history query
        self._db: sqlite3.Connection | None = None
        self._rev = 0
        self._compacted = 0
        self._watchers = Broadcaster(watch_queue_size)
        self._compactor = PeriodicCompactor(self, compact_interval, compact_retain,
                                            (StoreError, sqlite3.Error))

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        if self._db is not None:
            return
        db = sqlite3.connect(self.path, isolation_level=None)  # autocommit: one statement, one commit
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=5000")
        db.execute("PRAGMA cache_size=-32000")  # 32 MB: a list of every object stays in memory
        db.execute("BEGIN IMMEDIATE")
        for stmt in SCHEMA:
            db.execute(stmt)
        db.execute("INSERT OR IGNORE INTO kv (id, name, deleted) VALUES (0, ?, 1)", (COMPACT_KEY,))
        db.execute("COMMIT")
        self._compacted = db.execute("SELECT prev_revision FROM kv WHERE id = 0").fetchone()[0]
        # sqlite_sequence, not MAX(id): compaction may drop the newest row (a tombstone).
        seq = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'kv'").fetchone()
        top = db.execute("SELECT MAX(id) FROM kv").fetchone()[0]
        self._rev = max(seq[0] if seq else 0, top or 0)
        self._db = db
        self._compactor.start()

    async def close(self) -> None:
        await self._compactor.stop()
        self._watchers.close()
        if self._db is not None:
            self._db.close()
            self._db = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError("store is not open")
        return self._db

    def current_revision(self) -> int:
        return self._rev

    def compacted_revision(self) -> int:
        return self._compacted

    # -- reads -----------------------------------------------------------------------------

    def _latest(self, key: str) -> tuple[KeyValue | None, int]:
        """The live value of `key` (None if absent or deleted) and the id of its newest row."""
        row = self._conn().execute(_LATEST, (key,)).fetchone()
        if row is None:
            return None, 0
        rid, created, deleted, create_rev, value = row
        if deleted:
            return None, rid
        return KeyValue(key, value, rid if created else create_rev, rid), rid

    async def get(self, key: str) -> KeyValue | None:
        return self._latest(key)[0]

    async def list(self, prefix: str, revision: int = 0, limit: int = 0,
                   start_after: str = "") -> tuple[list[KeyValue], int, bool]:
        rev = self._check_revision(revision)
        cond, params = _range(prefix, start_after)
        # The newest row of each name at `rev`, in name order from the index. CROSS JOIN keeps
        # that order as the outer loop: an outer ORDER BY would sort whole values (10x slower).
        sql = ("SELECT k.id, k.name, k.created, k.create_revision, k.value FROM"
               f" (SELECT MAX(id) AS id, name FROM kv WHERE {cond} AND id <= ? GROUP BY name ORDER BY name) AS m"
               " CROSS JOIN kv AS k ON k.id = m.id WHERE k.deleted = 0 LIMIT ?")
        rows = self._conn().execute(sql, (*params, rev, limit + 1 if limit > 0 else -1)).fetchall()
        more = 0 < limit < len(rows)
        if more:
            rows = rows[:limit]
        items = [KeyValue(name, value, rid if created else create_rev, rid)
                 for rid, name, created, create_rev, value in rows]
        return items, rev, more

    def _check_revision(self, revision: int) -> int:
        if revision <= 0:
            return self._rev
        if revision < self._compacted:
            raise CompactedError(revision, self._compacted)
        if revision > self._rev:
            raise FutureRevisionError(revision, self._rev)
        return revision

    async def count(self, prefix: str) -> int:
        cond, params = _range(prefix)
        sql = (f"SELECT COUNT(*) FROM (SELECT MAX(id) AS id FROM kv WHERE {cond} GROUP BY name) AS m"
               " JOIN kv AS k ON k.id = m.id WHERE k.deleted = 0")
        return self._conn().execute(sql, params).fetchone()[0]

    # -- writes ----------------------------------------------------------------------------

    def _insert(self, key: str, created: int, deleted: int, create_rev: int, prev_rev: int,
                value: bytes | None, old_value: bytes | None) -> int:
        if key == COMPACT_KEY or not key:
            raise StoreError(f"invalid key: {key!r}")
        cur = self._conn().execute(_INSERT, (key, created, deleted, create_rev, prev_rev, value, old_value))
        self._rev = cur.lastrowid
        return self._rev

    async def create(self, key: str, value: bytes) -> KeyValue:
        current, newest = self._latest(key)
        if current is not None:
            raise KeyExistsError(key)
        try:
            rev = self._insert(key, 1, 0, 0, newest, value, None)
        except sqlite3.IntegrityError:  # another writer created it first
            raise KeyExistsError(key) from None
        kv = KeyValue(key, value, rev, rev)
        self._watchers.publish(Event(ADDED, kv, None))
        return kv

    def _current_for_write(self, key: str, expected_revision: int) -> KeyValue:
        current = self._latest(key)[0]
        if current is None:
            raise NotFoundError(key)
        if expected_revision and current.mod_revision != expected_revision:
            raise ConflictError(key, expected_revision, current)
        return current

    async def update(self, key: str, value: bytes, expected_revision: int = 0) -> KeyValue:
        prev = self._current_for_write(key, expected_revision)
        try:
            rev = self._insert(key, 0, 0, prev.create_revision, prev.mod_revision, value, prev.value)
        except sqlite3.IntegrityError:
            raise ConflictError(key, prev.mod_revision, self._latest(key)[0]) from None
        kv = KeyValue(key, value, prev.create_revision, rev)
        self._watchers.publish(Event(MODIFIED, kv, prev))
        return kv

    async def delete(self, key: str, expected_revision: int = 0) -> KeyValue:
        prev = self._current_for_write(key, expected_revision)
        try:
            rev = self._insert(key, 0, 1, prev.create_revision, prev.mod_revision, None, prev.value)
        except sqlite3.IntegrityError:
            raise ConflictError(key, prev.mod_revision, self._latest(key)[0]) from None
        kv = KeyValue(key, prev.value, prev.create_revision, rev)
        self._watchers.publish(Event(DELETED, kv, prev))
        return kv

    # -- watch -----------------------------------------------------------------------------

    def watch(self, prefix: str, after_revision: int) -> AsyncIterator[list[Event]]:
        return _Watch(self, prefix, after_revision)

    def _subscribe(self, prefix: str, after: int) -> tuple[Subscription, int]:
        """Register a live watcher and return it with the revision up to which history must be
        read from the table: both in one synchronous step, so no write falls between."""
        self._conn()
        if after < self._compacted:
            raise CompactedError(after, self._compacted)
        return self._watchers.subscribe(prefix, after), self._rev

    def _history(self, prefix: str, after: int, upto: int) -> tuple[list[Event], int]:
        """Events under `prefix` in (after, upto], one page; and the revision read up to."""
        if after < self._compacted:  # compacted while the watcher was reading history
            raise CompactedError(after, self._compacted)
        cond, params = _range(prefix)
        sql = f"SELECT {_COLUMNS} FROM kv WHERE id > ? AND id <= ? AND {cond} ORDER BY id LIMIT ?"
        rows = self._conn().execute(sql, (after, upto, *params, self.history_page)).fetchall()
        reached = rows[-1][0] if len(rows) == self.history_page else upto
        return [_row_event(*row) for row in rows], reached

    # -- compaction ------------------------------------------------------------------------

    async def compact(self, revision: int) -> None:
        if revision > self._rev:
            raise FutureRevisionError(revision, self._rev)
        while self._db is not None and self._compacted < revision:
            lo = self._compacted
            hi = min(revision, lo + self.compact_batch)
            self._compact_batch(lo, hi)
            await asyncio.sleep(0)  # let requests run between batches

    def _compact_batch(self, lo: int, hi: int) -> None:
        """Delete rows superseded by a row in (lo, hi], and tombstones in (lo, hi]."""
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM kv WHERE id IN (SELECT prev_revision FROM kv"
                       " WHERE id > ? AND id <= ? AND prev_revision > 0)", (lo, hi))
            db.execute("DELETE FROM kv WHERE id > ? AND id <= ? AND deleted = 1", (lo, hi))
            db.execute("UPDATE kv SET prev_revision = ? WHERE id = 0", (hi,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._compacted = hi


def _row_event(rid: int, name: str, created: int, deleted: int, create_rev: int, prev_rev: int,
               value: bytes | None, old_value: bytes | None) -> Event:
    if created:
        return Event(ADDED, KeyValue(name, value, rid, rid), None)
    prev = KeyValue(name, old_value, create_rev, prev_rev)
    if deleted:
        return Event(DELETED, KeyValue(name, old_value, create_rev, rid), prev)
    return Event(MODIFIED, KeyValue(name, value, create_rev, rid), prev)


class _Watch:
    """History from the table up to the revision at subscription, then the live events."""

    def __init__(self, store: SQLiteStore, prefix: str, after: int):
        self._store = store
        self._prefix = prefix
        self._after = after
        self._sub: Subscription | None = None
        self._history_to = 0
        self._done = False

    def __aiter__(self) -> _Watch:
        return self

    async def __anext__(self) -> list[Event]:
        if self._done:
            raise StopAsyncIteration
        # Cancellation of the caller is not caught: a cancelled wait leaves the watch usable.
        try:
            if self._sub is None:
                self._sub, self._history_to = self._store._subscribe(self._prefix, self._after)
            while self._after < self._history_to:
                if self._sub.ended:  # closed or fallen behind: its live events would leave a gap
                    self._sub.drop_pending()
                    break
                events, self._after = self._store._history(self._prefix, self._after, self._history_to)
                if events:
                    return events
            return await self._sub.next_batch()
        except Exception:
            self._finish()
            raise

    def _finish(self) -> None:
        self._done = True
        if self._sub is not None:
            self._store._watchers.unsubscribe(self._sub)
            self._sub.end()

    async def aclose(self) -> None:
        self._finish()

    def __del__(self) -> None:
        if not self._done and self._sub is not None:
            self._store._watchers.unsubscribe(self._sub)
