"""What is particular to the SQLite store: durability, the table, background compaction, the
watchers' buffers and their clean-up."""
import asyncio
import gc
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from nanokube.store import CompactedError, KeyValue, WatcherTooSlowError
from nanokube.store.sqlite import SQLiteStore


async def nxt(watch):
    """The next batch of a watch, or a failure instead of a hang."""
    return await asyncio.wait_for(anext(watch), 5)


@pytest.fixture
async def open_store(tmp_path):
    """Opens SQLiteStores on one file (with options); closes them all at the end."""
    opened = []

    async def make(**options):
        options.setdefault("compact_interval", 0)
        store = SQLiteStore(str(tmp_path / "state.db"), **options)
        await store.open()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


async def test_pragmas_and_single_table(open_store):
    store = await open_store()
    db = store._db
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"kv", "sqlite_sequence"}


async def test_state_survives_close_and_reopen(open_store):
    store = await open_store()
    await store.create("/a/x", b"1")
    x = await store.update("/a/x", b"2")
    await store.create("/a/y", b"1")
    deleted = await store.delete("/a/y")  # the newest row is a tombstone...
    await store.compact(deleted.mod_revision)  # ...and compaction drops it
    await store.close()

    store = await open_store()
    assert store.current_revision() == deleted.mod_revision
    assert store.compacted_revision() == deleted.mod_revision
    assert await store.get("/a/x") == x
    assert await store.get("/a/y") is None
    with pytest.raises(CompactedError):
        await store.list("/a/", revision=deleted.mod_revision - 1)
    # revisions are never reused, even those of compacted rows
    assert (await store.create("/a/y", b"again")).mod_revision == deleted.mod_revision + 1


async def test_history_is_read_from_the_table_after_reopen(open_store):
    store = await open_store()
    await store.create("/a/x", b"1")
    await store.update("/a/x", b"2")
    await store.delete("/a/x")
    await store.close()
    store = await open_store()
    watch = store.watch("/a/", 1)
    batch = await nxt(watch)
    await watch.aclose()
    assert [(e.type, e.kv.value, e.kv.mod_revision) for e in batch] == [("MODIFIED", b"2", 2), ("DELETED", b"2", 3)]


WRITER = textwrap.dedent("""
    import asyncio, sys
    from nanokube.store.sqlite import SQLiteStore

    async def main():
        store = SQLiteStore(sys.argv[1], compact_interval=0)
        await store.open()
        i = 0
        while True:
            kv = await store.create(f"/k/{i:06d}", b"v%d" % i)
            if i % 3 == 0:
                kv = await store.update(kv.key, b"u%d" % i, kv.mod_revision)
            print(kv.key, kv.mod_revision, kv.value.decode(), flush=True)  # acknowledged
            i += 1

    asyncio.run(main())
""")


async def test_acknowledged_writes_survive_kill_9(tmp_path):
    path = str(tmp_path / "state.db")
    child = subprocess.Popen([sys.executable, "-c", WRITER, path], stdout=subprocess.PIPE, text=True)
    acked = []
    try:
        while len(acked) < 500:
            line = child.stdout.readline()
            assert line, "writer died"
            acked.append(line.split())
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    acked += [line.split() for line in child.stdout.read().splitlines() if len(line.split()) == 3]
    child.stdout.close()
    assert child.returncode == -signal.SIGKILL

    store = SQLiteStore(path, compact_interval=0)
    await store.open()
    try:
        for key, revision, value in acked:
            kv = await store.get(key)
            assert kv is not None and kv.value == value.encode() and kv.mod_revision == int(revision)
        assert store.current_revision() >= int(acked[-1][1])
        assert await store.count("/k/") >= len(acked)
    finally:
        await store.close()


async def test_compaction_deletes_superseded_rows_and_tombstones(open_store):
    store = await open_store()
    await store.create("/a/x", b"1")
    await store.update("/a/x", b"2")
    await store.update("/a/x", b"3")
    await store.create("/a/y", b"1")
    await store.delete("/a/y")
    rows = lambda: store._db.execute("SELECT COUNT(*) FROM kv WHERE id > 0").fetchone()[0]
    assert rows() == 5
    await store.compact(3)  # /a/x's first two rows are superseded at or before 3
    assert rows() == 3
    await store.compact(5)  # /a/y's create and tombstone go
    assert rows() == 1
    assert await store.get("/a/x") == KeyValue("/a/x", b"3", 1, 3)


async def test_background_compaction_keeps_the_newest_revisions(open_store):
    store = await open_store(compact_interval=0.02, compact_retain=5, compact_batch=4)
    await store.create("/a/x", b"0")
    for i in range(30):
        await store.update("/a/x", str(i).encode())
    deadline = time.monotonic() + 5
    while store.compacted_revision() < store.current_revision() - 5 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert store.compacted_revision() == store.current_revision() - 5
    with pytest.raises(CompactedError):
        await store.list("/a/", revision=store.current_revision() - 6)
    assert (await store.list("/a/", revision=store.current_revision() - 5))[0][0].value == b"24"  # update i is revision i + 2


async def test_close_stops_background_compaction(open_store):
    store = await open_store(compact_interval=0.01)
    task = store._compactor._task
    assert task is not None and not task.done()
    await store.close()
    assert task.done() and store._compactor._task is None


async def test_slow_watcher_is_ended_and_writers_never_wait(open_store):
    store = await open_store(watch_queue_size=5)
    await store.create("/a/x", b"0")
    watch = store.watch("/a/", 0)
    assert len(await nxt(watch)) == 1
    for i in range(20):  # nobody reads: the buffer fills, the writes still go through at once
        await store.update("/a/x", str(i).encode())
    assert store.current_revision() == 21
    with pytest.raises(WatcherTooSlowError) as err:
        await nxt(watch)
    assert isinstance(err.value, CompactedError)  # the API server answers 410: the client re-lists
    assert err.value.requested == 1  # what the watcher had received
    assert len(store._watchers) == 0
    with pytest.raises(StopAsyncIteration):
        await nxt(watch)


async def test_watcher_falling_behind_while_reading_history(open_store):
    store = await open_store(watch_queue_size=3, history_page=2)
    for i in range(10):
        await store.create(f"/a/{i}", b"v")
    watch = store.watch("/a/", 0)
    assert [e.kv.mod_revision for e in await nxt(watch)] == [1, 2]
    for i in range(5):
        await store.update("/a/0", b"w")
    with pytest.raises(WatcherTooSlowError):
        await nxt(watch)


async def test_history_is_paged_without_gaps(open_store):
    store = await open_store(history_page=3)
    for i in range(20):
        await store.create(f"/{'ab'[i % 2]}/{i}", b"v")
    watch = store.watch("/a/", 0)
    got = []
    while len(got) < 10:
        batch = await nxt(watch)
        assert len(batch) <= 3
        got += batch
    await watch.aclose()
    assert [e.kv.mod_revision for e in got] == list(range(1, 21, 2))


async def test_compaction_while_a_watcher_reads_history(open_store):
    store = await open_store(history_page=2)
    for i in range(5):
        await store.create(f"/a/{i}", b"v")
    for i in range(5):
        await store.update("/a/0", b"w")
    watch = store.watch("/a/", 0)
    assert len(await nxt(watch)) == 2
    await store.compact(8)
    with pytest.raises(CompactedError) as err:
        await nxt(watch)
    assert (err.value.requested, err.value.compacted) == (2, 8)
    assert len(store._watchers) == 0


async def test_watchers_do_not_leak(open_store):
    store = await open_store()
    await store.create("/a/x", b"1")

    async for _ in store.watch("/a/", 0):
        break
    gc.collect()
    assert len(store._watchers) == 0

    watch = store.watch("/a/", 0)
    await nxt(watch)
    assert len(store._watchers) == 1
    await watch.aclose()
    assert len(store._watchers) == 0
    with pytest.raises(StopAsyncIteration):
        await nxt(watch)

    store.watch("/a/", 0)  # never iterated: never registered
    assert len(store._watchers) == 0
