"""The kubelet's port-forward endpoint, served with logs and exec on <node-ip>:10250:

    POST|GET /portForward/{namespace}/{pod}      Upgrade: SPDY/3.1 (kubectl), or
    GET      /portForward/{namespace}/{pod}?port=8080&port=...   a WebSocket (v4.channel.k8s.io)

The API server relays `pods/NAME/portforward` here (both of kubectl's dialers arrive as a plain
SPDY upgrade: the API server unwraps the WebSocket tunnel). Each forwarded connection connects
to localhost:PORT inside the pod's network namespace, as a CRI runtime does, so a server bound
to 127.0.0.1 in the pod is reachable.

SPDY (protocol portforward.k8s.io): for every local connection kubectl opens two streams with
the headers `streamtype: error|data`, `port` and `requestid`; the pair's data stream carries
the bytes, and the error stream carries a message (then its end) when forwarding fails.
WebSocket (v4.channel.k8s.io): channel 2i carries port i's data, 2i+1 its error; the first
message of each channel is the port, two bytes little-endian.
"""
from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import socket
import struct
import threading
from collections import deque
from dataclasses import dataclass
from typing import Awaitable, Callable

from nanokube.goerrors import dial_error, errno_text
from nanokube.node import spdy
from nanokube.node.httpserver import Request, Response, Router, tokens

log = logging.getLogger(__name__)

PROTOCOL = "portforward.k8s.io"
WS_PROTOCOLS = ("v4.channel.k8s.io",)
STREAM_CREATION_TIMEOUT = 30.0      # the kubelet's default: both streams of a pair by then
INBOUND_LIMIT = 256 * 1024          # a stream's bytes waiting for its pod connection
CHUNK = 32 * 1024                   # one DATA frame from the pod (io.Copy's buffer in Go)
CLONE_NEWNET = 0x40000000


@dataclass
class PodSandbox:
    """Where a pod's ports are: its network namespace (None: the node's own, hostNetwork)."""
    uid: str
    netns: str | None


# (namespace, pod) -> the pod's sandbox, or a str saying why there is none
SandboxFinder = Callable[[str, str], "PodSandbox | str"]
# (sandbox, port) -> a connected socket; raises ForwardError
Dialer = Callable[[PodSandbox, int], Awaitable[socket.socket]]


class ForwardError(Exception):
    """Why a port could not be reached; the text goes to the client's error stream."""


# ---- connecting inside the pod's network namespace --------------------------------------------

def _socket_in_netns(netns: str | None, family: int) -> socket.socket:
    """A socket of the pod's network namespace: made in a thread of its own that joins the
    namespace first (setns changes only the calling thread, and a socket keeps the namespace it
    was made in), so the agent's other threads stay in the node's namespace."""
    if netns is None:
        return socket.socket(family, socket.SOCK_STREAM)
    result: list = []

    def made_inside() -> None:
        try:
            fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, os.strerror(err))
            finally:
                os.close(fd)
            result.append(socket.socket(family, socket.SOCK_STREAM))
        except OSError as e:
            result.append(e)
    thread = threading.Thread(target=made_inside, name="netns-socket")
    thread.start()
    thread.join()        # microseconds: open, setns, socket
    if isinstance(result[0], OSError):
        raise result[0]
    return result[0]


async def dial_localhost(sandbox: PodSandbox, port: int) -> socket.socket:
    """localhost:PORT in the sandbox, IPv4 then IPv6, with containerd's error text."""
    loop = asyncio.get_running_loop()
    errors = []
    for family, address, network in ((socket.AF_INET, "127.0.0.1", "tcp4"),
                                     (socket.AF_INET6, "::1", "tcp6")):
        try:
            sock = _socket_in_netns(sandbox.netns, family)
        except OSError as e:
            raise ForwardError(f"failed to execute portforward in network namespace "
                               f'"{sandbox.netns}": {errno_text(e)}') from None
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, (address, port))
            return sock
        except OSError as e:
            sock.close()
            shown = f"[{address}]" if family == socket.AF_INET6 else address
            errors.append(dial_error(shown, port, e, network))
    where = sandbox.netns or "host"
    raise ForwardError(f'failed to execute portforward in network namespace "{where}": failed '
                       f'to connect to localhost:{port} inside namespace "{sandbox.uid}", '
                       f"IPv4: {errors[0]} IPv6 {errors[1]} ")


def forward_failure(port: int, sandbox: PodSandbox, error: Exception) -> str:
    """The kubelet's error-stream message (the CRI runtime names the pod by its sandbox)."""
    return f"error forwarding port {port} to pod {sandbox.uid}, uid : {error}"


# ---- backpressure ----------------------------------------------------------------------------

class InboundBuffer:
    """Bytes the client sent on one stream, on their way to the pod. Bounded: put() waits while
    the buffer is full, and since the connection's frames are read one at a time, a pod that
    reads slowly stops the reading of the connection, which is TCP backpressure to the client
    (spdystream does no SPDY flow control; this is what it does too)."""

    def __init__(self, limit: int = INBOUND_LIMIT):
        self.limit = limit
        self._chunks: deque[bytes] = deque()
        self.size = 0
        self._eof = False
        self._aborted = False
        self._changed = asyncio.Condition()

    async def put(self, data: bytes) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.size < self.limit or self._aborted)
            if not self._aborted and not self._eof:
                self._chunks.append(data)
                self.size += len(data)
                self._changed.notify_all()

    async def get(self) -> bytes | None:
        """The next bytes; None once the client ended the stream (or it was aborted)."""
        async with self._changed:
            await self._changed.wait_for(lambda: self._chunks or self._eof or self._aborted)
            if self._aborted or not self._chunks:
                return None
            data = self._chunks.popleft()
            self.size -= len(data)
            self._changed.notify_all()
            return data

    async def close(self) -> None:
        async with self._changed:
            self._eof = True
            self._changed.notify_all()

    async def abort(self) -> None:
        """Drop what waits and release a blocked put(): nobody will read it."""
        async with self._changed:
            self._aborted = True
            self._chunks.clear()
            self.size = 0
            self._changed.notify_all()


async def pump_to_pod(buffer: InboundBuffer, writer: asyncio.StreamWriter) -> None:
    """The client's bytes into the pod's socket; the client's end becomes a half-close."""
    while (data := await buffer.get()) is not None:
        writer.write(data)
        await writer.drain()
    if writer.can_write_eof():
        writer.write_eof()


# ---- SPDY ----------------------------------------------------------------------------------------

class _Stream:
    def __init__(self, frame: spdy.SynStream):
        self.id = frame.stream_id
        self.type = _first(frame.headers, "streamtype")
        self.port = int(_first(frame.headers, "port"))
        self.request_id = _first(frame.headers, "requestid")
        self.inbound = InboundBuffer()
        self.reset = asyncio.Event()
        self.closed_here = False             # we sent FIN


class _Pair:
    def __init__(self, request_id: str):
        self.request_id = request_id
        self.data: _Stream | None = None
        self.error: _Stream | None = None
        self.timer: asyncio.TimerHandle | None = None


def _first(headers: spdy.Headers, name: str) -> str:
    values = headers.get(name) or [""]
    return values[0]


def check_stream_headers(headers: spdy.Headers) -> str | None:
    """The kubelet's reason to reject a new stream (it resets it), or None."""
    port = _first(headers, "port")
    if not port:
        return '"port" header is required'
    if not port.isdigit() or int(port) > 65535:
        return f'unable to parse "{port}" as a port: strconv.ParseUint: parsing "{port}": ' + \
            ("value out of range" if port.isdigit() else "invalid syntax")
    if int(port) < 1:
        return f'port "{port}" must be > 0'
    kind = _first(headers, "streamtype")
    if not kind:
        return '"streamtype" header is required'
    if kind not in ("error", "data"):
        return f'invalid stream type "{kind}"'
    return None


class SpdySession:
    """The server side of one port-forward connection: streams from the client, answered with
    SYN_REPLY, paired by request id, each pair one connection to the pod."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 sandbox: PodSandbox, dial: Dialer,
                 creation_timeout: float = STREAM_CREATION_TIMEOUT):
        self.reader, self.writer = reader, writer
        self.sandbox, self.dial = sandbox, dial
        self.creation_timeout = creation_timeout
        self.frames_in, self.frames_out = spdy.FrameReader(), spdy.FrameWriter()
        self.streams: dict[int, _Stream] = {}
        self.pairs: dict[str, _Pair] = {}
        self.last_stream_id = 0
        self.gone_away = False
        self.tasks: set[asyncio.Task] = set()

    async def send(self, frame: spdy.Frame) -> None:
        # encoded and written in one step: the header compressor's state follows the wire
        self.writer.write(self.frames_out.encode(frame))
        await self.writer.drain()

    async def run(self) -> None:
        try:
            while (frame := await self.frames_in.read(self.reader)) is not None:
                await self.handle(frame)
        except spdy.ProtocolError as e:
            log.info("port-forward connection: %s", e)
            try:
                await self.send(spdy.GoAway(self.last_stream_id, 1))
            except ConnectionError:
                pass
        except ConnectionError:
            pass
        finally:
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            for pair in self.pairs.values():
                if pair.timer:
                    pair.timer.cancel()

    async def handle(self, frame: spdy.Frame) -> None:
        if isinstance(frame, spdy.DataFrame):
            stream = self.streams.get(frame.stream_id)
            if stream is None:
                return                          # gone already (spdystream drops these too)
            if frame.data and stream.type == "data":
                await stream.inbound.put(frame.data)
            if frame.flags & spdy.FLAG_FIN:
                await stream.inbound.close()
        elif isinstance(frame, spdy.SynStream):
            await self.new_stream(frame)
        elif isinstance(frame, spdy.RstStream):
            stream = self.streams.get(frame.stream_id)
            if stream is not None:
                stream.reset.set()
                await stream.inbound.abort()
        elif isinstance(frame, spdy.Ping):
            if frame.id & 1:                    # the client's (odd) ping: echo it
                await self.send(frame)
        elif isinstance(frame, spdy.GoAway):
            self.gone_away = True               # no new streams; the current ones go on
        # SYN_REPLY (we open no streams), HEADERS, SETTINGS, WINDOW_UPDATE: ignored, as
        # spdystream ignores them

    async def new_stream(self, frame: spdy.SynStream) -> None:
        sid = frame.stream_id
        if sid % 2 == 0 or sid <= self.last_stream_id:
            await self.send(spdy.RstStream(sid, spdy.PROTOCOL_ERROR))
            return
        self.last_stream_id = sid
        if self.gone_away:
            await self.send(spdy.RstStream(sid, spdy.REFUSED_STREAM))
            return
        reason = check_stream_headers(frame.headers)
        if reason is not None:
            log.info("port-forward stream rejected: %s", reason)
            await self.send(spdy.RstStream(sid, spdy.CANCEL))
            return
        stream = _Stream(frame)
        if not stream.request_id:
            # an old client without request ids: the kubelet's best effort pairs consecutive
            # stream ids (error N, data N+2)
            stream.request_id = str(sid if stream.type == "error" else sid - 2)
        self.streams[sid] = stream
        await self.send(spdy.SynReply(sid))
        pair = self.pairs.get(stream.request_id)
        if pair is None:
            pair = self.pairs[stream.request_id] = _Pair(stream.request_id)
            pair.timer = asyncio.get_running_loop().call_later(
                self.creation_timeout, lambda: self._spawn(self.pair_timed_out(pair)))
        if getattr(pair, stream.type) is not None:
            await self.print_error(pair, f"error processing stream for request "
                                   f"{pair.request_id}: {stream.type} stream already assigned")
            return
        setattr(pair, stream.type, stream)
        if pair.data is not None and pair.error is not None:
            pair.timer.cancel()
            del self.pairs[pair.request_id]
            self._spawn(self.forward(pair.data, pair.error))

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def print_error(self, pair: _Pair, message: str) -> None:
        if pair.error is not None:
            await self.send(spdy.DataFrame(pair.error.id, message.encode()))

    async def pair_timed_out(self, pair: _Pair) -> None:
        if self.pairs.get(pair.request_id) is not pair:
            return
        del self.pairs[pair.request_id]
        peer = self.writer.get_extra_info("peername")
        await self.print_error(pair, f"(conn={peer}, request={pair.request_id}) timed out "
                               "waiting for streams")
        for stream in (pair.data, pair.error):
            if stream is not None:
                await self.finish(stream)

    async def finish(self, stream: _Stream) -> None:
        """Our end of the stream (FIN), once; the stream is then forgotten."""
        self.streams.pop(stream.id, None)
        await stream.inbound.abort()
        if not stream.closed_here and not stream.reset.is_set():
            stream.closed_here = True
            await self.send(spdy.DataFrame(stream.id, b"", spdy.FLAG_FIN))

    async def forward(self, data: _Stream, error: _Stream) -> None:
        try:
            try:
                sock = await self.dial(self.sandbox, data.port)
            except ForwardError as e:
                message = forward_failure(data.port, self.sandbox, e)
                log.info("%s", message)
                await self.send(spdy.DataFrame(error.id, message.encode()))
                return
            reader, writer = await asyncio.open_connection(sock=sock)
            try:
                await self.copy(data, reader, writer)
            finally:
                writer.close()
        finally:
            await self.finish(data)
            await self.finish(error)

    async def copy(self, data: _Stream, reader: asyncio.StreamReader,
                   writer: asyncio.StreamWriter) -> None:
        """Both directions until the pod ends its side (or the client resets the stream)."""
        up = asyncio.create_task(pump_to_pod(data.inbound, writer))
        down = asyncio.create_task(self.pump_to_client(data, reader))
        reset = asyncio.create_task(data.reset.wait())
        try:
            await asyncio.wait({down, reset}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (up, down, reset):
                task.cancel()
            await asyncio.gather(up, down, reset, return_exceptions=True)

    async def pump_to_client(self, data: _Stream, reader: asyncio.StreamReader) -> None:
        try:
            while chunk := await reader.read(CHUNK):
                if data.reset.is_set():
                    return
                await self.send(spdy.DataFrame(data.id, chunk))
        except ConnectionError:
            pass                                 # the pod reset: the stream just ends
        await self.finish(data)


# ---- WebSocket (v4.channel.k8s.io) ----------------------------------------------------------

async def websocket_forward(ws, sandbox: PodSandbox, ports: list[int], dial: Dialer) -> None:
    """One connection to the pod per requested port, all over one WebSocket; ends when every
    port's pod connection has ended or the client closed. The client's messages are read only
    once every port is connected (or has failed), so none arrives before its pod connection."""
    for i, port in enumerate(ports):
        prefix = struct.pack("<H", port)
        await ws.send_bytes(bytes([2 * i]) + prefix)
        await ws.send_bytes(bytes([2 * i + 1]) + prefix)

    async def connect(i: int, port: int) -> asyncio.StreamWriter | None:
        try:
            sock = await dial(sandbox, port)
        except ForwardError as e:
            await ws.send_bytes(bytes([2 * i + 1]) +
                                forward_failure(port, sandbox, e).encode())
            return None
        reader, writer = await asyncio.open_connection(sock=sock)
        pumps.append(asyncio.create_task(to_client(i, reader)))
        return writer

    async def to_client(i: int, reader: asyncio.StreamReader) -> None:
        try:
            while chunk := await reader.read(CHUNK):
                await ws.send_bytes(bytes([2 * i]) + chunk)
        except ConnectionError:
            pass

    async def from_client() -> None:
        async for msg in ws:
            if not isinstance(msg, bytes) or len(msg) < 2 or msg[0] % 2:
                continue
            writer = writers.get(msg[0] // 2)
            if writer is not None and not writer.is_closing():
                writer.write(msg[1:])
                try:
                    await writer.drain()          # a slow pod stops our reading
                except ConnectionError:
                    pass

    pumps: list[asyncio.Task] = []
    connected = await asyncio.gather(*(connect(i, p) for i, p in enumerate(ports)))
    writers = {i: w for i, w in enumerate(connected) if w is not None}
    client = asyncio.create_task(from_client())
    forwards = asyncio.gather(*pumps)
    try:
        await asyncio.wait({client, forwards}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        client.cancel()
        forwards.cancel()
        await asyncio.gather(client, forwards, return_exceptions=True)
        for writer in writers.values():
            writer.close()


def parse_ports(values: list[str]) -> list[int] | str:
    """The `port` query parameters (comma-separated lists allowed), or the kubelet's error."""
    if not values:
        return 'query parameter "port" is required'
    ports = []
    for value in values:
        if not value:
            return 'query parameter "port" cannot be empty'
        for p in value.split(","):
            if not p.isdigit() or int(p) > 65535:
                return f'unable to parse "{value}" as a port: strconv.ParseUint: parsing ' \
                       f'"{p}": ' + ("value out of range" if p.isdigit() else "invalid syntax")
            if int(p) < 1:
                return f'port "{value}" must be > 0'
            ports.append(int(p))
    return ports


# ---- the endpoint ------------------------------------------------------------------------------

class PortForwardServer:
    def __init__(self, find_sandbox: SandboxFinder, allowed_peers: frozenset[str] | None,
                 dial: Dialer = dial_localhost):
        self.find_sandbox = find_sandbox
        self.allowed_peers = allowed_peers   # None: anyone (tests)
        self.dial = dial

    def add_routes(self, router: Router) -> None:
        router.add(None, "/portForward/{namespace}/{pod}", self.port_forward)

    async def port_forward(self, request: Request):
        # Only the API server may forward: it authenticated and authorized the user.
        if self.allowed_peers is not None and request.remote not in self.allowed_peers:
            return Response(status=403, text="Forbidden\n")
        m = request.match_info
        sandbox = self.find_sandbox(m["namespace"], m["pod"])
        if isinstance(sandbox, str):
            return Response(status=404, text=sandbox + "\n")
        from nanokube.node import websocket
        if websocket.websocket_requested(request):
            return await self.over_websocket(request, sandbox, websocket)
        return await self.over_spdy(request, sandbox)

    async def over_websocket(self, request: Request, sandbox: PodSandbox, websocket):
        ports = parse_ports(request.query.getall("port"))
        if isinstance(ports, str):
            return Response(status=400, text=ports + "\n")
        offered = websocket.offered_protocols(request)
        protocol = next((p for p in offered if p in WS_PROTOCOLS), None)
        if offered and protocol is None:
            return Response(status=400, text="unable to upgrade: unable to match protocol\n")
        ws = await websocket.accept_websocket(request, protocol)
        try:
            await websocket_forward(ws, sandbox, ports, self.dial)
        finally:
            await ws.close()
        return ws

    async def over_spdy(self, request: Request, sandbox: PodSandbox):
        h = request.headers
        if "upgrade" not in tokens(h, "connection") or \
                "spdy/3.1" not in (h.get("upgrade") or "").lower():
            return Response(status=400, text="unable to upgrade: missing upgrade headers in "
                            "request\n")
        offered = [p.strip() for v in h.getall("x-stream-protocol-version")
                   for p in v.split(",") if p.strip()]
        if offered and PROTOCOL not in offered:
            return Response(status=403, headers={"X-Accepted-Stream-Protocol-Versions": PROTOCOL},
                            text=f"unable to upgrade: unable to negotiate protocol: client "
                                 f"supports {offered}, server accepts {[PROTOCOL]}\n")
        headers = {"Connection": "Upgrade", "Upgrade": "SPDY/3.1"}
        if offered:
            headers["X-Stream-Protocol-Version"] = PROTOCOL
        request.keep_alive = False
        request._writer.write(request.head(101, headers, None))
        await request._writer.drain()
        await SpdySession(request._reader, request._writer, sandbox, self.dial).run()
        request.answered = True
        return None
