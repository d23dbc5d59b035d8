"""The work queue and the informer cache."""
from __future__ import annotations

import asyncio

from nanokube.api.errors import StatusError
from nanokube.controllers.informer import Informer
from nanokube.controllers.workqueue import WorkQueue


def run(coro):
    return asyncio.run(coro)


def test_deduplicates_and_requeues_keys_added_while_processing():
    async def main():
        q = WorkQueue()
        q.add("a"), q.add("b"), q.add("a")
        assert len(q) == 2
        key = await q.get()
        assert key == "a"
        q.add("a")                       # while in flight: not handed to another worker
        assert await q.get() == "b"
        assert len(q) == 0
        q.done("a")                      # now it comes back
        assert await q.get() == "a"
    run(main())


def test_rate_limited_backoff_and_add_after():
    async def main():
        q = WorkQueue(base_delay=0.01, max_delay=0.04)
        assert [q.backoff("k")] == [0.01]
        q.add_rate_limited("k")
        q.add_rate_limited("k")
        q.add_rate_limited("k")
        assert q.backoff("k") == 0.04      # capped
        assert await asyncio.wait_for(q.get(), 1) == "k"
        q.done("k")
        q.forget("k")
        assert q.backoff("k") == 0.01
        q.add_after("later", 0.05)
        assert len(q) == 0
        assert await asyncio.wait_for(q.get(), 1) == "later"
    run(main())


class FakeClient:
    """Lists then watches; the first watch ends with 410 Expired."""

    def __init__(self):
        self.lists = 0
        self.items = [{"metadata": {"name": "a", "namespace": "ns", "resourceVersion": "1"}}]

    async def list(self, path):
        self.lists += 1
        return {"metadata": {"resourceVersion": "5"}, "items": list(self.items)}

    async def watch(self, path, resource_version=None, **params):
        if self.lists == 1:
            yield {"type": "ADDED", "object": {"metadata": {
                "name": "b", "namespace": "ns", "resourceVersion": "6"}}}
            self.items = [{"metadata": {"name": "c", "namespace": "ns",
                                        "resourceVersion": "9"}}]
            raise StatusError(410, "Expired", "too old resource version: 5 (8)")
        await asyncio.sleep(3600)
        yield {}


def test_informer_relists_after_expired_and_tells_handlers():
    async def main():
        inf = Informer(FakeClient(), "", "v1", "pods")
        inf.client = FakeClient()
        events = []
        inf.add_handler(lambda old, new: events.append(
            ("add" if old is None else "delete" if new is None else "update",
             (new or old)["metadata"]["name"])))
        task = asyncio.create_task(inf.run())
        for _ in range(100):
            await asyncio.sleep(0.01)
            if inf.client.lists == 2:
                break
        task.cancel()
        assert sorted(o["metadata"]["name"] for o in inf.list("ns")) == ["c"]
        assert events == [("add", "a"), ("add", "b"), ("delete", "a"), ("delete", "b"),
                          ("add", "c")]
        assert inf.list("other") == []
    run(main())


def test_write_through_is_not_undone_by_an_older_event():
    inf = Informer(None, "", "v1", "pods")
    inf.write_through({"metadata": {"name": "a", "namespace": "n", "resourceVersion": "7"}})
    inf._set({"metadata": {"name": "a", "namespace": "n", "resourceVersion": "5",
                           "labels": {"old": "1"}}})
    assert inf.get("n/a")["metadata"]["resourceVersion"] == "7"
    inf.write_through(None, "n/a")
    assert inf.get("n/a") is None
