"""pods/NAME/exec: the API server's side, a WebSocket proxy to the node agent's /exec
(execserver.py), as kube-apiserver proxies exec to the kubelet.

kubectl first tries a WebSocket (channel.k8s.io subprotocols) and falls back to SPDY when the
upgrade fails. Whatever fails (bad container, the agent's answer) is answered before any
upgrade, so both attempts get the same error; a SPDY request that would succeed gets the
agent's "Upgrade request required" (SPDY is not spoken here).
"""
from __future__ import annotations

import aiohttp
from aiohttp import WSMsgType, web

from nanokube.api import errors as E
from nanokube.api.storage import ResourceStorage
from nanokube.api.subresources import KUBELET_PORT, _container_for, _node_ip
from nanokube.splice import until_one_ends

# what is passed on to the agent (PodExecOptions)
EXEC_PARAMS = ("command", "stdin", "stdout", "stderr", "tty")


def _offered(request: web.Request) -> list[str]:
    header = ",".join(request.headers.getall("Sec-WebSocket-Protocol", []))
    return [p.strip() for p in header.split(",") if p.strip()]


async def exec_(request: web.Request, pods: ResourceStorage, nodes: ResourceStorage,
                namespace: str, name: str) -> web.StreamResponse:
    if request.method not in ("GET", "POST"):
        raise E.method_not_allowed(request.method, "pods/exec")
    pod = await pods.get(namespace, name)
    container = _container_for(pod, request.query.get("container"))
    if not pod.get("spec", {}).get("nodeName"):
        raise E.bad_request(f"pod {name} does not have a host assigned")
    ip = await _node_ip(nodes, pod)
    url = f"http://{ip}:{KUBELET_PORT}/exec/{namespace}/{name}/{container}"
    params = [(k, v) for k, v in request.query.items() if k in EXEC_PARAMS]
    timeout = aiohttp.ClientTimeout(total=None, connect=3, sock_read=None)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        if request.headers.get("Upgrade", "").strip().lower() == "websocket":
            try:
                upstream = await session.ws_connect(url, params=params,
                                                    protocols=_offered(request),
                                                    autoclose=False, compress=0)
            except aiohttp.WSServerHandshakeError:
                pass            # the plain request below tells why
            except aiohttp.ClientError as e:
                raise _unreachable(url, e) from None
            else:
                async with upstream:
                    return await _proxy(request, upstream)
        return await _relay_refusal(session, url, params)


def _unreachable(url: str, e: Exception) -> E.StatusError:
    return E.StatusError(500, "InternalError", f'Internal error occurred: error dialing backend: '
                         f'Get "{url}": {e}')


async def _relay_refusal(session: aiohttp.ClientSession, url: str, params) -> web.Response:
    """The agent's answer to the same request without an upgrade: its error, passed on as
    kube-apiserver passes on the kubelet's (kubectl shows "unable to upgrade connection: ...")."""
    try:
        async with session.get(url, params=params) as resp:
            body = await resp.read()
            return web.Response(status=resp.status, body=body,
                                content_type=resp.content_type or "text/plain")
    except aiohttp.ClientError as e:
        raise _unreachable(url, e) from None


async def _proxy(request: web.Request,
                 upstream: aiohttp.ClientWebSocketResponse) -> web.WebSocketResponse:
    """Accept the client with the protocol the agent chose and copy messages both ways until
    the agent closes (after the error stream's Status) or the client goes away."""
    client = web.WebSocketResponse(protocols=(upstream.protocol,) if upstream.protocol else (),
                                   compress=False, autoclose=False)
    await client.prepare(request)

    async def pump(source, sink) -> None:
        async for msg in source:
            if msg.type == WSMsgType.BINARY:
                await sink.send_bytes(msg.data)
            elif msg.type == WSMsgType.TEXT:
                await sink.send_str(msg.data)
    try:
        await until_one_ends(pump(upstream, client), pump(client, upstream))
    finally:
        await upstream.close()
        await client.close()
    return client

