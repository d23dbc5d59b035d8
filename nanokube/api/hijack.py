"""Taking an upgraded connection away from aiohttp (SPDY for port-forward, a pod's WebSocket
through the API server proxy).

aiohttp upgrades only to WebSocket; for any other protocol its HTTP parser must not see the
bytes that follow our 101. Until the relay ends, the transport feeds a stream reader of ours;
then aiohttp gets its protocol back and sees the connection end. The client sends nothing
before our 101, so nothing was parsed ahead.
"""
from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator

from aiohttp import web

from nanokube.splice import CHUNK, Stream


@contextlib.asynccontextmanager
async def hijacked(request: web.Request) -> AsyncIterator[Stream]:
    transport = request.transport
    if transport is None:
        raise ConnectionResetError("the client went away")
    loop = asyncio.get_running_loop()
    aiohttp_protocol = transport.get_protocol()
    reader = asyncio.StreamReader(limit=CHUNK, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport.set_protocol(protocol)
    protocol.connection_made(transport)
    try:
        yield reader, asyncio.StreamWriter(transport, protocol, reader, loop)
    finally:
        if not transport.is_closing():
            transport.close()
        transport.set_protocol(aiohttp_protocol)     # so that aiohttp sees the end
