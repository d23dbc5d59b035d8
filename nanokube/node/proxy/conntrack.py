"""Clearing stale UDP conntrack entries after a sync (kube-proxy pkg/proxy/conntrack).

UDP has no connection end: a client that keeps sending from one source port keeps its conntrack
entry, and with it the DNAT to an endpoint that may be gone. So when an endpoint leaves a UDP
Service we delete the entries whose original destination is one of the Service's addresses and
whose reply comes from that endpoint; and when a UDP Service gets its first endpoint we delete
the entries made while it had none. TCP entries are left alone (a RST ends them).
"""
from __future__ import annotations

import asyncio
import logging

from .model import ServicePort

log = logging.getLogger(__name__)


def _usable(sp: ServicePort) -> set[tuple[str, int]]:
    return {(e.ip, e.port) for e in sp.cluster_endpoints() + sp.local_endpoints()}


def stale_udp_filters(old: list[ServicePort], new: list[ServicePort]) -> list[list[str]]:
    """`conntrack -D` arguments for one Service's change from `old` to `new` ports."""
    new_by_id = {sp.id: sp for sp in new}
    filters: list[list[str]] = []
    for sp in old:
        if sp.protocol != "udp":
            continue
        gone = sorted(_usable(sp) - _usable(new_by_id[sp.id])) if sp.id in new_by_id \
            else sorted(_usable(sp))
        for ip, _ in gone:
            for vip in (sp.cluster_ip, *sp.external_vips):
                filters.append(["-p", "udp", "--orig-dst", vip, "--orig-port-dst", str(sp.port),
                                "--reply-src", ip])
            if sp.node_port:
                filters.append(["-p", "udp", "--orig-port-dst", str(sp.node_port), "--reply-src", ip])
    old_by_id = {sp.id: sp for sp in old}
    for sp in new:
        if sp.protocol != "udp" or not _usable(sp):
            continue
        before = old_by_id.get(sp.id)
        if before is not None and _usable(before):
            continue
        # entries made while the Service had no endpoint point nowhere
        for vip in (sp.cluster_ip, *sp.external_vips):
            filters.append(["-p", "udp", "--orig-dst", vip, "--orig-port-dst", str(sp.port)])
        if sp.node_port:
            filters.append(["-p", "udp", "--orig-port-dst", str(sp.node_port)])
    return filters


class ConntrackCleaner:
    """Runs `conntrack -D` (Debian package `conntrack`) for each filter."""

    def __init__(self, binary: str = "conntrack"):
        self.binary = binary
        self.deleted_runs = 0

    async def delete(self, filters: list[list[str]]) -> None:
        for f in filters:
            try:
                proc = await asyncio.create_subprocess_exec(
                    self.binary, "-D", *f, stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL)
            except FileNotFoundError:
                log.warning("conntrack tool not found: stale UDP entries are not cleared")
                return
            # exit status 1 only means "no entry matched"
            if await proc.wait() == 0:
                self.deleted_runs += 1


class FakeConntrack:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    async def delete(self, filters: list[list[str]]) -> None:
        self.calls.extend(filters)
