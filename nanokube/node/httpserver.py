"""A small HTTP/1.1 server on asyncio streams, for the node agent's endpoints: the kubelet's
logs and exec (:10250), kube-proxy's metrics and health (:10249, :10256) and the
healthCheckNodePort servers.

Why not aiohttp's server: importing aiohttp.web costs the agent about 25 MB of memory, and these
endpoints need little: GET requests with a few query parameters, answers with Content-Length or
chunked, and one WebSocket (exec). Requests are parsed here (request line, headers with a size
limit, Content-Length bodies, keep-alive); malformed ones get Go's net/http answers (the kubelet
and kube-proxy are Go servers). WebSocket frames are wsproto's (sans-IO, about 1 MB with h11);
the opening handshake is done here because routing needs the parsed request first.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import re
from email.utils import formatdate
from http import HTTPStatus
from typing import AsyncIterator, Awaitable, Callable, Union
from urllib.parse import parse_qsl, unquote, urlsplit

import wsproto
from wsproto.connection import ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Event, Message, Ping, TextMessage
from wsproto.utilities import ProtocolError

from nanokube.httpclient import Headers

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 8190              # one request or header line (aiohttp's and nginx's limit)
MAX_HEADER_BYTES = 64 * 1024       # the request line and all headers together
MAX_BODY_BYTES = 1 << 20
MAX_MESSAGE_BYTES = 4 << 20        # one WebSocket message, as aiohttp allowed
KEEPALIVE_TIMEOUT = 75.0           # an idle (or slow) client's connection is closed then
WS_CLOSE_TIMEOUT = 10.0            # how long to wait for the client's close frame
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"    # RFC 6455 section 1.3

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VERSION = re.compile(r"HTTP/(\d)\.(\d)")


class BadRequest(Exception):
    """A request we cannot parse: answered as Go's net/http answers, then the connection ends."""

    def __init__(self, status: int, detail: str = ""):
        super().__init__(detail)
        self.status = status
        self.detail = detail

    def answer(self) -> bytes:
        public = f"{self.status} {HTTPStatus(self.status).phrase}"
        body = f"{public}: {self.detail}" if self.detail else public
        return (f"HTTP/1.1 {public}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                f"Connection: close\r\n\r\n{body}").encode()


class Query:
    """The query string's parameters, in order; a name may repeat (command=sh&command=-c)."""

    def __init__(self, pairs: list[tuple[str, str]]):
        self._pairs = pairs

    def get(self, name: str, default: str | None = None) -> str | None:
        return next((v for k, v in self._pairs if k == name), default)

    def getall(self, name: str, default: list | None = None) -> list[str]:
        found = [v for k, v in self._pairs if k == name]
        return found if found else (default if default is not None else [])

    def items(self) -> list[tuple[str, str]]:
        return list(self._pairs)

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None


class Request:
    def __init__(self, method: str, target: str, version: str, headers: Headers,
                 reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.method = method
        self.version = version                  # "1.1" or "1.0"
        self.headers = headers
        url = urlsplit(target)
        self.path = url.path
        self.query = Query(parse_qsl(url.query, keep_blank_values=True))
        self.match_info: dict[str, str] = {}
        self.body = b""
        peer = writer.get_extra_info("peername")
        self.remote: str | None = peer[0] if peer else None
        self.keep_alive = _keep_alive(version, headers)
        self.started = False                    # the answer's head went out
        self.answered = False                   # the complete answer went out
        self._reader, self._writer = reader, writer

    def head(self, status: int, headers: dict[str, str], length: int | None) -> bytes:
        """The status line and headers of an answer, in aiohttp's order (which clients saw
        before): the handler's headers, the framing, Date, Connection."""
        self.started = True
        lines = [f"HTTP/{self.version} {status} {HTTPStatus(status).phrase}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if length is not None:
            lines.append(f"Content-Length: {length}")
        elif status != 101 and self.version == "1.1":
            lines.append("Transfer-Encoding: chunked")
        elif status != 101:
            self.keep_alive = False             # an HTTP/1.0 body ends with the connection
        lines.append(f"Date: {formatdate(usegmt=True)}")
        if status != 101 and self.version == "1.1" and not self.keep_alive:
            lines.append("Connection: close")
        elif self.version == "1.0" and self.keep_alive:
            lines.append("Connection: keep-alive")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _keep_alive(version: str, headers: Headers) -> bool:
    tokens = _tokens(headers, "connection")
    return "keep-alive" in tokens if version == "1.0" else "close" not in tokens


def _tokens(headers: Headers, name: str) -> set[str]:
    """A list-valued header's tokens, lowercased; repeated headers count as one joined list."""
    return {t.strip().lower() for v in headers.getall(name) for t in v.split(",")} - {""}


class Response:
    """A complete answer with Content-Length."""

    def __init__(self, status: int = 200, body: bytes = b"", headers: dict | None = None,
                 text: str | None = None):
        self.status = status
        self.headers = dict(headers or {})
        if text is not None:
            body = text.encode()
            self.headers = {"Content-Type": "text/plain; charset=utf-8", **self.headers}
        self.body = body

    async def send(self, request: Request) -> None:
        data = request.head(self.status, self.headers, len(self.body))
        if request.method != "HEAD":
            data += self.body
        request._writer.write(data)
        await request._writer.drain()
        request.answered = True


class StreamResponse:
    """An answer written as it is made: chunked for HTTP/1.1, until the connection ends for
    HTTP/1.0. If the handler returns before write_eof (the client went away), the connection
    is closed."""

    def __init__(self, status: int = 200, headers: dict | None = None):
        self.status = status
        self.headers = dict(headers or {})
        self._request: Request | None = None
        self._chunked = False

    async def prepare(self, request: Request) -> None:
        self._request = request
        head = request.head(self.status, self.headers, None)
        self._chunked = request.version == "1.1"
        request._writer.write(head)
        await request._writer.drain()

    async def write(self, data: bytes) -> None:
        request = self._request
        if not data or request.method == "HEAD":
            return
        if self._chunked:
            data = b"%x\r\n%b\r\n" % (len(data), data)
        request._writer.write(data)
        await request._writer.drain()

    async def write_eof(self) -> None:
        request = self._request
        if self._chunked and request.method != "HEAD":
            request._writer.write(b"0\r\n\r\n")
            await request._writer.drain()
        request.answered = True


Answer = Union[Response, StreamResponse, "WebSocket"]
Handler = Callable[[Request], Awaitable[Answer]]


# ---- parsing ----------------------------------------------------------------------------------

async def read_request(reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> Request | None:
    """The next request on the connection, None when the client closed it in between."""
    lines = await _read_head(reader)
    if lines is None:
        return None
    method, target, version = _request_line(lines[0])
    headers = Headers([_header(line) for line in lines[1:]])
    if headers.get("transfer-encoding") is not None:
        raise BadRequest(501, "request bodies with Transfer-Encoding are not supported")
    request = Request(method, target, version, headers, reader, writer)
    length = _content_length(headers)
    if length > MAX_BODY_BYTES:
        raise BadRequest(413)
    if length:
        try:
            request.body = await reader.readexactly(length)
        except asyncio.IncompleteReadError:
            raise BadRequest(400, "unexpected EOF in the body") from None
    return request


async def _read_head(reader: asyncio.StreamReader) -> list[bytes] | None:
    lines: list[bytes] = []
    size = 0
    while True:
        try:
            line = await reader.readline()
        except ValueError:                      # longer than the stream's limit
            raise BadRequest(431) from None
        size += len(line)
        if size > MAX_HEADER_BYTES or len(line) > MAX_LINE_BYTES + 2:
            raise BadRequest(431)
        if not line.endswith(b"\n"):            # the connection ended
            if lines or line.strip():
                raise BadRequest(400, "unexpected EOF in the request head")
            return None
        line = line.rstrip(b"\r\n")
        if line:
            lines.append(line)
        elif lines:
            return lines
        # empty lines before a request are ignored (RFC 9112 section 2.2)


def _request_line(line: bytes) -> tuple[str, str, str]:
    parts = line.split(b" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]):
        raise BadRequest(400, "malformed HTTP request")
    method, target, version = (p.decode("latin-1") for p in parts)
    m = _VERSION.fullmatch(version)
    if m is None:
        raise BadRequest(400, "malformed HTTP version")
    if m.group(1) != "1":
        raise BadRequest(505)
    if not target.startswith("/") and not target.startswith(("http://", "https://")):
        raise BadRequest(400, "malformed request target")
    return method, target, "1.0" if m.group(2) == "0" else "1.1"


def _header(line: bytes) -> tuple[str, str]:
    name, sep, value = line.partition(b":")
    if not sep or not _TOKEN.fullmatch(name):     # also folded lines, which start with space
        raise BadRequest(400, "malformed MIME header line")
    return name.decode("latin-1").lower(), value.strip(b" \t").decode("latin-1")


def _content_length(headers: Headers) -> int:
    values = set(headers.getall("content-length"))
    if not values:
        return 0
    if len(values) > 1 or not values.copy().pop().isdigit():
        raise BadRequest(400, "bad Content-Length")
    return int(values.pop())


# ---- routing ---------------------------------------------------------------------------------

class Router:
    """Paths like /containerLogs/{namespace}/{pod}/{container} to handlers; the matched parts
    are in request.match_info, percent-decoded."""

    def __init__(self) -> None:
        self._routes: list[tuple[tuple[str, ...] | None, re.Pattern, Handler]] = []

    def add(self, methods: tuple[str, ...] | None, pattern: str, handler: Handler) -> None:
        """methods None: any method."""
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
        self._routes.append((methods, re.compile(regex), handler))

    def add_get(self, pattern: str, handler: Handler) -> None:
        self.add(("GET", "HEAD"), pattern, handler)

    async def __call__(self, request: Request) -> Answer:
        allowed: set[str] = set()
        for methods, regex, handler in self._routes:
            m = regex.fullmatch(request.path)
            if m is None:
                continue
            if methods is None or request.method in methods:
                request.match_info = {k: unquote(v) for k, v in m.groupdict().items()}
                return await handler(request)
            allowed.update(methods)
        if allowed:
            return Response(405, text="405: Method Not Allowed",
                            headers={"Allow": ",".join(sorted(allowed))})
        return Response(404, text="404: Not Found")


# ---- WebSocket ---------------------------------------------------------------------------------

def websocket_requested(request: Request) -> bool:
    """A valid RFC 6455 opening handshake: GET with Upgrade: websocket, Connection: upgrade,
    version 13 (or the drafts 7 and 8, which frame alike) and a 16-byte key."""
    h = request.headers
    if request.method != "GET" or (h.get("upgrade") or "").strip().lower() != "websocket" \
            or "upgrade" not in _tokens(h, "connection") \
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


async def accept_websocket(request: Request, protocol: str | None) -> "WebSocket":
    """Answer the handshake (check websocket_requested first) with 101 and the chosen
    subprotocol; the connection then carries WebSocket frames until ws.close()."""
    key = request.headers.get("sec-websocket-key").encode()
    accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest()).decode()
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
                async with asyncio.timeout(WS_CLOSE_TIMEOUT):
                    async for _ in self:
                        pass                            # messages after our close are dropped
        except (ConnectionError, TimeoutError, ProtocolError):
            pass
        finally:
            self._writer.close()


# ---- the server ------------------------------------------------------------------------------

class HTTPServer:
    """Listens on host:port and answers each request with handler(request)."""

    def __init__(self, handler: Handler, host: str, port: int):
        self.handler = handler
        self.host, self.port = host, port
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[asyncio.Task] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connection, self.host, self.port,
                                                  limit=MAX_LINE_BYTES + 2)

    @property
    def addresses(self) -> list[tuple]:
        """The bound socket addresses (with port 0, the port the kernel chose)."""
        return [s.getsockname() for s in self._server.sockets] if self._server else []

    async def close(self) -> None:
        """Stop listening and end open connections (their handlers are cancelled)."""
        if self._server is None:
            return
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass                                    # the client went away
        except asyncio.CancelledError:
            pass    # close(); the task must not end cancelled (start_server's callback fails)
        except Exception:
            log.exception("error handling a request from %s", writer.get_extra_info("peername"))
        finally:
            self._connections.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                async with asyncio.timeout(KEEPALIVE_TIMEOUT):
                    request = await read_request(reader, writer)
            except TimeoutError:
                return
            except BadRequest as e:
                writer.write(e.answer())
                await writer.drain()
                return
            if request is None:
                return
            answer = await self._answer(request)
            if isinstance(answer, Response):
                await answer.send(request)
            if not (request.keep_alive and request.answered):
                return

    async def _answer(self, request: Request) -> Answer | None:
        try:
            return await self.handler(request)
        except Exception:
            log.exception("error handling %s %s", request.method, request.path)
            request.keep_alive = False
            if request.started:                 # too late for an error status
                return None
            return Response(500, text="500 Internal Server Error\n\nServer got itself in trouble")
