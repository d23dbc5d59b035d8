"""A small HTTP/1.1 server for the catalogue's programs.

An asyncio Protocol that parses requests itself (no third-party parser: startup time and memory
count, as every pod runs one), keeps connections alive, answers pipelined requests in order and
lets a handler be a plain function (the fast path) or a coroutine function (for handlers that
wait on the network). Bodies may come with Content-Length or chunked; Expect: 100-continue is
honoured; HEAD answers have no body.
"""
from __future__ import annotations

import asyncio
import socket
import time
from typing import Awaitable, Callable, Union
from urllib.parse import parse_qs, unquote, urlsplit

from nanokube.images.serving import CONNECTIONS, bind_socket, format_peer, go_log

MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024

REASONS = {100: "Continue", 200: "OK", 201: "Created", 204: "No Content", 301: "Moved Permanently",
           302: "Found", 303: "See Other", 304: "Not Modified", 400: "Bad Request",
           403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
           413: "Payload Too Large", 414: "URI Too Long", 431: "Request Header Fields Too Large",
           500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway",
           503: "Service Unavailable", 504: "Gateway Timeout", 505: "HTTP Version Not Supported"}

class Request:
    __slots__ = ("method", "target", "version", "headers", "body", "peer", "local", "_split")

    def __init__(self, method: str, target: str, version: str, headers: list[tuple[str, str]],
                 peer: str, local: str):
        self.method, self.target, self.version = method, target, version
        self.headers = headers                  # in arrival order, names as sent
        self.body = b""
        self.peer, self.local = peer, local
        self._split = None

    def header(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return default

    @property
    def path(self) -> str:
        if self._split is None:
            self._split = urlsplit(self.target)
        return unquote(self._split.path)

    @property
    def query(self) -> dict[str, list[str]]:
        if self._split is None:
            self._split = urlsplit(self.target)
        return parse_qs(self._split.query, keep_blank_values=True)

    def param(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[0] if values else default


class Response:
    __slots__ = ("status", "body", "headers", "close")

    def __init__(self, status: int = 200, body: bytes | str = b"",
                 content_type: str | None = "text/plain; charset=utf-8",
                 headers: list[tuple[str, str]] | None = None, close: bool = False):
        self.status = status
        self.body = body.encode() if isinstance(body, str) else body
        self.headers = list(headers or [])
        if content_type and self.body:
            self.headers.append(("Content-Type", content_type))
        self.close = close                      # close the connection after this response


Handler = Callable[[Request], Union[Response, Awaitable[Response]]]

_date_cache = [0, ""]


def http_date() -> str:
    now = int(time.time())
    if now != _date_cache[0]:
        _date_cache[0] = now
        _date_cache[1] = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now))
    return _date_cache[1]


class HTTPProtocol(asyncio.Protocol):
    """One HTTP/1.x connection: parse, dispatch to the handler, answer in order."""

    def __init__(self, handler: Handler, server_header: str | None = None,
                 on_response: Callable[[Request, Response], None] | None = None):
        self.handler = handler
        self.server_header = server_header
        self.on_response = on_response
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.busy = False                       # a coroutine handler is answering
        self.paused = False                     # the peer is not reading our answers
        self.closing = False
        self.continue_sent = False
        self.peer = self.local = ""

    # asyncio callbacks
    def connection_made(self, transport):
        self.transport = transport
        peer = transport.get_extra_info("peername")
        local = transport.get_extra_info("sockname")
        self.peer = format_peer(peer) if peer else ""
        self.local = format_peer(local) if local else ""
        CONNECTIONS.add(self)

    def connection_lost(self, exc):
        self.closing = True
        CONNECTIONS.discard(self)

    def data_received(self, data: bytes):
        self.buffer += data
        if len(self.buffer) > MAX_HEAD + MAX_BODY:
            self._fail(413)
            return
        if not self.busy and not self.paused:
            self._process()

    def pause_writing(self):
        self.paused = True
        self.transport.pause_reading()

    def resume_writing(self):
        self.paused = False
        self.transport.resume_reading()
        if not self.busy:
            self._process()

    # parsing and answering
    def _process(self) -> None:
        while self.buffer and not self.closing and not self.paused:
            request, consumed = self._parse()
            if request is None:
                return
            del self.buffer[:consumed]
            self.continue_sent = False
            keep_alive = _keep_alive(request)
            try:
                result = self.handler(request)
            except Exception as error:          # a handler bug answers 500, not a dead server
                go_log(f"handler error: {error!r}")
                result = Response(500, "internal error\n")
            if isinstance(result, Response):
                self._write(request, result, keep_alive)
            else:
                self.busy = True
                asyncio.ensure_future(self._finish(request, result, keep_alive))
                return

    async def _finish(self, request: Request, result: Awaitable[Response], keep_alive: bool):
        try:
            response = await result
        except Exception as error:
            go_log(f"handler error: {error!r}")
            response = Response(500, "internal error\n")
        self.busy = False
        if not self.closing:
            self._write(request, response, keep_alive)
            self._process()

    def _write(self, request: Request, response: Response, keep_alive: bool) -> None:
        keep_alive = keep_alive and not response.close
        lines = [f"HTTP/1.1 {response.status} {REASONS.get(response.status, 'Unknown')}"]
        if self.server_header:
            lines.append(f"Server: {self.server_header}")
        lines.append(f"Date: {http_date()}")
        lines.extend(f"{k}: {v}" for k, v in response.headers)
        if response.status >= 200 and response.status not in (204, 304):
            lines.append(f"Content-Length: {len(response.body)}")
        if not keep_alive:
            lines.append("Connection: close")
        elif request.version == "HTTP/1.0":
            lines.append("Connection: keep-alive")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        body = b"" if request.method == "HEAD" else response.body
        self.transport.write(head + body if len(body) < 16384 else head)
        if len(body) >= 16384:
            self.transport.write(body)
        if self.on_response is not None:
            self.on_response(request, response)
        if not keep_alive:
            self.closing = True
            self.transport.close()

    def _parse(self) -> tuple[Request | None, int]:
        """One complete request from the buffer, or (None, 0) when more bytes are needed."""
        buf = self.buffer
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEAD:
                self._fail(431)
            return None, 0
        try:
            head = buf[:end].decode("latin-1").split("\r\n")
            method, target, version = head[0].split(" ")
            if not version.startswith("HTTP/1."):
                raise ValueError(version)
            headers = []
            for line in head[1:]:
                name, _, value = line.partition(":")
                if not name or name != name.strip():
                    raise ValueError(line)
                headers.append((name, value.strip()))
        except ValueError:
            self._fail(400)
            return None, 0
        request = Request(method, target, version, headers, self.peer, self.local)
        start = end + 4
        if (request.header("transfer-encoding") or "").lower().endswith("chunked"):
            body, consumed = _dechunk(buf, start)
            if body is None:
                self._expect_continue(request)
                if consumed < 0:
                    self._fail(400)
                return None, 0
            request.body = body
            return request, consumed
        try:
            length = int(request.header("content-length") or 0)
        except ValueError:
            self._fail(400)
            return None, 0
        if length < 0 or length > MAX_BODY:
            self._fail(413 if length > 0 else 400)
            return None, 0
        if len(buf) < start + length:
            self._expect_continue(request)
            return None, 0
        request.body = bytes(buf[start:start + length])
        return request, start + length

    def _expect_continue(self, request: Request) -> None:
        if not self.continue_sent and (request.header("expect") or "").lower() == "100-continue":
            self.continue_sent = True
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _fail(self, status: int) -> None:
        body = f"{status} {REASONS[status]}".encode()
        self.transport.write(
            f"HTTP/1.1 {status} {REASONS[status]}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        self.closing = True
        self.buffer.clear()
        self.transport.close()


def _keep_alive(request: Request) -> bool:
    connection = (request.header("connection") or "").lower()
    if request.version == "HTTP/1.0":
        return "keep-alive" in connection
    return "close" not in connection


def _dechunk(buf: bytearray, start: int) -> tuple[bytes | None, int]:
    """Decode a chunked body: (body, end offset), (None, 0) if incomplete, (None, -1) if bad."""
    body = bytearray()
    pos = start
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None, 0
        try:
            size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
        except ValueError:
            return None, -1
        pos = eol + 2
        if size == 0:                           # trailers end with an empty line
            trailer_end = buf.find(b"\r\n", pos)
            while trailer_end > pos:
                pos = trailer_end + 2
                trailer_end = buf.find(b"\r\n", pos)
            if trailer_end < 0:
                return None, 0
            return bytes(body), trailer_end + 2
        if len(buf) < pos + size + 2:
            return None, 0
        body += buf[pos:pos + size]
        pos += size + 2
        if len(body) > MAX_BODY:
            return None, -1


async def serve_http(port: int, handler: Handler, *, server_header: str | None = None,
                     on_response=None, ssl=None) -> asyncio.AbstractServer:
    loop = asyncio.get_running_loop()
    sock = bind_socket(port, socket.SOCK_STREAM)
    return await loop.create_server(
        lambda: HTTPProtocol(handler, server_header, on_response), sock=sock, backlog=4096, ssl=ssl)
