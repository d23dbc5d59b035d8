"""The agent's TCP tunnel to a pod address, for the API server's `services/proxy` and
`pods/proxy` (nanokube/api/proxy.py):

    POST /tunnel/{pod-ip}/{port}     Connection: Upgrade, Upgrade: tcp
    -> 101 Switching Protocols, then the connection carries the bytes of a TCP connection to
       pod-ip:port, opened from the node's network namespace.

kube-apiserver dials the pod IP itself; our API server runs in the host namespace, which has no
route to pod addresses (docs/cluster.md), so it asks the agent of the pod's node to dial for it,
as exec and port-forward go through the agent. The tunnel is plain bytes: the API server speaks
HTTP (or TLS, or a WebSocket after an upgrade) to the pod over it, so the agent needs no HTTP
client and buffers nothing beyond one read.

Only the API server addresses may ask (it authenticated the user), and only for an address of
one of this node's pods: the agent is no open relay into the pod network.
"""
from __future__ import annotations

import asyncio
from typing import Callable

from nanokube.goerrors import dial_error
from nanokube.node.httpserver import Request, Response, Router, tokens
from nanokube.splice import splice

CONNECT_TIMEOUT = 5.0
UPGRADE = "tcp"

# the addresses of this node's pods (the node's own for hostNetwork pods)
PodAddresses = Callable[[], set[str]]


def parse_port(text: str) -> int | None:
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        return None
    return int(text)


class TunnelServer:
    def __init__(self, pod_addresses: PodAddresses, allowed_peers: frozenset[str] | None):
        self.pod_addresses = pod_addresses
        self.allowed_peers = allowed_peers   # None: anyone (tests)

    def add_routes(self, router: Router) -> None:
        router.add(("POST",), "/tunnel/{ip}/{port}", self.tunnel)

    async def tunnel(self, request: Request):
        if self.allowed_peers is not None and request.remote not in self.allowed_peers:
            return Response(status=403, text="Forbidden\n")
        h = request.headers
        if "upgrade" not in tokens(h, "connection") or (h.get("upgrade") or "").lower() != UPGRADE:
            return Response(status=400, text="unable to upgrade: missing upgrade headers in "
                            "request\n")
        ip, port = request.match_info["ip"], parse_port(request.match_info["port"])
        if port is None:
            return Response(status=400, text=f'invalid port "{request.match_info["port"]}"\n')
        if ip not in self.pod_addresses():
            return Response(status=404, text=f"no pod with address {ip} on this node\n")
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, port),
                                                    CONNECT_TIMEOUT)
        except asyncio.TimeoutError:
            return Response(status=502, text=f"dial tcp {ip}:{port}: i/o timeout\n")
        except OSError as e:
            return Response(status=502, text=dial_error(ip, port, e) + "\n")
        request.keep_alive = False
        try:
            request._writer.write(request.head(101, {"Connection": "Upgrade",
                                                     "Upgrade": UPGRADE}, None))
            await request._writer.drain()
            await splice((request._reader, request._writer), (reader, writer))
        finally:
            writer.close()
        request.answered = True
        return None
