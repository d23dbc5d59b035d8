"""Endpoint changes without an NGINX reload: the real controller sync loop (real model, renderer,
Debian's NGINX with the Lua module) scales a Service's EndpointSlice up and down under a steady
keep-alive request loop; no request fails, NGINX is never reloaded (same worker pids) and the
new endpoints get traffic. Backends are Python servers on 127.0.0.x loopback addresses."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess

import pytest

from nanokube.controllers.informer import InformerFactory
from nanokube.ingress.controller import IngressController, Nginx

LUA_MODULE = "/usr/lib/nginx/modules/ngx_http_lua_module.so"
pytestmark = pytest.mark.skipif(shutil.which("nginx") is None or not os.path.exists(LUA_MODULE),
                                reason="needs nginx-light, libnginx-mod-http-lua, lua-resty-core")
IPS = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]
HOST = "lua.example"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeClient:
    """Status patches and Events go nowhere (this test is about the data plane)."""
    async def patch(self, path, body):
        return None

    async def create(self, path, body):
        return body


async def backend(ip: str, port: int):
    """HTTP/1.1 keep-alive server answering its own address."""
    async def handle(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = [int(l.split(b":")[1]) for l in head.lower().split(b"\r\n")
                          if l.startswith(b"content-length:")]
                await reader.readexactly(length[0] if length else 0)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(ip), ip.encode()))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
    return await asyncio.start_server(handle, ip, port)


def objects(backend_port: int):
    ingress = {"metadata": {"name": "lua", "namespace": "default", "uid": "u1",
                            "resourceVersion": "1", "creationTimestamp": "2024-01-01T00:00:00Z",
                            "annotations": {"kubernetes.io/ingress.class": "nginx"}},
               "spec": {"rules": [{"host": HOST, "http": {"paths": [
                   {"path": "/", "pathType": "Prefix",
                    "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}
    service = {"metadata": {"name": "web", "namespace": "default", "resourceVersion": "1"},
               "spec": {"ports": [{"name": "http", "port": 80}]}}
    return ingress, service


def endpointslice(ips, port, rv):
    return {"metadata": {"name": "web-x", "namespace": "default", "resourceVersion": str(rv),
                         "labels": {"kubernetes.io/service-name": "web"}},
            "ports": [{"name": "http", "port": port}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips]}


async def get(reader, writer) -> tuple[int, str]:
    writer.write(f"GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = head.decode().split("\r\n")
    length = [int(l.split(":")[1]) for l in lines if l.lower().startswith("content-length:")]
    body = await asyncio.wait_for(reader.readexactly(length[0] if length else 0), 5)
    if "connection: close" in head.decode().lower():
        # NGINX ends a keep-alive connection after keepalive_requests, saying so: not an error
        writer.close()
    return int(lines[0].split()[1]), body.decode()


def workers(master: int) -> list[str]:
    with open(f"/proc/{master}/task/{master}/children") as f:
        return sorted(f.read().split())


async def test_scaling_under_keepalive_load_needs_no_reload(tmp_path):
    crt, key = str(tmp_path / "c.pem"), str(tmp_path / "k.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=fake", "-keyout", key, "-out", crt], check=True,
                   capture_output=True)
    port = free_port()
    servers = [await backend(ip, port) for ip in IPS]
    http, https, status = free_port(), free_port(), free_port()
    client = FakeClient()
    nginx = Nginx(str(tmp_path))
    c = IngressController(client, InformerFactory(client), str(tmp_path), (crt, key), nginx,
                          http_port=http, https_port=https, status_port=status)
    ingress, service = objects(port)
    rv = 1
    for plural, obj in (("ingresses", ingress), ("services", service),
                        ("endpointslices", endpointslice(IPS[:1], port, rv))):
        c.informers[plural].write_through(obj)
    stop = asyncio.Event()
    results = {"ok": 0, "failed": [], "seen": set()}

    async def load():
        """One keep-alive connection, requests back to back; any error counts as failed."""
        reader, writer = await asyncio.open_connection("127.0.0.1", http)
        try:
            while not stop.is_set():
                try:
                    if writer.is_closing():
                        reader, writer = await asyncio.open_connection("127.0.0.1", http)
                    code, body = await get(reader, writer)
                except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as e:
                    results["failed"].append(repr(e))
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", http)
                    continue
                if code == 200:
                    results["ok"] += 1
                    results["seen"].add(body)
                else:
                    results["failed"].append(code)
        finally:
            writer.close()

    try:
        await c.sync()
        await nginx.start()
        reader = writer = None
        for _ in range(100):           # NGINX up, serving the endpoint from backends.json
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", http)
                code, body = await get(reader, writer)
                break
            except OSError:
                await asyncio.sleep(0.05)
        writer.close()
        assert (code, body) == (200, IPS[0])
        await asyncio.sleep(0.3)       # the master's workers settled
        before = workers(nginx.proc.pid)
        reloads = c.reloads
        loops = [asyncio.create_task(load()) for _ in range(4)]
        for n in [2, 4, 3, 1, 4, 2, 3, 4, 1, 4] * 2:      # scale up and down, 20 changes
            rv += 1
            c.informers["endpointslices"].write_through(endpointslice(IPS[:n], port, rv))
            await c.sync()
            assert c.posted["backends"] == (tmp_path / "backends.json").read_text()
            await asyncio.sleep(0.1)
        stop.set()
        await asyncio.gather(*loops)
        assert results["failed"] == [] and results["ok"] > 100
        assert results["seen"] == set(IPS)                 # every new endpoint got traffic
        assert c.reloads == reloads and c.backend_updates == 20
        assert workers(nginx.proc.pid) == before           # no reload: same workers
        # scaled to zero: 503 per request, back to 200 when an endpoint returns; still no reload
        for ips, want in (([], 503), (IPS[2:3], 200)):
            rv += 1
            c.informers["endpointslices"].write_through(endpointslice(ips, port, rv))
            await c.sync()
            reader, writer = await asyncio.open_connection("127.0.0.1", http)
            code, body = await get(reader, writer)
            writer.close()
            assert code == want and (want != 200 or body == IPS[2])
        assert c.reloads == reloads and workers(nginx.proc.pid) == before
        # the configuration endpoint refuses garbage and keeps the old endpoints
        assert json.loads(c.posted["backends"]) == {"default-web-80": [[IPS[2], port]]}
        assert not await nginx.post("/configuration/backends", "[1, 2", status)
        reader, writer = await asyncio.open_connection("127.0.0.1", http)
        assert await get(reader, writer) == (200, IPS[2])
        writer.close()
    finally:
        stop.set()
        await nginx.stop()
        for s in servers:
            s.close()
            await s.wait_closed()
