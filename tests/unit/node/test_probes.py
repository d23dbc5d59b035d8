"""Probe checks against loopback servers, thresholds and the worker loop."""
import asyncio

import pytest

from nanokube.node.probes import (Prober, ProbeState, ProbeWorker, http_get, resolve_port,
                                  tcp_socket)


async def serve(handler):
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def http_server(code: int, seen: list):
    async def handle(reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head.decode())
        writer.write(f"HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()
        writer.close()
    return await serve(handle)


async def test_http_get_success_headers_and_failure():
    seen = []
    server, port = await http_server(200, seen)
    async with server:
        ok, msg = await http_get("127.0.0.1", port, "/healthz",
                                 [{"name": "X-Probe", "value": "yes"}], 1)
    assert ok, msg
    assert seen[0].startswith("GET /healthz HTTP/1.1\r\n")
    assert "X-Probe: yes" in seen[0] and "User-Agent: kube-probe/1.32" in seen[0]
    server, port = await http_server(503, [])
    async with server:
        ok, msg = await http_get("127.0.0.1", port, "/", [], 1)
    assert not ok and "503" in msg


async def test_http_redirect_counts_as_success():
    server, port = await http_server(302, [])
    async with server:
        assert (await http_get("127.0.0.1", port, "/", [], 1))[0]


async def test_http_timeout():
    async def silent(reader, writer):
        await asyncio.sleep(5)
    server, port = await serve(silent)
    async with server:
        ok, msg = await http_get("127.0.0.1", port, "/", [], 0.2)
    assert not ok and "deadline" in msg


async def test_tcp_socket():
    server, port = await serve(lambda r, w: w.close())
    async with server:
        assert (await tcp_socket("127.0.0.1", port, 1))[0]
    ok, msg = await tcp_socket("127.0.0.1", port, 1)     # closed now
    assert not ok and "connect" in msg


def test_named_port():
    c = {"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}
    assert resolve_port("http", c) == 8080 and resolve_port(81, c) == 81
    with pytest.raises(ValueError):
        resolve_port("nope", c)


async def test_prober_named_port():
    server, port = await http_server(200, [])
    container = {"name": "c", "ports": [{"name": "web", "containerPort": port}]}
    async with server:
        prober = Prober({"httpGet": {"port": "web", "path": "/"}}, container, "127.0.0.1",
                        lambda: None)
        assert (await prober.check())[0]


def test_thresholds():
    s = ProbeState("readiness", {"successThreshold": 2, "failureThreshold": 3})
    assert s.result is False
    assert not s.observe(True) and s.result is False
    assert s.observe(True) and s.result is True
    assert not s.observe(False) and not s.observe(False)
    assert s.observe(False) and s.result is False
    live = ProbeState("liveness", {"failureThreshold": 1})
    assert live.result is True and live.observe(False) and live.result is False


async def test_worker_respects_initial_delay_and_period():
    sleeps, results = [], []
    answers = iter([False, True, False, False])

    async def check():
        return next(answers), "m"

    async def sleep(seconds):
        sleeps.append(seconds)
        if len(sleeps) > 4:
            raise asyncio.CancelledError

    worker = ProbeWorker("readiness", {"initialDelaySeconds": 5, "periodSeconds": 2,
                                       "failureThreshold": 2}, check,
                         lambda ok, m: results.append(ok), started_at=0, sleep=sleep,
                         clock=lambda: 0)
    with pytest.raises(asyncio.CancelledError):
        await worker.run()
    assert sleeps == [5, 2, 2, 2, 2]
    assert results == [True, False]


async def test_liveness_worker_stops_after_failure_and_startup_after_success():
    calls = []

    async def failing():
        calls.append(1)
        return False, "down"

    results = []
    worker = ProbeWorker("liveness", {"periodSeconds": 0, "failureThreshold": 3}, failing,
                         lambda ok, m: results.append((ok, m)))
    await asyncio.wait_for(worker.run(), 2)
    assert len(calls) == 3 and results == [(False, "down")]

    async def ok():
        return True, ""
    results.clear()
    await asyncio.wait_for(ProbeWorker("startup", {"periodSeconds": 0}, ok,
                                       lambda o, m: results.append(o)).run(), 2)
    assert results == [True]
    results.clear()
    await asyncio.wait_for(ProbeWorker("startup", {"periodSeconds": 0, "failureThreshold": 2},
                                       failing, lambda o, m: results.append(o)).run(), 2)
    assert results == [False]
