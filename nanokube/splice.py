"""Relaying byte streams: the two directions of a connection run together until one ends.

Shared by the node agent (its pod tunnels) and the API server (exec, port-forward and proxy
relays); it imports nothing beyond asyncio, so the agent stays light.
"""
from __future__ import annotations

import asyncio

CHUNK = 64 * 1024

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def until_one_ends(*directions) -> None:
    """Run the directions of a stream together; when one ends, the others stop."""
    tasks = [asyncio.create_task(d) for d in directions]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def splice(a: Stream, b: Stream) -> None:
    """Bytes both ways until one side ends; drain() lets a slow reader slow the writer."""
    async def copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(CHUNK):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
    await until_one_ends(copy(a[0], b[1]), copy(b[0], a[1]))
