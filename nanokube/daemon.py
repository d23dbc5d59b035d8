"""What every long-running nanokube process shares: logging, uvloop, a clean stop on signals."""
from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Awaitable


def stop_event(stop: asyncio.Event | None = None) -> asyncio.Event:
    """An event set by SIGTERM or SIGINT (the running loop must be the process's main one)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):   # not the main thread (tests)
            pass
    return stop


def run(coro: Awaitable) -> int:
    """Log to stderr and run the process's coroutine on uvloop when it is there."""
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        import uvloop
        runner = uvloop.run
    except ImportError:     # uvloop is an optimisation, not a need
        runner = asyncio.run
    try:
        result = runner(coro)
    except KeyboardInterrupt:
        return 0
    return int(result or 0)
