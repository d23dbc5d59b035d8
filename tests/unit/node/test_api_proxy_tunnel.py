"""The agent's /tunnel/IP/PORT: an HTTP upgrade to a raw TCP connection to a pod address,
only for the API server's addresses and only to this node's pods."""
from __future__ import annotations

import asyncio
import socket

import pytest

from nanokube.httpclient import Session
from nanokube.node.httpserver import HTTPServer, Router
from nanokube.node.tunnel import TunnelServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def echo_port():
    async def echo(reader, writer):
        while data := await reader.read(1024):
            writer.write(data.upper())
            await writer.drain()
        writer.close()
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def agent(pod_ips: set[str], peers: frozenset[str] | None) -> HTTPServer:
    router = Router()
    TunnelServer(lambda: pod_ips, peers).add_routes(router)
    server = HTTPServer(router, "127.0.0.1", 0)
    await server.start()
    return server


async def ask(server: HTTPServer, path: str, upgrade: bool = True):
    reader, writer = await asyncio.open_connection(*server.addresses[0][:2])
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
    if upgrade:
        head += "Connection: Upgrade\r\nUpgrade: tcp\r\n"
    writer.write((head + "\r\n").encode())
    await writer.drain()
    status, headers = await asyncio.wait_for(Session._read_head(reader), 5)
    return status, headers, reader, writer


async def body(reader, headers) -> bytes:
    return await asyncio.wait_for(reader.readexactly(int(headers.get("content-length"))), 5)


async def test_tunnel_carries_bytes_both_ways(echo_port):
    server = await agent({"127.0.0.1"}, None)
    try:
        status, headers, reader, writer = await ask(server, f"/tunnel/127.0.0.1/{echo_port}")
        assert status == 101 and headers.get("upgrade") == "tcp"
        for text in (b"hello", b"again"):
            writer.write(text)
            await writer.drain()
            assert await asyncio.wait_for(reader.readexactly(5), 5) == text.upper()
        writer.close()
    finally:
        await server.close()


async def test_refusals(echo_port):
    server = await agent({"127.0.0.1"}, None)
    try:
        status, h, reader, w = await ask(server, f"/tunnel/10.244.9.9/{echo_port}")
        assert status == 404 and b"no pod with address 10.244.9.9" in await body(reader, h)
        w.close()
        status, _, reader, w = await ask(server, f"/tunnel/127.0.0.1/{echo_port}",
                                         upgrade=False)
        assert status == 400
        w.close()
        status, _, reader, w = await ask(server, "/tunnel/127.0.0.1/70000")
        assert status == 400
        w.close()
        port = free_port()
        status, h, reader, w = await ask(server, f"/tunnel/127.0.0.1/{port}")
        assert status == 502
        assert (await body(reader, h)).decode().startswith(
            f"dial tcp 127.0.0.1:{port}: connect: connection refused")
        w.close()
    finally:
        await server.close()
    only_api = await agent({"127.0.0.1"}, frozenset({"10.0.0.1"}))
    try:
        status, _, _, w = await ask(only_api, f"/tunnel/127.0.0.1/{echo_port}")
        assert status == 403
        w.close()
    finally:
        await only_api.close()
