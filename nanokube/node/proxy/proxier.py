"""NftProxier: programs one node's Services into its nanokube nftables table.

A full sync at start replaces the table in one transaction (the kernel swaps it atomically, and
established connections keep their conntrack NAT state, so a restart does not cut traffic).
After that, every changed Service or EndpointSlice marks its Service dirty; a short coalescing
pause later, one transaction carries exactly the difference between what the model renders now
and what was rendered last time. The kernel is never read back: the in-memory copy is the truth,
and any failed transaction forces a full sync, which rebuilds it from the model.
"""
from __future__ import annotations

import asyncio
import logging
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from .conntrack import ConntrackCleaner, stale_udp_filters
from .healthcheck import HealthCheckServers, ServiceHealth
from .model import ProxyModel, ServiceKey, ServicePort
from .libnft import LibNft
from .nft import NftCli, Transaction
from .render import (BASE_CHAINS, NODEPORT_IPS, PROTOCOLS, STATIC_MAPS, L4PROTOS, ServiceRules,
                     nodeport_match, render_service, shared_chain_rules, static_chains)

log = logging.getLogger(__name__)

MISSING = object()  # "no element" in the element index (None is a set element's value)
STALE_DELAY = 1.0  # kernels < 6.2 may still see a chain referenced just after its last reference went
RETRY_DELAY = 1.0


class ElementIndex:
    """Map and set elements with the Services that want them.

    Two Services can claim one key (a shared ClusterIP in `cluster-ips`, a pod in `hairpin`, two
    Services naming the same external IP and port); the element exists while anyone claims it and
    its value comes from the first claimant in name order, so the outcome never depends on the
    order of events.
    """

    def __init__(self) -> None:
        self.claims: dict[tuple[str, str], dict[ServiceKey, str | None]] = {}

    def value(self, mk: tuple[str, str]):
        owners = self.claims.get(mk)
        if not owners:
            return MISSING
        return owners[min(owners)]

    def replace(self, owner: ServiceKey, old: dict, new: dict) -> list[tuple[tuple[str, str], object, object]]:
        """Swap `owner`'s claims; return (key, value before, value after) for each change."""
        changes = []
        for mk in old.keys() | new.keys():
            before = self.value(mk)
            owners = self.claims.setdefault(mk, {})
            if mk in new:
                owners[owner] = new[mk]
            else:
                owners.pop(owner, None)
            if not owners:
                del self.claims[mk]
            after = self.value(mk)
            if before != after or (before is MISSING) != (after is MISSING):
                changes.append((mk, before, after))
        return changes

    def __len__(self) -> int:
        return len(self.claims)


def default_nft():
    """libnftables when the library is there (libnft.py says why), else the `nft` command."""
    return LibNft() if LibNft.available() else NftCli()


PRECREATED_SHARED = 64   # endpoint counts whose shared chains every full sync makes


class NftProxier:
    def __init__(self, node_name: str, node_ips: list[str], pod_cidr: str | None, cluster_cidr: str,
                 service_cidr: str, table: str = "nanokube", nft=None, *,
                 healthz_timeout: float = 10.0, coalesce: float = 0.002, conntrack=None,
                 health_check_servers: bool = True, nodeport_addresses: str = "primary"):
        self.node_name = node_name
        self.node_ips = list(node_ips)
        self.nodeport_addresses = nodeport_addresses
        self._nodeports = nodeport_match(nodeport_addresses)   # ValueError: a bad flag
        self.cluster_cidr = cluster_cidr
        self.service_cidr = service_cidr
        self.table = table
        self.nft = nft or default_nft()
        self.conntrack = conntrack if conntrack is not None else ConntrackCleaner()
        self.healthz_timeout = healthz_timeout
        self.coalesce = coalesce
        self.model = ProxyModel(node_name, pod_cidr)
        self.health = HealthCheckServers(self.healthy) if health_check_servers else None

        # what the kernel holds, as far as we know (rebuilt by every full sync)
        self._rendered: dict[ServiceKey, ServiceRules] = {}
        self._ports: dict[ServiceKey, list[ServicePort]] = {}
        self._index = ElementIndex()
        self._shared: set[str] = set()
        self._stale: dict[tuple[str, str], float] = {}  # (kind, name) -> delete after
        self._owned_chains = 0
        self._owned_rules = 0
        self._owned_maps = 0

        self._dirty: set[ServiceKey] = set()
        self._dirty_since: float | None = None
        self._inflight_since: float | None = None
        self._need_full = True
        self._retry_at: float | None = None
        self._started = False
        self._stopping = False
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self.last_transaction: Transaction | None = None
        self._setup_metrics()

    # ------------------------------------------------------------------ public interface
    async def start(self) -> None:
        self._wake = asyncio.Event()
        self._stopping = False
        self._need_full = True
        await self.sync()
        self._started = True
        self._task = asyncio.create_task(self._run(), name="nft-proxier")

    async def stop(self) -> None:
        """Stop syncing; the rules stay in the kernel so traffic keeps flowing."""
        self._stopping = True
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self.health:
            await self.health.close()
        self.nft.close()

    def on_service(self, event_type: str, svc: dict) -> None:
        self._mark_dirty(self.model.update_service(event_type, svc))

    def on_endpointslice(self, event_type: str, eps: dict) -> None:
        self._mark_dirty(self.model.update_endpointslice(event_type, eps))

    def healthy(self) -> bool:
        """False before the first sync and when a change waits longer than healthz_timeout."""
        if not self._started:
            return False
        pending = [t for t in (self._dirty_since, self._inflight_since) if t is not None]
        return not pending or time.monotonic() - min(pending) < self.healthz_timeout

    def metrics_text(self) -> bytes:
        return generate_latest(self.registry)

    def ruleset(self) -> str:
        """The whole table as an nft script rendered from memory (never read from the kernel)."""
        tx = self._transaction()
        tx.add_table("rules for nanokube services")
        self._emit_all(tx)
        return tx.text()

    async def sync(self) -> None:
        """Program whatever is pending now (the background loop calls this too)."""
        async with self._lock:
            now = time.monotonic()
            due_stale = any(t <= now for t in self._stale.values())
            if not (self._need_full or self._dirty or due_stale):
                return
            self._inflight_since = self._dirty_since if self._dirty_since is not None else now
            keys, self._dirty, self._dirty_since = self._dirty, set(), None
            full = self._need_full
            started = time.perf_counter()
            try:
                if full:
                    post = await self._full_sync()
                else:
                    post = await self._partial_sync(keys)
            except Exception as e:  # noqa: BLE001 - any failure means: rebuild from scratch
                log.error("nftables sync failed (%s sync), full sync in %.0fs: %s",
                          "full" if full else "partial", RETRY_DELAY, e)
                self.m_failures.inc()
                self._need_full = True
                self._dirty |= keys
                self._dirty_since = self._inflight_since
                self._retry_at = time.monotonic() + RETRY_DELAY
                return
            finally:
                self._inflight_since = None
            elapsed = time.perf_counter() - started
            self._need_full = False
            self._retry_at = None
            self.m_duration.observe(elapsed)
            (self.m_full if full else self.m_partial).observe(elapsed)
            self.m_last.set(time.time())
            self._update_object_metrics()
        await self._after_sync(post)

    # ------------------------------------------------------------------ loop
    def _mark_dirty(self, keys: set[ServiceKey]) -> None:
        if not keys:
            return
        if self._dirty_since is None:
            self._dirty_since = time.monotonic()
        self._dirty |= keys
        self.m_queued.set(time.time())
        if self._wake is not None:
            self._wake.set()

    async def _run(self) -> None:
        while True:
            deadlines = list(self._stale.values())
            if self._retry_at is not None:
                deadlines.append(self._retry_at)
            timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            except TimeoutError:
                pass
            if self._stopping:
                return
            self._wake.clear()
            if self._retry_at is not None and time.monotonic() < self._retry_at:
                continue
            if self.coalesce:
                await asyncio.sleep(self.coalesce)  # let a burst of events land in one transaction
            try:
                await self.sync()
            except Exception:  # noqa: BLE001 - the loop must survive anything
                log.exception("proxier sync crashed")
                self._need_full = True
                self._retry_at = time.monotonic() + RETRY_DELAY

    # ------------------------------------------------------------------ syncs
    def _transaction(self) -> Transaction:
        return Transaction(family="ip", table=self.table)

    async def _full_sync(self):
        old_ports = self._ports
        self._index = ElementIndex()
        self._rendered, self._ports, self._shared, self._stale = {}, {}, set(), {}
        self._owned_chains = self._owned_rules = self._owned_maps = 0
        for key in sorted(self.model.services.keys() | self.model.slices.keys()):
            ports = self.model.service_ports(key)
            rules = render_service(ports, self.cluster_cidr)
            if ports:
                self._ports[key] = ports
            if rules.elements or rules.chains:
                self._rendered[key] = rules
                self._index.replace(key, {}, rules.elements)
                self._shared |= rules.shared
                self._count(rules, +1)
        self._shared |= {f"{kind}-n{k}" for kind in ("cluster", "external", "nodeport")
                         for k in range(1, PRECREATED_SHARED + 1)}
        tx = self._transaction()
        # add+delete+add: works whether or not the table exists, and swaps it in one commit
        tx.add_table()
        tx.delete_table()
        tx.add_table("rules for nanokube services")
        self._emit_all(tx)
        await self.nft.run(tx)
        return [(key, old_ports.get(key, []), self._ports.get(key, []))
                for key in old_ports.keys() | self._ports.keys()]

    def _emit_all(self, tx: Transaction) -> None:
        for name, (kind, spec) in STATIC_MAPS.items():
            (tx.add_set if kind == "set" else tx.add_map)(name, spec)
        for proto in PROTOCOLS:
            tx.add_element(L4PROTOS, proto)
        if self.nodeport_addresses == "primary":
            for ip in self.node_ips:
                tx.add_element(NODEPORT_IPS, ip)
        chains = static_chains(self.cluster_cidr, self.service_cidr, self._nodeports)
        for name in chains:
            tx.add_chain(name, BASE_CHAINS.get(name))
        for name, rules in chains.items():
            for rule in rules:
                tx.add_rule(name, rule)
        for name in sorted(self._shared):
            tx.add_chain(name)
            for rule in shared_chain_rules(name, self.cluster_cidr):
                tx.add_rule(name, rule)
        for rules in self._rendered.values():
            for name, spec in rules.maps.items():
                tx.add_map(name, spec)
            for name in rules.chains:
                tx.add_chain(name)
        for rules in self._rendered.values():
            for name, chain_rules in rules.chains.items():
                for rule in chain_rules:
                    tx.add_rule(name, rule)
        for mk in sorted(self._index.claims):
            tx.add_element(mk[0], mk[1], self._index.value(mk))

    async def _partial_sync(self, keys: set[ServiceKey]):
        tx = self._transaction()
        plans = []
        for key in sorted(keys):
            ports = self.model.service_ports(key)
            plans.append((key, self._rendered.get(key) or ServiceRules(),
                          render_service(ports, self.cluster_cidr), ports))

        # 1. shared endpoint-count chains that do not exist yet. nft 1.0.6 (Debian 12) cannot
        # add a rule using the backends map in a later transaction than the map's ("conflicting
        # protocols specified: ip vs. th"), so the full sync makes the chains for up to
        # PRECREATED_SHARED endpoints, and a Service with more endpoints than that, the first of
        # its size, costs one full sync.
        if set().union(*(new.shared for _, _, new, _ in plans)) - self._shared:
            return await self._full_sync()
        # 2. new per-Service maps and chains (all created before any rule refers to them)
        for _, old, new, _ in plans:
            for name, spec in new.maps.items():
                if name not in old.maps:
                    self._stale.pop(("map", name), None)
                    tx.add_map(name, spec)
            for name in new.chains:
                if name not in old.chains:
                    self._stale.pop(("chain", name), None)
                    tx.add_chain(name)
        # 3. chain contents: rewrite a chain only if its rules changed
        for _, old, new, _ in plans:
            for name, rules in new.chains.items():
                if old.chains.get(name) == rules:
                    continue
                if name in old.chains:
                    tx.flush_chain(name)
                for rule in rules:
                    tx.add_rule(name, rule)
        # 4. elements: deletions first, so that a changed value is a delete then an add
        net: dict[tuple[str, str], list] = {}  # two Services may change one key: keep the net change
        for key, old, new, _ in plans:
            for mk, before, after in self._index.replace(key, old.elements, new.elements):
                net.setdefault(mk, [before, after])[1] = after
        changes = sorted((mk, b, a) for mk, (b, a) in net.items() if b is not a and b != a)
        for (m, k), before, after in changes:
            if before is not MISSING:
                tx.delete_element(m, k)
        for (m, k), before, after in changes:
            if after is not MISSING:
                tx.add_element(m, k, after)
        # 5. what went away: flush now, delete later; forget affinity to endpoints that left
        now = time.monotonic()
        for _, old, new, _ in plans:
            for name in old.chains.keys() - new.chains.keys():
                tx.flush_chain(name)
                self._stale[("chain", name)] = now + STALE_DELAY
            for name in old.maps.keys() - new.maps.keys():
                self._stale[("map", name)] = now + STALE_DELAY
            for name, eps in new.affinity_endpoints.items():
                if old.affinity_endpoints.get(name, eps) - eps:
                    tx.flush_map(name)
        # 6. stale objects old enough to delete (chains first: they may use the maps)
        due = sorted((k for k, t in self._stale.items() if t <= now), key=lambda k: k[0] != "chain")
        for kind, name in due:
            (tx.delete_chain if kind == "chain" else tx.delete_map)(name)
            del self._stale[(kind, name)]

        for key, old, new, ports in plans:
            self._count(old, -1)
            self._count(new, +1)
            if new.elements or new.chains:
                self._rendered[key] = new
            else:
                self._rendered.pop(key, None)
        post = []
        for key, _, _, ports in plans:
            post.append((key, self._ports.get(key, []), ports))
            if ports:
                self._ports[key] = ports
            else:
                self._ports.pop(key, None)
        self.last_transaction = tx
        if len(tx):
            await self.nft.run(tx)
        return post

    async def _after_sync(self, post) -> None:
        """Conntrack cleanup and health check servers, once the rules are in."""
        filters = []
        for _, old, new in post:
            filters += stale_udp_filters(old, new)
        if filters:
            await self.conntrack.delete(filters)
        if self.health:
            wanted = {}
            for ports in self._ports.values():
                for sp in ports:
                    if sp.health_check_node_port:
                        wanted[sp.health_check_node_port] = ServiceHealth(
                            sp.namespace, sp.name, sp.ready_local_count())
            if wanted or self.health.services:
                await self.health.sync(wanted)

    # ------------------------------------------------------------------ metrics
    def _count(self, rules: ServiceRules, sign: int) -> None:
        self._owned_chains += sign * len(rules.chains)
        self._owned_rules += sign * sum(len(r) for r in rules.chains.values())
        self._owned_maps += sign * len(rules.maps)

    def object_counts(self) -> dict[str, int]:
        static = static_chains(self.cluster_cidr, self.service_cidr, self._nodeports)
        return {
            "chains": len(static) + len(self._shared) + self._owned_chains,
            "rules": sum(len(r) for r in static.values()) + 2 * len(self._shared) + self._owned_rules,
            "maps": len(STATIC_MAPS) + self._owned_maps,
            "elements": len(self._index) + len(PROTOCOLS)
            + (len(self.node_ips) if self.nodeport_addresses == "primary" else 0),
        }

    def _setup_metrics(self) -> None:
        r = self.registry = CollectorRegistry()
        buckets = [0.001 * 2 ** i for i in range(15)]  # kube-proxy's: 1 ms x 2^0..14
        self.m_duration = Histogram("kubeproxy_sync_proxy_rules_duration_seconds",
                                    "SyncProxyRules latency in seconds", buckets=buckets, registry=r)
        self.m_full = Histogram("kubeproxy_sync_full_proxy_rules_duration_seconds",
                                "Full SyncProxyRules latency in seconds", buckets=buckets, registry=r)
        self.m_partial = Histogram("kubeproxy_sync_partial_proxy_rules_duration_seconds",
                                   "Partial SyncProxyRules latency in seconds", buckets=buckets, registry=r)
        self.m_last = Gauge("kubeproxy_sync_proxy_rules_last_timestamp_seconds",
                            "The last time proxy rules were successfully synced", registry=r)
        self.m_queued = Gauge("kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds",
                              "The last time a sync of proxy rules was queued", registry=r)
        self.m_failures = Counter("kubeproxy_sync_proxy_rules_nftables_sync_failures",
                                  "Failed nftables transactions", registry=r)
        self.m_objects = Gauge("nanokube_proxy_nftables_objects",
                               "Kernel objects in the nanokube table, by kind", ["kind"], registry=r)

    def _update_object_metrics(self) -> None:
        for kind, n in self.object_counts().items():
            self.m_objects.labels(kind).set(n)
