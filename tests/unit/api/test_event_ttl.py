"""Events expire an hour (--event-ttl) after their last write, as etcd leases make them in
Kubernetes: old ones go, recent ones and repeats written meanwhile stay."""
import copy
from datetime import datetime, timedelta, timezone

import pytest

from nanokube.api import eventttl
from nanokube.api.eventttl import EventTTL, last_written
from nanokube.api.storage import ResourceStorage
from nanokube.registry.event import EventStrategy
from nanokube.store.sqlite import SQLiteStore

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=timezone.utc)


def stamp(minutes_ago: float) -> str:
    return (NOW - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def event(name: str, last_minutes_ago: float, first_minutes_ago: float | None = None,
          namespace: str = "default") -> dict:
    first = stamp(first_minutes_ago if first_minutes_ago is not None else last_minutes_ago)
    return {"apiVersion": "v1", "kind": "Event", "metadata": {"name": name},
            "involvedObject": {"kind": "Pod", "name": "web", "namespace": namespace},
            "reason": "Started", "message": "Started container web", "type": "Normal",
            "source": {"component": "kubelet"}, "count": 1,
            "firstTimestamp": first, "lastTimestamp": stamp(last_minutes_ago)}


@pytest.fixture
async def events(tmp_path):
    store = SQLiteStore(str(tmp_path / "state.db"))
    await store.open()
    yield ResourceStorage(EventStrategy(), store)
    await store.close()


def test_last_written_is_the_newest_timestamp():
    e = event("a", last_minutes_ago=5, first_minutes_ago=120)
    assert last_written(e) == (NOW - timedelta(minutes=5)).timestamp()
    series = {"eventTime": stamp(90), "series": {"lastObservedTime": stamp(1), "count": 3},
              "metadata": {"creationTimestamp": stamp(0)}}
    assert last_written(series) == (NOW - timedelta(minutes=1)).timestamp()
    # creationTimestamp (the server's) only when the Event carries no time of its own
    assert last_written({"metadata": {"creationTimestamp": stamp(3)}}) == (
        NOW - timedelta(minutes=3)).timestamp()
    assert last_written({"metadata": {}}) == 0.0


async def test_sweep_deletes_only_events_older_than_the_ttl(events, monkeypatch):
    monkeypatch.setattr(eventttl, "PAGE", 2)            # several pages
    for ns, name, ago in [("default", "old-1", 61), ("default", "fresh", 59),
                          ("kube-system", "old-2", 300), ("default", "old-3", 62),
                          ("default", "repeated", 1)]:
        first = 500 if name == "repeated" else None     # first seen long ago, repeated now
        await events.create(ns, event(name, ago, first, ns))
    gone = await EventTTL(events).sweep(now=NOW.timestamp())
    assert gone == 3
    left, *_ = await events.list(None)
    assert sorted(e["metadata"]["name"] for e in left) == ["fresh", "repeated"]


async def test_a_repeat_written_after_the_list_keeps_the_event(events):
    await events.create("default", event("busy", 90))
    (judged,), *_ = await events.list(None)
    # the recorder bumps the count between the sweep's list and its delete
    bumped = dict(copy.deepcopy(judged), count=2, lastTimestamp=stamp(0))
    await events.update("default", "busy", bumped)
    assert await EventTTL(events)._delete(judged) == 0
    assert (await events.get("default", "busy"))["count"] == 2


async def test_ttl_is_configurable(events):
    await events.create("default", event("ten-minutes", 10))
    assert await EventTTL(events, ttl=3600).sweep(now=NOW.timestamp()) == 0
    assert await EventTTL(events, ttl=300).sweep(now=NOW.timestamp()) == 1
