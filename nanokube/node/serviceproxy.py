"""The service proxy part of the node agent: kube-proxy's job, with the nftables proxier.

It feeds the proxier (nanokube.node.proxy) from two informers, Services (shared with the
kubelet part, which needs them for service environment variables) and EndpointSlices, and
serves kube-proxy's two HTTP endpoints on the node IP:

- `:10249/metrics`: the proxier's Prometheus metrics (sync durations, last sync, rule counts);
- `:10256/healthz` and `/livez`: kube-proxy's JSON answer, 200 while the rules are fresh, 503
  when a change has waited too long to be programmed (or before the first sync).

The first full sync waits for both informers' first lists, so that it programs the whole
cluster at once: a restarted agent never swaps the previous agent's rules for a half-empty table
(the full sync replaces the table in one atomic transaction, and stopping leaves the rules in
place, so traffic flows throughout).
"""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from typing import Callable

from prometheus_client import Counter

from nanokube.client import Client
from nanokube.controllers.informer import Informer
from nanokube.node.httpserver import HTTPServer, Request, Response, Router
from nanokube.node.proxy import NftProxier

log = logging.getLogger("nanokube.node.serviceproxy")

METRICS_PORT = 10249
HEALTHZ_PORT = 10256
POD_BRIDGE = "cni0"
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"

_STARTED = time.monotonic()


def event_type(old: dict | None, new: dict | None) -> str:
    """An informer's (old, new) as a watch event type."""
    if new is None:
        return "DELETED"
    return "ADDED" if old is None else "MODIFIED"


def go_time(wall: float) -> str:
    """A time as Go's time.Time.String() prints it, which is what kube-proxy's /healthz shows:
    `2020-06-03 23:59:53.688063083 +0000 UTC m=+202.631797660`."""
    t = datetime.fromtimestamp(wall, timezone.utc)
    nanos = int(round((wall % 1) * 1e9)) % 1_000_000_000
    mono = time.monotonic() - _STARTED
    return f"{t:%Y-%m-%d %H:%M:%S}.{nanos:09d} +0000 UTC m=+{mono:.9f}"


def healthz_body(healthy: bool, last_updated: float | None, now: float,
                 node_eligible: bool) -> str:
    """kube-proxy's body (pkg/proxy/healthcheck/proxier_health.go). While healthy, lastUpdated is
    the current time, as kube-proxy reports it for compatibility with older releases."""
    updated = now if healthy or last_updated is None else last_updated
    if last_updated is None and not healthy:
        updated_text = "0001-01-01 00:00:00 +0000 UTC"      # Go's zero time: never synced
    else:
        updated_text = go_time(updated)
    eligible = "true" if node_eligible else "false"
    return (f'{{"lastUpdated": "{updated_text}","currentTime": "{go_time(now)}", '
            f'"nodeEligible": {eligible}}}')


class ServiceProxy:
    def __init__(self, client: Client, node_name: str, node_ip: str, services: Informer, *,
                 cluster_cidr: str, service_cidr: str,
                 node_eligible: Callable[[], bool] = lambda: True,
                 metrics_port: int = METRICS_PORT, healthz_port: int = HEALTHZ_PORT,
                 proxier: NftProxier | None = None, nodeport_addresses: str = "primary"):
        self.node_ip = node_ip
        self.service_cidr = service_cidr
        self.node_eligible = node_eligible
        self.metrics_port = metrics_port
        self.healthz_port = healthz_port
        # pod_cidr stays None: EndpointSlices name each endpoint's node, which is what
        # tells a local endpoint; and the first sync must not wait for node IPAM.
        self.proxier = proxier or NftProxier(node_name, [node_ip], None, cluster_cidr,
                                             service_cidr,
                                             nodeport_addresses=nodeport_addresses)
        self.services = services
        self.slices = Informer(client, "discovery.k8s.io", "v1", "endpointslices")
        services.add_handler(self._on_service)
        self.slices.add_handler(self._on_slice)
        self.synced = asyncio.Event()           # the first full sync is done
        self._runners: list[HTTPServer] = []     # the listening HTTP servers
        registry = self.proxier.registry
        self.m_healthz = Counter("kubeproxy_healthz", "Cumulative proxy healthz HTTP status",
                                 ["code"], registry=registry)
        self.m_livez = Counter("kubeproxy_livez", "Cumulative proxy livez HTTP status",
                               ["code"], registry=registry)

    # ---- events --------------------------------------------------------------------------
    def _on_service(self, old: dict | None, new: dict | None) -> None:
        self.proxier.on_service(event_type(old, new), new if new is not None else old)

    def _on_slice(self, old: dict | None, new: dict | None) -> None:
        self.proxier.on_endpointslice(event_type(old, new), new if new is not None else old)

    # ---- life ----------------------------------------------------------------------------
    async def run(self) -> None:
        """Serve, watch and sync until cancelled. The agent runs the Services informer."""
        await self._serve()
        watch = asyncio.create_task(self.slices.run(), name="endpointslices-informer")
        try:
            await self.services.synced.wait()
            await self.slices.synced.wait()
            t0 = time.perf_counter()
            await self._start_proxier()
            log.info("service proxy: full sync of %d service(s) in %.1f ms",
                     len(self.proxier.model.services), (time.perf_counter() - t0) * 1000)
            self.synced.set()
            await watch
        finally:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)
            await self.proxier.stop()           # the rules stay: traffic keeps flowing
            for server in self._runners:
                await server.close()
            self._runners.clear()

    async def _start_proxier(self) -> None:
        while True:
            try:
                await self.proxier.start()
                return
            except Exception as e:            # e.g. nft missing: keep serving 503 and retry
                log.error("service proxy: first sync failed: %s", e)
                await asyncio.sleep(1)

    async def add_service_route(self) -> None:
        """`<service CIDR> dev cni0`: a process on the node connecting to a ClusterIP needs a
        route to pick a source address before the nat output hook rewrites the destination
        (and, without one, would send unallocated service IPs to the LAN's gateway)."""
        while True:
            proc = await asyncio.create_subprocess_exec(
                "ip", "route", "replace", self.service_cidr, "dev", POD_BRIDGE,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
            _, err = await proc.communicate()
            if proc.returncode == 0:
                return
            log.warning("service route %s dev %s: %s", self.service_cidr, POD_BRIDGE,
                        err.decode().strip())
            await asyncio.sleep(1)

    # ---- HTTP ------------------------------------------------------------------------------
    async def _serve(self) -> None:
        metrics = Router()
        metrics.add_get("/metrics", self._metrics)
        health = Router()
        health.add_get("/healthz", self._healthz)
        health.add_get("/livez", self._livez)
        for router, port in ((metrics, self.metrics_port), (health, self.healthz_port)):
            server = HTTPServer(router, self.node_ip, port)
            try:
                await server.start()
            except OSError as e:    # a port taken must not stop the proxy itself
                log.error("service proxy: cannot listen on %s:%d: %s", self.node_ip, port, e)
                continue
            self._runners.append(server)

    async def _metrics(self, request: Request) -> Response:
        return Response(body=self.proxier.metrics_text(),
                        headers={"Content-Type": PROMETHEUS_TEXT})

    def _health_response(self, check_node: bool, counter: Counter) -> Response:
        healthy = self.proxier.healthy()
        eligible = self.node_eligible()
        ok = healthy and (eligible or not check_node)
        status = 200 if ok else 503
        counter.labels(str(status)).inc()
        last = self.proxier.registry.get_sample_value(
            "kubeproxy_sync_proxy_rules_last_timestamp_seconds") or None
        body = healthz_body(ok, last, time.time(), eligible)
        return Response(status=status, body=body.encode(), headers={
            "Content-Type": "application/json", "X-Content-Type-Options": "nosniff"})

    async def _healthz(self, request: Request) -> Response:
        return self._health_response(True, self.m_healthz)

    async def _livez(self, request: Request) -> Response:
        return self._health_response(False, self.m_livez)
