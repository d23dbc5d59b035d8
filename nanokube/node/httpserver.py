"""A small HTTP/1.1 server on asyncio streams, for the node agent's endpoints: the kubelet's
logs and exec (:10250), kube-proxy's metrics and health (:10249, :10256) and the
healthCheckNodePort servers.

Why not aiohttp's server: it made the idle agent about 10 MB larger (aiohttp.web and what it
loads), and these endpoints need little: GET requests with a few query parameters, answers with
Content-Length or chunked, and one WebSocket (exec, websocket.py). Requests are parsed here
(request line, headers with a size limit, Content-Length bodies, keep-alive); malformed ones
get Go's net/http answers (the kubelet and kube-proxy are Go servers).
"""
from __future__ import annotations

import asyncio
import logging
import re
from email.utils import formatdate
from http import HTTPStatus
from typing import TYPE_CHECKING, Awaitable, Callable, Union
from urllib.parse import parse_qsl, unquote, urlsplit

from nanokube.httpclient import Headers

if TYPE_CHECKING:
    from nanokube.node.websocket import WebSocket

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 8190              # one request or header line (aiohttp's and nginx's limit)
MAX_HEADER_BYTES = 64 * 1024       # the request line and all headers together
MAX_BODY_BYTES = 1 << 20
KEEPALIVE_TIMEOUT = 75.0           # an idle (or slow) client's connection is closed then

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
        before): the handler's headers, the framing, Date, Connection. Without a length the
        body is chunked (HTTP/1.1) or ends with the connection (HTTP/1.0)."""
        self.started = True
        lines = [f"HTTP/{self.version} {status} {HTTPStatus(status).phrase}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        upgrade = status == 101                 # no body: the connection changes protocol
        if length is not None:
            lines.append(f"Content-Length: {length}")
        elif self.version == "1.1" and not upgrade:
            lines.append("Transfer-Encoding: chunked")
        else:
            self.keep_alive = False
        lines.append(f"Date: {formatdate(usegmt=True)}")
        if self.version == "1.1" and not self.keep_alive and not upgrade:
            lines.append("Connection: close")
        elif self.version == "1.0" and self.keep_alive:
            lines.append("Connection: keep-alive")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _keep_alive(version: str, headers: Headers) -> bool:
    connection = tokens(headers, "connection")
    return "keep-alive" in connection if version == "1.0" else "close" not in connection


def tokens(headers: Headers, name: str) -> set[str]:
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
    values = set(headers.getall("content-length")) or {"0"}
    value = values.pop()
    if values or not (value.isascii() and value.isdigit()):     # several, or not a number
        raise BadRequest(400, "bad Content-Length")
    return int(value)


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
