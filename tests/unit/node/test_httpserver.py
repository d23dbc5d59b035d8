"""The agent's HTTP/1.1 server, spoken to over raw sockets: request parsing and its limits (bad
requests get Go's 400/431/501/505 answers), keep-alive, routing, chunked streaming, and the
WebSocket handshake and framing (masked, fragmented client frames; ping; close; bad frames).
The agent itself loads neither aiohttp nor, until an exec, wsproto."""
from __future__ import annotations

import asyncio
import base64
import hashlib

import pytest

import subprocess
import sys

from nanokube.node import websocket
from nanokube.node.httpserver import HTTPServer, Response, Router, StreamResponse
from nanokube.node.websocket import accept_websocket, offered_protocols, websocket_requested

KEY = "dGhlIHNhbXBsZSBub25jZQ=="             # RFC 6455's sample key
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="      # and its answer
MASK = b"\x37\xfa\x21\x3d"


async def echo_request(request):
    return Response(text=f"{request.method} {request.path} {request.match_info} "
                         f"{request.query.getall('a')} {request.headers.get('X-Thing')} "
                         f"{request.body.decode()}")


async def stream(request):
    resp = StreamResponse(headers={"Content-Type": "text/plain"})
    await resp.prepare(request)
    for part in (b"one\n", b"two\n"):
        await resp.write(part)
    await resp.write_eof()
    return resp


async def fail(request):
    raise RuntimeError("boom")


async def echo_ws(request):
    if not websocket_requested(request):
        return Response(400, text="Upgrade request required\n")
    offered = offered_protocols(request)
    ws = await accept_websocket(request, next((p for p in offered if p in ("b", "c")), None))
    async for message in ws:
        if message == b"bye":
            break
        if isinstance(message, bytes):
            await ws.send_bytes(message)
        else:
            await ws.send_str(message.upper())
    await ws.close()
    return ws


@pytest.fixture
async def port():
    router = Router()
    router.add_get("/things/{name}", echo_request)
    router.add(("POST",), "/things/{name}", echo_request)
    router.add_get("/stream", stream)
    router.add_get("/fail", fail)
    router.add(None, "/ws", echo_ws)
    server = HTTPServer(router, "127.0.0.1", 0)
    await server.start()
    try:
        yield server.addresses[0][1]
    finally:
        await server.close()


async def exchange(port: int, data: bytes) -> bytes:
    """Send data, read until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


def split(raw: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status, *lines = head.decode().split("\r\n")
    return status, dict(line.split(": ", 1) for line in lines), body


# ---- requests --------------------------------------------------------------------------------

async def test_request_parts_reach_the_handler(port):
    raw = await exchange(port, b"POST /things/a%2Fb?a=1&a=2 HTTP/1.1\r\nHost: x\r\n"
                               b"x-thing:  v \r\nContent-Length: 4\r\n"
                               b"Connection: close\r\n\r\nbody")
    status, headers, body = split(raw)
    assert status == "HTTP/1.1 200 OK"
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert headers["Connection"] == "close" and "Date" in headers
    assert body == b"POST /things/a%2Fb {'name': 'a/b'} ['1', '2'] v body"
    assert int(headers["Content-Length"]) == len(body)


async def test_keep_alive_and_http10(port):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for _ in range(2):                        # two requests on one connection
            writer.write(b"GET /things/x HTTP/1.1\r\nHost: x\r\n\r\n")
            status = await reader.readline()
            assert status == b"HTTP/1.1 200 OK\r\n"
            head = (await reader.readuntil(b"\r\n\r\n")).decode()
            assert "Connection" not in head
            length = int(head.split("Content-Length: ")[1].split("\r\n")[0])
            await reader.readexactly(length)
    finally:
        writer.close()
    raw = await exchange(port, b"GET /things/x HTTP/1.0\r\n\r\n")     # 1.0: closed after one
    assert raw.startswith(b"HTTP/1.0 200 OK\r\n") and b"Connection" not in raw


async def test_routing_answers(port):
    status, headers, body = split(await exchange(port, b"GET /nothing HTTP/1.0\r\n\r\n"))
    assert (status, body) == ("HTTP/1.0 404 Not Found", b"404: Not Found")
    status, headers, body = split(await exchange(port, b"DELETE /things/x HTTP/1.0\r\n\r\n"))
    assert (status, body) == ("HTTP/1.0 405 Method Not Allowed", b"405: Method Not Allowed")
    assert headers["Allow"] == "GET,HEAD,POST"
    status, headers, body = split(await exchange(port, b"HEAD /things/x HTTP/1.0\r\n\r\n"))
    assert status == "HTTP/1.0 200 OK" and body == b"" and headers["Content-Length"] != "0"
    status, _, body = split(await exchange(port, b"GET /fail HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert status == "HTTP/1.1 500 Internal Server Error"
    assert body.startswith(b"500 Internal Server Error")


@pytest.mark.parametrize("request_, answer", [
    (b"HELLO\r\n\r\n", b"400 Bad Request: malformed HTTP request"),
    (b"GET / HTTP/9\r\n\r\n", b"400 Bad Request: malformed HTTP version"),
    (b"GET / HTTP/2.0\r\n\r\n", b"505 HTTP Version Not Supported"),
    (b"GET nowhere HTTP/1.1\r\n\r\n", b"400 Bad Request: malformed request target"),
    (b"GET / HTTP/1.1\r\nno colon\r\n\r\n", b"400 Bad Request: malformed MIME header line"),
    (b"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", b"400 Bad Request: malformed MIME header line"),
    (b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", b"400 Bad Request: bad Content-Length"),
    (b"GET / HTTP/1.1\r\nContent-Length: \xb2\r\n\r\n", b"400 Bad Request: bad Content-Length"),
    (b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
     b"400 Bad Request: bad Content-Length"),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     b"501 Not Implemented: request bodies with Transfer-Encoding are not supported"),
    (b"GET / HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n", b"431 Request Header Fields Too Large"),
    (b"GET / HTTP/1.1\r\n" + (b"X: " + b"a" * 46 + b"\r\n") * 2000 + b"\r\n",
     b"431 Request Header Fields Too Large"),
    (b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", b"413 Request Entity Too Large"),
])
async def test_bad_requests_get_gos_answers(port, request_, answer):
    status, headers, body = split(await exchange(port, request_))
    assert status == "HTTP/1.1 " + answer.decode().split(":")[0]
    assert headers == {"Content-Type": "text/plain; charset=utf-8", "Connection": "close"}
    assert body == answer


async def test_connection_ended_before_or_inside_a_request(port):
    for sent, answer in ((b"", b""), (b"\r\n", b""),
                         (b"GET /things/x HTTP/1.1\r\nHost",
                          b"400 Bad Request: unexpected EOF in the request head")):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(sent)
        writer.write_eof()
        assert (await asyncio.wait_for(reader.read(), 10)).endswith(answer)
        writer.close()


# ---- streaming -------------------------------------------------------------------------------

async def test_stream_is_chunked_for_http11_and_close_delimited_for_http10(port):
    status, headers, body = split(await exchange(
        port, b"GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    assert headers["Transfer-Encoding"] == "chunked" and "Content-Length" not in headers
    assert body == b"4\r\none\n\r\n4\r\ntwo\n\r\n0\r\n\r\n"
    status, headers, body = split(await exchange(port, b"GET /stream HTTP/1.0\r\n\r\n"))
    assert "Transfer-Encoding" not in headers and body == b"one\ntwo\n"


# ---- WebSocket -------------------------------------------------------------------------------

def client_frame(opcode: int, payload: bytes, fin: bool = True, mask: bytes | None = MASK) -> bytes:
    """A client frame as RFC 6455 section 5.2 lays it out (clients mask)."""
    first = (0x80 if fin else 0) | opcode
    n = len(payload)
    masked = 0x80 if mask else 0
    if n < 126:
        head = bytes([first, masked | n])
    elif n < 1 << 16:
        head = bytes([first, masked | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([first, masked | 127]) + n.to_bytes(8, "big")
    if not mask:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def server_frame(reader) -> tuple[bool, int, bytes]:
    first, second = await asyncio.wait_for(reader.readexactly(2), 10)
    assert not second & 0x80, "a server must not mask"
    n = second & 0x7F
    if n == 126:
        n = int.from_bytes(await reader.readexactly(2), "big")
    elif n == 127:
        n = int.from_bytes(await reader.readexactly(8), "big")
    return bool(first & 0x80), first & 0x0F, await reader.readexactly(n)


async def open_ws(port: int, protocols: str = "a, c, b"):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n"
                 f"Sec-WebSocket-Protocol: {protocols}\r\n"
                 f"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n".encode())
    head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).decode()
    return reader, writer, head


async def test_handshake_accept_key_and_subprotocol(port):
    reader, writer, head = await open_ws(port)
    try:
        status, *lines = head.strip().split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines)
        assert status == "HTTP/1.1 101 Switching Protocols"
        assert headers["Sec-WebSocket-Accept"] == ACCEPT == base64.b64encode(hashlib.sha1(
            KEY.encode() + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()).decode()
        assert headers["Upgrade"] == "websocket" and headers["Connection"] == "upgrade"
        assert headers["Sec-WebSocket-Protocol"] == "c"      # the client's first we speak
        assert "Sec-WebSocket-Extensions" not in headers     # no compression
        assert "Content-Length" not in headers and "Transfer-Encoding" not in headers
    finally:
        writer.close()


async def test_handshake_refused_without_a_valid_upgrade(port):
    for extra in (b"", b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                       b"Sec-WebSocket-Key: short\r\n",
                  b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 12\r\n"
                  b"Sec-WebSocket-Key: " + KEY.encode() + b"\r\n"):
        raw = await exchange(port, b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + extra
                             + b"\r\n")
        assert raw.startswith(b"HTTP/1.1 400 Bad Request") and raw.endswith(
            b"Upgrade request required\n")


async def test_fragmented_masked_messages_ping_and_close(port):
    reader, writer, _ = await open_ws(port)
    try:
        # a binary message in three fragments with a ping between them
        writer.write(client_frame(0x2, b"\x00hel", fin=False) + client_frame(0x0, b"lo ", fin=False)
                     + client_frame(0x9, b"are you there") + client_frame(0x0, b"world"))
        assert await server_frame(reader) == (True, 0xA, b"are you there")       # pong
        assert await server_frame(reader) == (True, 0x2, b"\x00hello world")
        writer.write(client_frame(0x1, "grüß".encode()))
        assert await server_frame(reader) == (True, 0x1, "GRÜSS".encode())
        big = bytes(range(256)) * 300                   # 64-bit length
        writer.write(client_frame(0x2, big))
        assert await server_frame(reader) == (True, 0x2, big)
        writer.write(client_frame(0x8, (1001).to_bytes(2, "big") + b"going"))
        assert await server_frame(reader) == (True, 0x8, (1001).to_bytes(2, "big") + b"going")
        assert await asyncio.wait_for(reader.read(), 10) == b""     # then the server hangs up
    finally:
        writer.close()


async def test_server_close_waits_for_the_clients(port):
    reader, writer, _ = await open_ws(port)
    try:
        writer.write(client_frame(0x2, b"bye"))            # the handler then closes
        assert await server_frame(reader) == (True, 0x8, (1000).to_bytes(2, "big"))
        writer.write(client_frame(0x8, (1000).to_bytes(2, "big")))
        assert await asyncio.wait_for(reader.read(), 10) == b""
    finally:
        writer.close()


async def test_unmasked_client_frame_is_a_protocol_error(port):
    reader, writer, _ = await open_ws(port)
    try:
        writer.write(client_frame(0x2, b"x", mask=None))
        fin, opcode, payload = await server_frame(reader)
        assert opcode == 0x8 and int.from_bytes(payload[:2], "big") == 1002
    finally:
        writer.close()


async def test_message_too_big_closes_with_1009(port, monkeypatch):
    monkeypatch.setattr(websocket, "MAX_MESSAGE_BYTES", 10)
    reader, writer, _ = await open_ws(port)
    try:
        writer.write(client_frame(0x2, b"0123456", fin=False) + client_frame(0x0, b"789abc"))
        fin, opcode, payload = await server_frame(reader)
        assert opcode == 0x8 and int.from_bytes(payload[:2], "big") == 1009
    finally:
        writer.close()


async def test_close_ends_open_connections():
    started = asyncio.Event()

    async def slow(request):
        started.set()
        await asyncio.sleep(3600)

    server = HTTPServer(slow, "127.0.0.1", 0)
    await server.start()
    port = server.addresses[0][1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.wait_for(started.wait(), 10)
    await asyncio.wait_for(server.close(), 10)
    assert await asyncio.wait_for(reader.read(), 10) == b""
    writer.close()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


def test_agent_loads_no_aiohttp_and_no_wsproto_until_an_exec():
    code = ("import sys, nanokube.node.agent; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'aiohttp', 'yarl', 'multidict', 'wsproto', 'h11'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
