"""What every store backend must do (the `store` fixture runs each test on every backend).

Revisions are taken relative to the store's revision at the start of a test, so that a backend
whose first write is not revision 1 (etcd) passes the same suite."""
import asyncio
import random

import pytest

from nanokube.store import (CompactedError, ConflictError, FutureRevisionError, KeyExistsError,
                            KeyValue, NotFoundError)


async def collect(watch, until_revision: int, timeout: float = 5.0) -> list:
    """Events from `watch` until one at `until_revision` or later arrives."""
    events = []

    async def run():
        async for batch in watch:
            events.extend(batch)
            if events and events[-1].kv.mod_revision >= until_revision:
                return

    await asyncio.wait_for(run(), timeout)
    return events


def summary(events) -> list[tuple]:
    return [(e.type, e.kv.key, e.kv.value, e.kv.mod_revision) for e in events]


# -- writes and reads -------------------------------------------------------------------------

async def test_empty_store(store):
    r0 = store.current_revision()   # 0 for SQLite; etcd starts at revision 1
    assert r0 in (0, 1)
    assert store.compacted_revision() == 0
    assert await store.get("/a/x") is None
    assert await store.list("/") == ([], r0, False)
    assert await store.count("/") == 0


async def test_create_and_get(store):
    kv = await store.create("/a/x", b"1")
    assert kv == KeyValue("/a/x", b"1", kv.mod_revision, kv.mod_revision)
    assert store.current_revision() == kv.mod_revision > 0
    assert await store.get("/a/x") == kv
    kv2 = await store.create("/a/y", b"2")
    assert kv2.mod_revision > kv.mod_revision
    assert store.current_revision() == kv2.mod_revision


async def test_create_existing_fails(store):
    first = await store.create("/a/x", b"1")
    with pytest.raises(KeyExistsError):
        await store.create("/a/x", b"2")
    assert await store.get("/a/x") == first
    assert store.current_revision() == first.mod_revision


async def test_create_after_delete_starts_a_new_life(store):
    first = await store.create("/a/x", b"1")
    await store.delete("/a/x")
    again = await store.create("/a/x", b"2")
    assert again.create_revision == again.mod_revision > first.create_revision
    assert await store.get("/a/x") == again


async def test_update_compare_and_swap(store):
    created = await store.create("/a/x", b"1")
    updated = await store.update("/a/x", b"2", expected_revision=created.mod_revision)
    assert updated.value == b"2"
    assert updated.create_revision == created.create_revision
    assert updated.mod_revision > created.mod_revision

    with pytest.raises(ConflictError) as err:
        await store.update("/a/x", b"3", expected_revision=created.mod_revision)
    assert err.value.current == updated
    assert await store.get("/a/x") == updated

    unconditional = await store.update("/a/x", b"4")  # expected_revision 0: no check
    assert unconditional.value == b"4"
    assert unconditional.mod_revision == store.current_revision()


async def test_update_and_delete_of_missing_key(store):
    with pytest.raises(NotFoundError):
        await store.update("/a/x", b"1")
    with pytest.raises(NotFoundError):
        await store.delete("/a/x")
    kv = await store.create("/a/x", b"1")
    await store.delete("/a/x")
    with pytest.raises(NotFoundError):
        await store.update("/a/x", b"2", expected_revision=kv.mod_revision)
    with pytest.raises(NotFoundError):
        await store.delete("/a/x")


async def test_delete(store):
    created = await store.create("/a/x", b"1")
    updated = await store.update("/a/x", b"2")
    with pytest.raises(ConflictError) as err:
        await store.delete("/a/x", expected_revision=created.mod_revision)
    assert err.value.current == updated
    deleted = await store.delete("/a/x", expected_revision=updated.mod_revision)
    assert deleted.key == "/a/x"
    assert deleted.value == b"2"  # the last value
    assert deleted.create_revision == created.create_revision
    assert deleted.mod_revision == store.current_revision() > updated.mod_revision
    assert await store.get("/a/x") is None
    assert await store.count("/a/") == 0


# -- list -------------------------------------------------------------------------------------

async def test_list_sorted_by_key(store):
    for name in ["c", "a", "b"]:
        await store.create(f"/a/{name}", name.encode())
    items, rev, more = await store.list("/a/")
    assert [kv.key for kv in items] == ["/a/a", "/a/b", "/a/c"]
    assert [kv.value for kv in items] == [b"a", b"b", b"c"]
    assert rev == store.current_revision()
    assert more is False


async def test_list_order_does_not_follow_revisions(store):
    names = [f"/a/{i:03d}" for i in range(200)]
    random.Random(3).shuffle(names)
    for name in names:
        await store.create(name, b"1")
    for name in names[::3]:  # newer rows for some keys
        await store.update(name, b"2")
    items, _, _ = await store.list("/a/")
    assert [kv.key for kv in items] == sorted(names)
    items, _, more = await store.list("/a/", limit=50, start_after="/a/099")
    assert [kv.key for kv in items] == sorted(names)[100:150] and more


async def test_prefix_isolation(store):
    await store.create("/a/1", b"a")
    await store.create("/ab/1", b"ab")
    await store.create("/a", b"bare")
    items, _, _ = await store.list("/a/")
    assert [kv.key for kv in items] == ["/a/1"]
    assert await store.count("/a/") == 1
    assert await store.count("/ab/") == 1
    assert await store.count("/") == 3
    assert [kv.key for kv in (await store.list(""))[0]] == ["/a", "/a/1", "/ab/1"]


async def test_list_at_past_revision(store):
    x1 = await store.create("/a/x", b"x1")
    await store.create("/a/y", b"y1")
    at = store.current_revision()
    await store.update("/a/x", b"x2")
    await store.delete("/a/y")
    await store.create("/a/z", b"z1")

    items, rev, _ = await store.list("/a/", revision=at)
    assert rev == at
    assert [(kv.key, kv.value) for kv in items] == [("/a/x", b"x1"), ("/a/y", b"y1")]
    assert items[0] == x1

    items, _, _ = await store.list("/a/", revision=x1.mod_revision)
    assert [kv.key for kv in items] == ["/a/x"]

    items, rev, _ = await store.list("/a/")
    assert rev == store.current_revision()
    assert [(kv.key, kv.value) for kv in items] == [("/a/x", b"x2"), ("/a/z", b"z1")]


async def test_list_future_revision_fails(store):
    await store.create("/a/x", b"1")
    with pytest.raises(FutureRevisionError):
        await store.list("/a/", revision=store.current_revision() + 1)


async def test_list_paging_is_a_consistent_snapshot(store):
    for i in range(10):
        await store.create(f"/a/{i:02d}", b"v")
    await store.delete("/a/03")  # deleted keys do not count against the limit
    seen, start_after, rev = [], "", 0
    while True:
        items, rev, more = await store.list("/a/", revision=rev, limit=3, start_after=start_after)
        assert len(items) <= 3
        seen += [kv.key for kv in items]
        # writes between pages must not show up in the pages that follow
        await store.create(f"/a/{len(seen):02d}x", b"late")
        await store.delete(items[-1].key)
        if not more:
            break
        start_after = items[-1].key
    assert seen == [f"/a/{i:02d}" for i in range(10) if i != 3]


async def test_list_limit_exact_fit_reports_no_more(store):
    for i in range(3):
        await store.create(f"/a/{i}", b"v")
    items, _, more = await store.list("/a/", limit=3)
    assert len(items) == 3 and more is False
    items, _, more = await store.list("/a/", limit=2)
    assert len(items) == 2 and more is True
    items, _, more = await store.list("/a/", limit=2, start_after="/a/1")
    assert [kv.key for kv in items] == ["/a/2"] and more is False


# -- watch ------------------------------------------------------------------------------------

async def test_watch_from_zero_replays_history_then_live(store):
    r0 = store.current_revision()
    await store.create("/a/x", b"1")
    await store.update("/a/x", b"2")
    await store.create("/b/x", b"other prefix")
    watch = store.watch("/a/", r0)
    try:
        history = await collect(watch, r0 + 2)
        assert summary(history) == [("ADDED", "/a/x", b"1", r0 + 1), ("MODIFIED", "/a/x", b"2", r0 + 2)]
        assert history[0].prev is None
        assert history[1].prev == KeyValue("/a/x", b"1", r0 + 1, r0 + 1)

        deleted = await store.delete("/a/x")
        live = await collect(watch, deleted.mod_revision)
        assert summary(live) == [("DELETED", "/a/x", b"2", deleted.mod_revision)]
        assert live[0].kv == deleted
        assert live[0].prev == KeyValue("/a/x", b"2", r0 + 1, r0 + 2)
    finally:
        await watch.aclose()


async def test_watch_from_revision_skips_older_events(store):
    await store.create("/a/x", b"1")
    start = (await store.update("/a/x", b"2")).mod_revision
    await store.update("/a/x", b"3")
    watch = store.watch("/a/", start)
    try:
        events = await collect(watch, start + 1)
        assert summary(events) == [("MODIFIED", "/a/x", b"3", start + 1)]
        await store.create("/a/y", b"1")
        events = await collect(watch, start + 2)
        assert summary(events) == [("ADDED", "/a/y", b"1", start + 2)]
    finally:
        await watch.aclose()


async def test_watch_history_has_deletes_and_recreates(store):
    r0 = store.current_revision()
    await store.create("/a/x", b"1")
    await store.delete("/a/x")
    await store.create("/a/x", b"2")
    watch = store.watch("/a/", r0)
    try:
        events = await collect(watch, r0 + 3)
    finally:
        await watch.aclose()
    assert summary(events) == [("ADDED", "/a/x", b"1", r0 + 1), ("DELETED", "/a/x", b"1", r0 + 2),
                               ("ADDED", "/a/x", b"2", r0 + 3)]
    assert events[1].kv.create_revision == r0 + 1
    assert events[1].prev == KeyValue("/a/x", b"1", r0 + 1, r0 + 1)
    assert events[2].kv.create_revision == r0 + 3 and events[2].prev is None


async def test_watch_prefix_isolation(store):
    r0 = store.current_revision()
    watch = store.watch("/a/", r0)
    try:
        await store.create("/ab/1", b"no")
        await store.create("/a", b"no")
        await store.create("/a/1", b"yes")
        events = await collect(watch, r0 + 3)
    finally:
        await watch.aclose()
    assert summary(events) == [("ADDED", "/a/1", b"yes", r0 + 3)]


async def test_watch_after_future_revision_waits_for_it(store):
    r0 = (await store.create("/a/x", b"1")).mod_revision
    watch = store.watch("/a/", r0 + 2)
    try:
        collecting = asyncio.create_task(collect(watch, r0 + 3))
        await asyncio.sleep(0.05)  # the watch is live before the writes
        await store.update("/a/x", b"2")
        await store.update("/a/x", b"3")
        await store.update("/a/x", b"4")
        events = await collecting
    finally:
        await watch.aclose()
    assert summary(events) == [("MODIFIED", "/a/x", b"4", r0 + 3)]


async def test_watch_has_no_gap_under_concurrent_writers(store):
    """Writers keep going while watchers start from various revisions: each watcher sees every
    revision under its prefix after its start, once, in order."""
    rng = random.Random(7)
    writes_per_writer, writers = 60, 8
    written: dict[int, str] = {}  # revision -> key

    async def writer(w: int):
        live: list[str] = []
        for i in range(writes_per_writer):
            op = rng.random()
            if live and op < 0.2:
                kv = await store.delete(live.pop(rng.randrange(len(live))))
            elif live and op < 0.6:
                kv = await store.update(rng.choice(live), f"{w}-{i}".encode())
            else:
                key = f"{rng.choice(['/a/', '/b/'])}{w}-{i}"
                kv = await store.create(key, b"new")
                live.append(key)
            written[kv.mod_revision] = kv.key
            await asyncio.sleep(0)

    async def watcher(start_at: int):
        while store.current_revision() < start_at:
            await asyncio.sleep(0)
        after = max(store.current_revision() - rng.randrange(20), 0) if start_at else 0
        events = []

        async def run():
            async for batch in store.watch("/a/", after):
                events.extend(batch)
                if events[-1].kv.key == "/a/final":
                    return
        await asyncio.wait_for(run(), 20)
        return after, events

    total = writes_per_writer * writers
    tasks = [asyncio.create_task(writer(w)) for w in range(writers)]
    watchers = [asyncio.create_task(watcher(n)) for n in range(0, total, 7)]
    await asyncio.gather(*tasks)
    final = await store.create("/a/final", b"end")  # the watchers stop at this one
    written[final.mod_revision] = final.key
    for after, events in await asyncio.gather(*watchers):
        revisions = [e.kv.mod_revision for e in events]
        expected = [rev for rev in sorted(written) if rev > after and written[rev].startswith("/a/")]
        assert revisions == expected
        assert all(e.kv.key == written[e.kv.mod_revision] for e in events)


async def test_breaking_out_of_a_watch_stops_it(store):
    r1 = (await store.create("/a/x", b"1")).mod_revision
    async for batch in store.watch("/a/", r1 - 1):
        assert batch[0].kv.key == "/a/x"
        break
    # a new watch still works, and writes go on
    await store.update("/a/x", b"2")
    watch = store.watch("/a/", r1)
    events = await collect(watch, r1 + 1)
    await watch.aclose()
    assert summary(events) == [("MODIFIED", "/a/x", b"2", r1 + 1)]


async def test_a_timed_out_wait_leaves_the_watch_usable(store):
    """The API server waits for the next batch with a timeout (bookmarks, timeoutSeconds)."""
    watch = store.watch("/a/", 0)
    try:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(anext(watch), 0.05)
        kv = await store.create("/a/x", b"1")
        batch = await asyncio.wait_for(anext(watch), 2)
        assert [e.kv for e in batch] == [kv]
    finally:
        await watch.aclose()


async def test_close_ends_watchers(store):
    r1 = (await store.create("/a/x", b"1")).mod_revision
    watch = store.watch("/a/", r1 - 1)
    got = []

    async def consume():
        async for batch in watch:
            got.extend(batch)

    task = asyncio.create_task(consume())
    while not got:
        await asyncio.sleep(0.001)
    await store.close()
    await asyncio.wait_for(task, 2)  # ends without an error
    assert summary(got) == [("ADDED", "/a/x", b"1", r1)]


# -- compaction -------------------------------------------------------------------------------

async def test_compaction(store):
    r1 = (await store.create("/a/x", b"1")).mod_revision
    await store.update("/a/x", b"2")
    await store.create("/a/gone", b"1")
    await store.delete("/a/gone")
    await store.create("/a/y", b"1")
    at = store.current_revision()
    await store.update("/a/y", b"2")
    await store.compact(at)
    assert store.compacted_revision() == at

    with pytest.raises(CompactedError) as err:
        await store.list("/a/", revision=at - 1)
    assert (err.value.requested, err.value.compacted) == (at - 1, at)
    items, _, _ = await store.list("/a/", revision=at)
    assert [(kv.key, kv.value) for kv in items] == [("/a/x", b"2"), ("/a/y", b"1")]
    items, _, _ = await store.list("/a/")
    assert [(kv.key, kv.value) for kv in items] == [("/a/x", b"2"), ("/a/y", b"2")]
    assert (await store.get("/a/x")).create_revision == r1  # the newest state is kept whole
    assert await store.count("/a/") == 2

    with pytest.raises(CompactedError) as err:
        async for _ in store.watch("/a/", at - 1):
            pass
    assert (err.value.requested, err.value.compacted) == (at - 1, at)

    watch = store.watch("/a/", at)
    try:
        events = await collect(watch, at + 1)
    finally:
        await watch.aclose()
    assert summary(events) == [("MODIFIED", "/a/y", b"2", at + 1)]
    assert events[0].prev == KeyValue("/a/y", b"1", at, at)

    # writes go on after compaction, also to compacted-away keys
    again = await store.create("/a/gone", b"2")
    assert again.mod_revision == at + 2
    await store.compact(store.current_revision())
    assert [kv.key for kv in (await store.list("/a/"))[0]] == ["/a/gone", "/a/x", "/a/y"]


async def test_compaction_of_everything_keeps_the_revision_counter(store):
    await store.create("/a/x", b"1")
    deleted = await store.delete("/a/x")
    await store.compact(deleted.mod_revision)
    assert store.current_revision() == deleted.mod_revision
    assert await store.list("/a/") == ([], deleted.mod_revision, False)
    kv = await store.create("/a/x", b"2")
    assert kv.mod_revision == deleted.mod_revision + 1


async def test_compacting_an_older_revision_is_a_no_op(store):
    for i in range(4):
        await store.create(f"/a/{i}", b"v")
    r = store.current_revision()
    await store.compact(r - 1)
    await store.compact(r - 2)
    assert store.compacted_revision() == r - 1
