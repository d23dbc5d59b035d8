"""healthCheckNodePort servers for externalTrafficPolicy Local LoadBalancer Services.

A cloud load balancer probes every node on the Service's healthCheckNodePort and only sends
traffic to nodes answering 200, i.e. nodes with a local endpoint. The answer copies kube-proxy's
(pkg/proxy/healthcheck/service_health.go): status, headers and the tab-indented JSON body.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from nanokube.node.httpserver import HTTPServer, Request, Response

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceHealth:
    namespace: str
    name: str
    local_endpoints: int


def health_response(health: ServiceHealth, proxy_healthy: bool) -> tuple[int, dict[str, str], str]:
    status = 200 if health.local_endpoints != 0 and proxy_healthy else 503
    headers = {
        "Content-Type": "application/json",
        "X-Content-Type-Options": "nosniff",
        "X-Load-Balancing-Endpoint-Weight": str(health.local_endpoints),
    }
    body = (
        "{\n"
        "\t\"service\": {\n"
        f"\t\t\"namespace\": \"{health.namespace}\",\n"
        f"\t\t\"name\": \"{health.name}\"\n"
        "\t},\n"
        f"\t\"localEndpoints\": {health.local_endpoints},\n"
        f"\t\"serviceProxyHealthy\": {'true' if proxy_healthy else 'false'}\n"
        "}"
    )
    return status, headers, body


class HealthCheckServers:
    """One HTTP listener per healthCheckNodePort, kept in line with the Services after each sync."""

    def __init__(self, proxy_healthy: Callable[[], bool], host: str = "0.0.0.0"):
        self.proxy_healthy = proxy_healthy
        self.host = host
        self.services: dict[int, ServiceHealth] = {}
        self._servers: dict[int, HTTPServer] = {}

    async def sync(self, services: dict[int, ServiceHealth]) -> None:
        self.services = dict(services)
        for port in list(self._servers):
            if port not in services:
                await self._servers.pop(port).close()
        for port in services:
            if port not in self._servers:
                await self._listen(port)

    async def _listen(self, port: int) -> None:
        server = HTTPServer(self._make_handler(port), self.host, port)   # any path, any method
        try:
            await server.start()
        except OSError as e:  # like kube-proxy: log and go on, the rules still work
            log.error("cannot serve healthCheckNodePort %d: %s", port, e)
            return
        self._servers[port] = server

    def _make_handler(self, port: int):
        async def handle(request: Request) -> Response:
            health = self.services.get(port)
            if health is None:
                return Response(status=503)
            status, headers, body = health_response(health, self.proxy_healthy())
            return Response(status=status, headers=headers, body=body.encode())
        return handle

    async def close(self) -> None:
        for server in self._servers.values():
            await server.close()
        self._servers.clear()
