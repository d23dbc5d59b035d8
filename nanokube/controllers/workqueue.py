"""A de-duplicating, rate-limited work queue, as client-go's workqueue.

- a key added several times before a worker takes it is processed once;
- a key is never processed by two workers at once: added while in flight, it is queued again
  when the worker calls done();
- add_rate_limited() requeues with a per-key exponential backoff; forget() resets it;
- add_after() requeues after a delay (e.g. when minReadySeconds will have passed).
"""
from __future__ import annotations

import asyncio
from collections import deque


class WorkQueue:
    def __init__(self, base_delay: float = 0.005, max_delay: float = 30.0):
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()        # waiting to be processed
        self._processing: set[str] = set()
        self._failures: dict[str, int] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._wakeup = asyncio.Event()
        self._shutdown = False
        self.base_delay = base_delay
        self.max_delay = max_delay

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, key: str) -> None:
        if self._shutdown or key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.append(key)
            self._wakeup.set()

    def add_after(self, key: str, delay: float) -> None:
        """Add once `delay` seconds have passed; an earlier pending timer for the key wins."""
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        timer = self._timers.get(key)
        when = loop.time() + delay
        if timer is not None and not timer.cancelled() and timer.when() <= when:
            return
        if timer is not None:
            timer.cancel()
        self._timers[key] = loop.call_at(when, self._fire, key)

    def _fire(self, key: str) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def backoff(self, key: str) -> float:
        failures = self._failures.get(key, 0)
        return min(self.base_delay * (2 ** failures), self.max_delay)

    def add_rate_limited(self, key: str) -> None:
        delay = self.backoff(key)
        self._failures[key] = self._failures.get(key, 0) + 1
        self.add_after(key, delay)

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    async def get(self) -> str:
        """The next key; the caller must call done(key) when finished with it."""
        while not self._queue:
            if self._shutdown:
                raise asyncio.CancelledError()
            self._wakeup.clear()
            await self._wakeup.wait()
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        return key

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._wakeup.set()

    def shutdown(self) -> None:
        self._shutdown = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._wakeup.set()
