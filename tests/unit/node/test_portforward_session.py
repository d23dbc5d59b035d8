"""The agent's port-forward: a SPDY client (built from nanokube.node.spdy) against SpdySession,
with "pods" that are servers on loopback in this process."""
from __future__ import annotations

import asyncio
import socket

import pytest

from nanokube.node import spdy
from nanokube.node.portforward import (ForwardError, InboundBuffer, PodSandbox, SpdySession,
                                       dial_localhost, forward_failure, parse_ports)

SANDBOX = PodSandbox("0d1c-uid", None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    """kubectl's side of one connection: frames out, frames in, collected per stream."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer
        self.out, self.inn = spdy.FrameWriter(), spdy.FrameReader()
        self.next_id = 1

    async def send(self, frame) -> None:
        self.writer.write(self.out.encode(frame))
        await self.writer.drain()

    async def open(self, streamtype: str, port: int, request_id: str | None = "0") -> int:
        sid, self.next_id = self.next_id, self.next_id + 2
        headers = {"streamtype": [streamtype], "port": [str(port)]}
        if request_id is not None:
            headers["requestid"] = [request_id]
        await self.send(spdy.SynStream(sid, headers))
        return sid

    async def frame(self):
        return await asyncio.wait_for(self.inn.read(self.reader), 5)

    async def until_fin(self, sid: int, frames: list | None = None) -> bytes:
        """The stream's bytes until its FIN (other streams' frames go to `frames`)."""
        data = b""
        while True:
            f = await self.frame()
            if isinstance(f, spdy.DataFrame) and f.stream_id == sid:
                data += f.data
                if f.flags & spdy.FLAG_FIN:
                    return data
            elif frames is not None:
                frames.append(f)


@pytest.fixture
async def session_client():
    """A SpdySession on a loopback connection; yields a factory taking the dialer."""
    made = []

    async def make(dial=dial_localhost, **kw) -> Client:
        accepted = asyncio.get_running_loop().create_future()

        async def on_connection(reader, writer):
            accepted.set_result(None)
            session = SpdySession(reader, writer, SANDBOX, dial, **kw)
            await session.run()
            writer.close()
        server = await asyncio.start_server(on_connection, "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.sockets[0].getsockname()[1])
        await accepted
        made.append((server, writer))
        return Client(reader, writer)
    yield make
    for server, writer in made:
        writer.close()
        server.close()
        await server.wait_closed()


@pytest.fixture
async def echo_pod():
    async def echo(reader, writer):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def test_a_pair_forwards_both_ways_and_ends_with_fins(session_client, echo_pod):
    c = await session_client()
    error = await c.open("error", echo_pod)
    data = await c.open("data", echo_pod)
    assert await c.frame() == spdy.SynReply(error)
    assert await c.frame() == spdy.SynReply(data)
    await c.send(spdy.DataFrame(error, b"", spdy.FLAG_FIN))     # kubectl: "not writing"
    await c.send(spdy.DataFrame(data, b"ping "))
    await c.send(spdy.DataFrame(data, b"pong", spdy.FLAG_FIN))  # becomes a half-close
    others: list = []
    assert await c.until_fin(data, others) == b"ping pong"
    assert await c.until_fin(error, others) == b""               # no error: empty, then FIN
    assert others == []


async def test_refused_port_is_reported_on_the_error_stream(session_client):
    port = free_port()                      # nothing listens there
    c = await session_client()
    error, data = await c.open("error", port, "7"), await c.open("data", port, "7")
    frames: list = []
    message = (await c.until_fin(error, frames)).decode()
    assert message.startswith(
        f"error forwarding port {port} to pod 0d1c-uid, uid : failed to execute portforward "
        f'in network namespace "host": failed to connect to localhost:{port} inside namespace '
        f'"0d1c-uid", IPv4: dial tcp4 127.0.0.1:{port}: connect: connection refused IPv6 dial '
        f"tcp6 [::1]:{port}: ")
    assert message == forward_failure(port, SANDBOX, ForwardError(message.split("uid : ", 1)[1]))
    # the data stream ends too, so that kubectl's copy ends
    assert spdy.DataFrame(data, b"", spdy.FLAG_FIN) in frames or \
        await c.until_fin(data) == b""


async def test_bad_streams_are_reset(session_client, echo_pod):
    c = await session_client()
    await c.send(spdy.SynStream(1, {"streamtype": ["data"]}))                # no port
    assert await c.frame() == spdy.RstStream(1, spdy.CANCEL)
    await c.send(spdy.SynStream(3, {"streamtype": ["bogus"], "port": ["80"]}))
    assert await c.frame() == spdy.RstStream(3, spdy.CANCEL)
    await c.send(spdy.SynStream(5, {"streamtype": ["data"], "port": ["0"]}))
    assert await c.frame() == spdy.RstStream(5, spdy.CANCEL)
    await c.send(spdy.SynStream(4, {"streamtype": ["data"], "port": ["80"]}))  # even: ours
    assert await c.frame() == spdy.RstStream(4, spdy.PROTOCOL_ERROR)


async def test_pings_are_echoed(session_client):
    c = await session_client()
    await c.send(spdy.Ping(1))
    assert await c.frame() == spdy.Ping(1)
    await c.send(spdy.WindowUpdate(0, 1000))               # ignored, as spdystream does
    await c.send(spdy.Settings([(0, 7, 1 << 20)]))
    await c.send(spdy.Ping(3))
    assert await c.frame() == spdy.Ping(3)


async def test_second_stream_of_a_type_and_pair_timeout(session_client, echo_pod):
    c = await session_client(creation_timeout=0.3)
    error = await c.open("error", echo_pod, "1")
    await c.open("error", echo_pod, "1")
    frames: list = []
    # the duplicate is reported on the pair's error stream; the lonely pair then times out
    text = (await c.until_fin(error, frames)).decode()
    assert text.startswith("error processing stream for request 1: error stream already "
                           "assigned(conn=")
    assert text.endswith(", request=1) timed out waiting for streams")


async def test_old_clients_without_request_ids_pair_by_stream_id(session_client, echo_pod):
    c = await session_client()
    error = await c.open("error", echo_pod, None)
    data = await c.open("data", echo_pod, None)
    await c.send(spdy.DataFrame(data, b"old", spdy.FLAG_FIN))
    assert await c.until_fin(data) == b"old"
    assert await c.until_fin(error) == b""


async def test_concurrent_pairs_stay_apart(session_client, echo_pod):
    c = await session_client()
    pairs = []
    for i in range(5):
        pairs.append((await c.open("error", echo_pod, str(i)),
                      await c.open("data", echo_pod, str(i))))
    for i, (_, data) in enumerate(pairs):
        await c.send(spdy.DataFrame(data, f"conn {i}".encode() * 1000, spdy.FLAG_FIN))
    got: dict[int, bytes] = {}
    done = set()
    while len(done) < 10:
        f = await c.frame()
        if isinstance(f, spdy.DataFrame):
            got[f.stream_id] = got.get(f.stream_id, b"") + f.data
            if f.flags & spdy.FLAG_FIN:
                done.add(f.stream_id)
    for i, (error, data) in enumerate(pairs):
        assert got[data] == f"conn {i}".encode() * 1000 and got[error] == b""


async def test_a_slow_pod_stops_reading_and_loses_nothing(session_client):
    """Backpressure: with a pod that does not read, the session stops reading the connection
    (bounded buffering) instead of queueing everything; once the pod reads, all of it
    arrives, intact."""
    reading = asyncio.Event()
    received = bytearray()
    finished = asyncio.Event()

    async def sleepy_pod(reader, writer):
        await reading.wait()
        while data := await reader.read(65536):
            received.extend(data)
        finished.set()
        writer.close()
    pod = await asyncio.start_server(sleepy_pod, "127.0.0.1", 0)
    port = pod.sockets[0].getsockname()[1]
    c = await session_client()
    c.writer.transport.set_write_buffer_limits(high=64 * 1024)
    await c.open("error", port)                          # the pair's error stream first
    data = await c.open("data", port)
    chunk = bytes(range(256)) * 128                          # 32 KiB frames
    total = 64 << 20

    async def send_all():
        for _ in range(total // len(chunk)):
            await c.send(spdy.DataFrame(data, chunk))
        await c.send(spdy.DataFrame(data, b"", spdy.FLAG_FIN))
    sender = asyncio.create_task(send_all())
    await asyncio.sleep(1.0)
    assert not sender.done(), "64 MiB were taken in with nobody reading"
    reading.set()

    async def replies():                                     # SYN_REPLYs, then the FINs
        while True:
            await c.frame()
    drain = asyncio.create_task(replies())
    await asyncio.wait_for(sender, 30)
    await asyncio.wait_for(finished.wait(), 30)
    drain.cancel()
    assert len(received) == total and received[:len(chunk)] == chunk
    assert received[-len(chunk):] == chunk
    pod.close()
    await pod.wait_closed()


async def test_inbound_buffer_bounds():
    buf = InboundBuffer(limit=10)
    await buf.put(b"0123456789")
    blocked = asyncio.create_task(buf.put(b"more"))
    await asyncio.sleep(0.01)
    assert not blocked.done() and buf.size == 10
    assert await buf.get() == b"0123456789"
    await asyncio.wait_for(blocked, 1)
    await buf.close()
    assert await buf.get() == b"more"
    assert await buf.get() is None
    aborted = InboundBuffer(limit=1)
    await aborted.put(b"xx")
    stuck = asyncio.create_task(aborted.put(b"y"))
    await asyncio.sleep(0.01)
    await aborted.abort()                        # the stream was reset: nobody will read
    await asyncio.wait_for(stuck, 1)
    assert await aborted.get() is None and aborted.size == 0


def test_websocket_ports_parameter():
    assert parse_ports(["8080", "80,443"]) == [8080, 80, 443]
    assert parse_ports([]) == 'query parameter "port" is required'
    assert parse_ports([""]) == 'query parameter "port" cannot be empty'
    assert parse_ports(["0"]) == 'port "0" must be > 0'
    assert parse_ports(["http"]) == \
        'unable to parse "http" as a port: strconv.ParseUint: parsing "http": invalid syntax'
    assert parse_ports(["70000"]).endswith('parsing "70000": value out of range')
