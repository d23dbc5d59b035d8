"""The shared HTTP/1.1 server: keep-alive, pipelining, bodies, errors and concurrency (in-process)."""
from __future__ import annotations

import asyncio

import pytest

from nanokube.images.http_server import Response, serve_http
from nanokube.images.serving import BIND_ENV, format_peer


async def echo_handler(request):
    await asyncio.sleep(0.01 if request.target == "/slow" else 0)
    return Response(200, f"{request.method} {request.target} {request.body.decode()}")


def sync_handler(request):
    if request.target == "/boom":
        raise RuntimeError("bug")
    if request.target == "/peer":
        return Response(200, request.peer)
    return Response(200, f"{request.method} {request.target} {request.body.decode()}")


@pytest.fixture
async def server(monkeypatch):
    monkeypatch.setenv(BIND_ENV, "127.0.0.1")
    servers = []

    async def start(handler=sync_handler):
        server = await serve_http(0, handler)
        servers.append(server)
        return server.sockets[0].getsockname()[1]

    yield start
    for server in servers:
        server.close()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    status_line = await reader.readline()
    status = int(status_line.split()[1])
    headers = {}
    while (line := await reader.readline()) != b"\r\n":
        name, _, value = line.decode().partition(":")
        headers[name.lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", 0)))
    return status, headers, body


def request(target: str, method: str = "GET", extra: str = "", body: bytes = b"") -> bytes:
    length = f"Content-Length: {len(body)}\r\n" if body else ""
    return f"{method} {target} HTTP/1.1\r\nHost: t\r\n{length}{extra}\r\n".encode() + body


async def test_keep_alive_several_requests_on_one_connection(server):
    port = await server()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    peers = set()
    for i in range(5):
        writer.write(request("/peer"))
        status, headers, body = await read_response(reader)
        assert status == 200 and "connection" not in headers
        peers.add(body)
    assert peers == {format_peer(writer.get_extra_info("sockname")).encode()}
    writer.close()


async def test_pipelined_requests_answer_in_order(server):
    port = await server(echo_handler)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request("/slow") + request("/b") + request("/c", "POST", body=b"xyz"))
    bodies = [(await read_response(reader))[2] for _ in range(3)]
    assert bodies == [b"GET /slow ", b"GET /b ", b"POST /c xyz"]
    writer.close()


async def test_connection_close_and_http10(server):
    port = await server()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request("/a", extra="Connection: close\r\n"))
    status, headers, _ = await read_response(reader)
    assert headers["connection"] == "close" and await reader.read() == b""
    writer.close()

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /old HTTP/1.0\r\n\r\n")
    status, headers, body = await read_response(reader)
    assert body == b"GET /old " and await reader.read() == b""
    writer.close()

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    _, headers, _ = await read_response(reader)
    assert headers["connection"] == "keep-alive"
    writer.write(b"GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert (await read_response(reader))[2] == b"GET /b "
    writer.close()


async def test_chunked_request_body(server):
    port = await server()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nab")
    await asyncio.sleep(0.01)                       # the body arrives in pieces
    writer.write(b"cd\r\n3;ext=1\r\nefg\r\n0\r\n\r\n")
    assert (await read_response(reader))[2] == b"POST /up abcdefg"
    writer.write(request("/next"))
    assert (await read_response(reader))[2] == b"GET /next "
    writer.close()


async def test_expect_100_continue(server):
    port = await server()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"PUT /x HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    assert await reader.readline() == b"HTTP/1.1 100 Continue\r\n"
    assert await reader.readline() == b"\r\n"
    writer.write(b"hello")
    assert (await read_response(reader))[2] == b"PUT /x hello"
    writer.close()


async def test_head_has_no_body(server):
    port = await server()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request("/h", "HEAD") + request("/after"))
    status_line = await reader.readline()
    assert status_line.startswith(b"HTTP/1.1 200")
    head = b""
    while (line := await reader.readline()) != b"\r\n":
        head += line
    assert b"Content-Length: 8\r\n" in head          # the length GET would have had
    assert (await read_response(reader))[2] == b"GET /after "   # no body bytes in between
    writer.close()


@pytest.mark.parametrize("raw", [b"NONSENSE\r\n\r\n", b"GET / SPDY/3\r\n\r\n",
                                 b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
                                 b"GET / HTTP/1.1\r\n bad header\r\n\r\n"])
async def test_malformed_request_gets_400_and_close(server, raw):
    port = await server()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    status, headers, _ = await read_response(reader)
    assert status == 400 and headers["connection"] == "close"
    assert await reader.read() == b""
    writer.close()


async def test_handler_error_is_500_and_server_goes_on(server):
    port = await server()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request("/boom") + request("/fine"))
    assert (await read_response(reader))[0] == 500
    assert (await read_response(reader))[2] == b"GET /fine "
    writer.close()


async def test_many_concurrent_clients(server):
    port = await server(echo_handler)

    async def client(n: int) -> list[bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        bodies = []
        for i in range(5):
            writer.write(request(f"/{n}/{i}"))
            bodies.append((await read_response(reader))[2])
        writer.close()
        return bodies

    results = await asyncio.gather(*(client(n) for n in range(200)))
    assert all(bodies == [f"GET /{n}/{i} ".encode() for i in range(5)]
               for n, bodies in enumerate(results))


@pytest.mark.parametrize("address,expected", [
    (("127.0.0.1", 80), "127.0.0.1:80"), (("::ffff:10.0.0.1", 5, 0, 0), "10.0.0.1:5"),
    (("fd00::1", 8080, 0, 0), "[fd00::1]:8080")])
def test_format_peer(address, expected):
    assert format_peer(address) == expected
