"""Fan-out of committed events to live watchers, with a bounded buffer per watcher.

Writers call `Broadcaster.publish` right after each commit; it never blocks: a watcher whose
buffer is full is ended with WatcherTooSlowError (its client re-lists), as kine and the
Kubernetes watch cache drop watchers that cannot keep up.
"""
from __future__ import annotations

import asyncio

from nanokube.store import Event, WatcherTooSlowError


class Subscription:
    """One live watcher: events under `prefix` with revision > `after`, buffered until read."""

    def __init__(self, prefix: str, after: int, max_pending: int):
        self.prefix = prefix
        self.after = after
        self.max_pending = max_pending
        self._pending: list[Event] = []
        self._wakeup = asyncio.Event()
        self._error: Exception | None = None
        self._ended = False

    @property
    def ended(self) -> bool:
        return self._ended

    def push(self, event: Event) -> bool:
        """Buffer `event`; False (and the subscription ended) when the buffer was full."""
        if len(self._pending) >= self.max_pending:
            received = self._pending[0].kv.mod_revision - 1
            self.end(WatcherTooSlowError(received, event.kv.mod_revision))
            return False
        self._pending.append(event)
        self._wakeup.set()
        return True

    def end(self, error: Exception | None = None) -> None:
        """Stop the subscription: with an error, buffered events are dropped and the error is
        raised to the reader; without one, the reader gets what is buffered, then the end."""
        if self._ended:
            return
        self._ended = True
        if error is not None:
            self._error = error
            self._pending = []
        self._wakeup.set()

    def drop_pending(self) -> None:
        self._pending = []

    async def next_batch(self) -> list[Event]:
        """All buffered events (waiting for one); StopAsyncIteration once ended and drained."""
        while True:
            if self._error is not None:
                raise self._error
            if self._pending:
                batch, self._pending = self._pending, []
                return batch
            if self._ended:
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()


class Broadcaster:
    def __init__(self, max_pending: int):
        self.max_pending = max_pending
        self._subs: set[Subscription] = set()

    def __len__(self) -> int:
        return len(self._subs)

    def subscribe(self, prefix: str, after: int) -> Subscription:
        sub = Subscription(prefix, after, self.max_pending)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    def publish(self, event: Event) -> None:
        key, rev = event.kv.key, event.kv.mod_revision
        dropped = [sub for sub in self._subs
                   if rev > sub.after and key.startswith(sub.prefix) and not sub.push(event)]
        for sub in dropped:
            self._subs.discard(sub)

    def close(self) -> None:
        for sub in self._subs:
            sub.end()
        self._subs.clear()
