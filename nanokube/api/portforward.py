"""pods/NAME/portforward: the API server's side, a relay to the node agent's /portForward
(nanokube/node/portforward.py), as kube-apiserver relays port-forward to the kubelet.

kubectl (1.30+) first asks for a WebSocket with the subprotocol `SPDY/3.1+portforward.k8s.io`:
SPDY carried in binary WebSocket messages. As kube-apiserver's tunneling handler does, the
request goes on to the agent as a plain SPDY upgrade, and the WebSocket's messages are unwrapped
into the agent's byte stream (and the agent's bytes wrapped back). When that fails kubectl falls
back to `Upgrade: SPDY/3.1`, relayed byte for byte. SPDY itself is spoken by the agent only.
The official Python client's WebSocket protocol (v4.channel.k8s.io, `?ports=`) is proxied
message for message, as exec is.
"""
from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import WSMsgType, web

from nanokube.api import errors as E
from nanokube.api.exec import _offered, _proxy, _relay_refusal, _unreachable
from nanokube.api.hijack import hijacked
from nanokube.api.storage import ResourceStorage
from nanokube.api.subresources import KUBELET_PORT, _node_ip
from nanokube.httpclient import HTTPError, Session
from nanokube.splice import CHUNK, splice, until_one_ends

TUNNEL_PREFIX = "SPDY/3.1+"
MAX_TUNNEL_MESSAGE = 1 << 25          # a SPDY frame (at most 16 MiB) per message


async def port_forward(request: web.Request, pods: ResourceStorage, nodes: ResourceStorage,
                       namespace: str, name: str) -> web.StreamResponse:
    if request.method not in ("GET", "POST"):
        raise E.method_not_allowed(request.method, "pods/portforward")
    pod = await pods.get(namespace, name)
    if not pod.get("spec", {}).get("nodeName"):
        raise E.bad_request(f"pod {name} does not have a host assigned")
    ip = await _node_ip(nodes, pod)
    path = f"/portForward/{namespace}/{name}"
    # PodPortForwardOptions.ports becomes the kubelet's `port` parameters
    ports = [("port", p) for v in request.query.getall("ports", []) for p in v.split(",")]
    offered = _offered(request)
    tunneled = [p[len(TUNNEL_PREFIX):] for p in offered if p.startswith(TUNNEL_PREFIX)]
    if _is_websocket(request) and tunneled:
        return await _tunnel(request, ip, path, tunneled)
    if _is_websocket(request):
        return await _websocket(request, f"http://{ip}:{KUBELET_PORT}{path}", ports, offered)
    protocols = [p.strip() for v in request.headers.getall("X-Stream-Protocol-Version", [])
                 for p in v.split(",") if p.strip()]
    return await _spdy(request, ip, path, protocols)


def _is_websocket(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").strip().lower() == "websocket"


# ---- the agent's side: a SPDY upgrade over a plain connection -----------------------------------

class _Upstream:
    """The agent's answer to the upgrade: 101 and an open connection, or an answer to pass on."""

    def __init__(self, status: int, headers, body: bytes,
                 reader: asyncio.StreamReader | None, writer: asyncio.StreamWriter | None):
        self.status, self.headers, self.body = status, headers, body
        self.reader, self.writer = reader, writer

    def refusal(self) -> web.Response:
        return web.Response(status=self.status, body=self.body,
                            content_type=(self.headers.get("content-type") or "text/plain")
                            .split(";")[0])


async def _upgrade_agent(ip: str, path: str, protocols: list[str]) -> _Upstream:
    url = f"http://{ip}:{KUBELET_PORT}{path}"
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(ip, KUBELET_PORT, limit=1 << 20), 3)
    except (OSError, asyncio.TimeoutError) as e:
        raise _unreachable(url, e) from None
    lines = [f"POST {path} HTTP/1.1", f"Host: {ip}:{KUBELET_PORT}", "Connection: Upgrade",
             "Upgrade: SPDY/3.1", "Content-Length: 0"]
    lines += [f"X-Stream-Protocol-Version: {p}" for p in protocols]
    try:
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        status, headers = await Session._read_head(reader)
        if status == 101:
            return _Upstream(status, headers, b"", reader, writer)
        length = int(headers.get("content-length") or 0)
        body = await reader.readexactly(length) if length else await reader.read()
    except (OSError, HTTPError, asyncio.IncompleteReadError, ValueError) as e:
        writer.close()
        raise _unreachable(url, e) from None
    writer.close()
    return _Upstream(status, headers, body, None, None)


# ---- kubectl's dialers ------------------------------------------------------------------------

async def _spdy(request: web.Request, ip: str, path: str,
                protocols: list[str]) -> web.StreamResponse:
    upstream = await _upgrade_agent(ip, path, protocols)
    if upstream.status != 101:
        return upstream.refusal()
    headers = {"Connection": "Upgrade", "Upgrade": "SPDY/3.1"}
    chosen = upstream.headers.get("x-stream-protocol-version")
    if chosen:
        headers["X-Stream-Protocol-Version"] = chosen
    response = web.StreamResponse(status=101, headers=headers)
    try:
        async with hijacked(request) as client:
            await response.prepare(request)
            await splice(client, (upstream.reader, upstream.writer))
    finally:
        upstream.writer.close()
    return response


async def _tunnel(request: web.Request, ip: str, path: str,
                  protocols: list[str]) -> web.StreamResponse:
    """kubectl's tunneling dialer: SPDY in binary WebSocket messages, unwrapped for the agent."""
    upstream = await _upgrade_agent(ip, path, protocols)
    if upstream.status != 101:
        return upstream.refusal()        # not an upgrade: kubectl falls back to SPDY
    chosen = upstream.headers.get("x-stream-protocol-version")
    client = web.WebSocketResponse(protocols=(TUNNEL_PREFIX + chosen,) if chosen else (),
                                   compress=False, autoclose=False,
                                   max_msg_size=MAX_TUNNEL_MESSAGE)
    try:
        await client.prepare(request)

        async def up() -> None:
            async for msg in client:
                if msg.type != WSMsgType.BINARY:
                    return               # the tunnel carries binary messages only
                upstream.writer.write(msg.data)
                await upstream.writer.drain()

        async def down() -> None:
            while data := await upstream.reader.read(CHUNK):
                await client.send_bytes(data)
        await until_one_ends(up(), down())
    finally:
        upstream.writer.close()
        await client.close()
    return client


# ---- the official Python client: v4.channel.k8s.io, proxied as exec is --------------------------

async def _websocket(request: web.Request, url: str, params: list, offered: list[str]):
    timeout = aiohttp.ClientTimeout(total=None, connect=3, sock_read=None)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        try:
            upstream = await session.ws_connect(url, params=params, protocols=offered,
                                                autoclose=False, compress=0)
        except aiohttp.WSServerHandshakeError:
            return await _relay_refusal(session, url, params)
        except aiohttp.ClientError as e:
            raise _unreachable(url, e) from None
        async with upstream:
            return await _proxy(request, upstream)
