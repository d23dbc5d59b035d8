"""A small HTTP/1.1 client on asyncio streams, for talking to the API server.

Why not aiohttp's client: every controller, agent and addon process holds one API client, and
importing aiohttp costs each of them about 14 MB of memory and 100-400 ms of start-up; the API
server speaks plain HTTP/1.1 with JSON bodies, Content-Length or chunked, so this needs only
keep-alive connections, chunked decoding and TLS from the standard library.
"""
from __future__ import annotations

import asyncio
import ssl
from typing import AsyncIterator
from urllib.parse import urlsplit

MAX_HEADER_BYTES = 64 * 1024


class HTTPError(OSError):
    """The connection failed or the answer was not HTTP."""


class Headers:
    def __init__(self, pairs: list[tuple[str, str]]):
        self._pairs = pairs

    def get(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        return next((v for k, v in self._pairs if k == name), default)

    def getall(self, name: str, default: list | None = None) -> list[str]:
        name = name.lower()
        found = [v for k, v in self._pairs if k == name]
        return found if found else (default if default is not None else [])


class Response:
    """One answer; its body is read once, with read() or content.iter_any()."""

    def __init__(self, session: "Session", key, reader, writer, status: int,
                 headers: Headers):
        self._session, self._key = session, key
        self._reader, self._writer = reader, writer
        self.status = status
        self.headers = headers
        self.content = self
        self._done = False
        length = headers.get("content-length")
        self._chunked = "chunked" in (headers.get("transfer-encoding") or "").lower()
        self._remaining = int(length) if length is not None else None

    async def __aenter__(self) -> "Response":
        return self

    async def __aexit__(self, *exc) -> None:
        self.release()

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.iter_any()])

    async def iter_any(self) -> AsyncIterator[bytes]:
        if self._done:
            return
        if self._chunked:
            while True:
                size_line = await self._reader.readline()
                if not size_line:
                    raise HTTPError("connection closed inside a chunked body")
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    await self._reader.readline()     # the empty trailer
                    break
                data = await self._reader.readexactly(size)
                await self._reader.readexactly(2)     # CRLF
                yield data
        elif self._remaining is not None:
            while self._remaining > 0:
                data = await self._reader.read(min(self._remaining, 1 << 20))
                if not data:
                    raise HTTPError("connection closed inside the body")
                self._remaining -= len(data)
                yield data
        else:  # no length: until the server closes
            while data := await self._reader.read(1 << 20):
                yield data
            self._writer.close()
            self._writer = None
        self._done = True

    def release(self) -> None:
        """A fully read answer hands its connection back; anything else closes it."""
        if self._writer is None:
            return
        if self._done and self.headers.get("connection", "").lower() != "close":
            self._session._idle.setdefault(self._key, []).append((self._reader, self._writer))
        else:
            self._writer.close()
        self._writer = None


class Session:
    def __init__(self, ssl_context: ssl.SSLContext | None, headers: dict[str, str],
                 connect_timeout: float = 10.0):
        self._ssl = ssl_context
        self._headers = headers
        self._connect_timeout = connect_timeout
        self._idle: dict[tuple, list] = {}
        self.closed = False

    async def _connect(self, key, server_hostname: str | None):
        idle = self._idle.get(key) or []
        while idle:
            reader, writer = idle.pop()
            if not writer.is_closing() and not reader.at_eof():
                return reader, writer, True
            writer.close()
        scheme, host, port = key
        tls = self._ssl if scheme == "https" else None
        if scheme == "https" and tls is None:
            tls = ssl.create_default_context()
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(
                host, port, ssl=tls, server_hostname=(server_hostname or host) if tls else None,
                limit=MAX_HEADER_BYTES * 16), self._connect_timeout)
        except (OSError, asyncio.TimeoutError) as e:
            raise HTTPError(f"dial tcp {host}:{port}: {e}") from e
        return reader, writer, False

    async def request(self, method: str, url: str, data=None, headers: dict | None = None,
                      server_hostname: str | None = None) -> Response:
        parts = urlsplit(url)
        key = (parts.scheme, parts.hostname, parts.port or (443 if parts.scheme == "https"
                                                           else 80))
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        body = data.encode() if isinstance(data, str) else (data or b"")
        # A Host header of the caller's replaces the URL's (a name served at an address)
        fields = {"Host": parts.netloc, **self._headers, **(headers or {})}
        lines = [f"{method} {target} HTTP/1.1"]
        for name, value in fields.items():
            lines.append(f"{name}: {value}")
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode()
        for attempt in (0, 1):
            reader, writer, reused = await self._connect(key, server_hostname)
            try:
                writer.write(head + body)
                await writer.drain()
                status, hdrs = await self._read_head(reader)
            except (OSError, asyncio.IncompleteReadError, HTTPError) as e:
                writer.close()
                if reused and attempt == 0:
                    continue      # the server closed an idle connection: one fresh try
                raise HTTPError(str(e) or type(e).__name__) from e
            return Response(self, key, reader, writer, status, hdrs)
        raise HTTPError("unreachable")

    @staticmethod
    async def _read_head(reader) -> tuple[int, Headers]:
        status_line = await reader.readline()
        if not status_line:
            raise HTTPError("connection closed before the answer")
        try:
            status = int(status_line.split(b" ", 2)[1])
        except (IndexError, ValueError):
            raise HTTPError(f"malformed status line {status_line[:80]!r}") from None
        pairs = []
        size = 0
        while True:
            line = await reader.readline()
            size += len(line)
            if size > MAX_HEADER_BYTES:
                raise HTTPError("answer headers too large")
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            pairs.append((name.strip().lower(), value.strip()))
        return status, Headers(pairs)

    async def close(self) -> None:
        self.closed = True
        for conns in self._idle.values():
            for _, writer in conns:
                writer.close()
        self._idle.clear()
