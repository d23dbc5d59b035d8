"""The server side of RFC 6455 WebSockets over an httpserver request, for exec.

The opening handshake (Sec-WebSocket-Accept, the subprotocol) is done here, on the request the
router already parsed; the frames (masked client frames, fragmentation, ping, close) are
wsproto's, a small sans-IO library. Only an exec loads this module (and wsproto with h11, about
1 MB), so an idle agent does not pay for it.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
from typing import AsyncIterator

import wsproto
from wsproto.connection import ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Event, Message, Ping, TextMessage
from wsproto.utilities import ProtocolError

from nanokube.node.httpserver import Request, tokens

MAX_MESSAGE_BYTES = 4 << 20        # one message, as aiohttp allowed
CLOSE_TIMEOUT = 10.0               # how long to wait for the client's close frame
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"    # RFC 6455 section 1.3


def websocket_requested(request: Request) -> bool:
    """A valid RFC 6455 opening handshake: GET with Upgrade: websocket, Connection: upgrade,
    version 13 (or the drafts 7 and 8, which frame alike) and a 16-byte key."""
    h = request.headers
    if request.method != "GET" or (h.get("upgrade") or "").strip().lower() != "websocket" \
            or "upgrade" not in tokens(h, "connection") \
            or h.get("sec-websocket-version") not in ("13", "8", "7"):
        return False
    try:
        return len(base64.b64decode(h.get("sec-websocket-key") or "", validate=True)) == 16
    except binascii.Error:
        return False


def offered_protocols(request: Request) -> list[str]:
    """The client's Sec-WebSocket-Protocol values, in its order of preference."""
    header = ",".join(request.headers.getall("sec-websocket-protocol"))
    return [p.strip() for p in header.split(",") if p.strip()]


async def accept_websocket(request: Request, protocol: str | None) -> WebSocket:
    """Answer the handshake (check websocket_requested first) with 101 and the chosen
    subprotocol; the connection then carries WebSocket frames until ws.close()."""
    key = request.headers.get("sec-websocket-key").encode()
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
    headers = {"Upgrade": "websocket", "Connection": "upgrade", "Sec-WebSocket-Accept": accept}
    if protocol:
        headers["Sec-WebSocket-Protocol"] = protocol
    request.keep_alive = False
    request._writer.write(request.head(101, headers, None))
    await request._writer.drain()
    return WebSocket(request._reader, request._writer, protocol)


class WebSocket:
    """The server side of an accepted WebSocket: iterate it for the client's messages (bytes
    or str) until the client closes; pings are answered. No extensions (permessage-deflate is
    not accepted)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 protocol: str | None):
        self.protocol = protocol
        self._reader, self._writer = reader, writer
        self._conn = wsproto.Connection(wsproto.ConnectionType.SERVER)
        self._parts: list = []
        self._size = 0

    @property
    def closed(self) -> bool:
        """Closing has begun, by either side."""
        return self._conn.state is not ConnectionState.OPEN

    async def send_bytes(self, data: bytes) -> None:
        await self._send_message(BytesMessage(data=data))

    async def send_str(self, text: str) -> None:
        await self._send_message(TextMessage(data=text))

    async def _send_message(self, event: Message) -> None:
        if self.closed:
            raise ConnectionResetError("the WebSocket is closing")
        await self._send(event)

    async def _send(self, event: Event) -> None:
        self._writer.write(self._conn.send(event))
        await self._writer.drain()

    def __aiter__(self) -> AsyncIterator[bytes | str]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[bytes | str]:
        while self._conn.state in (ConnectionState.OPEN, ConnectionState.LOCAL_CLOSING):
            for event in self._conn.events():
                if isinstance(event, Message):
                    message = self._assemble(event)
                    if message is not None:
                        yield message
                    elif self._size > MAX_MESSAGE_BYTES:
                        await self._send(CloseConnection(code=1009, reason="message too big"))
                        return
                elif isinstance(event, Ping):
                    await self._send(event.response())
                elif isinstance(event, CloseConnection):
                    await self._on_close(event)
                    return
            data = await self._reader.read(64 * 1024)
            self._conn.receive_data(data or None)       # None: the connection was lost

    def _assemble(self, event: Message) -> bytes | str | None:
        """A whole message from its fragments (wsproto hands them over as they come)."""
        self._parts.append(event.data)
        self._size += len(event.data)
        if not event.message_finished or self._size > MAX_MESSAGE_BYTES:
            return None
        message = ("" if isinstance(event, TextMessage) else b"").join(self._parts)
        self._parts, self._size = [], 0
        return message

    async def _on_close(self, event: CloseConnection) -> None:
        state = self._conn.state
        if state is ConnectionState.REMOTE_CLOSING:     # the client's close: echo it
            await self._send(event.response())
        elif state is ConnectionState.OPEN:              # a frame we could not parse
            await self._send(CloseConnection(code=event.code, reason=event.reason))

    async def close(self, code: int = 1000) -> None:
        """Send a close frame, wait (a while) for the client's, then end the connection."""
        try:
            if self._conn.state is ConnectionState.OPEN:
                await self._send(CloseConnection(code=code))
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    async for _ in self:
                        pass                            # messages after our close are dropped
        except (ConnectionError, TimeoutError, ProtocolError):
            pass
        finally:
            self._writer.close()
