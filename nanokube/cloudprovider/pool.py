"""The built-in `pool` provider: LoadBalancer addresses from MetalLB IPAddressPools.

Allocation follows MetalLB's controller (facts in the reference, §5.2):
- an address requested by `metallb.io/loadBalancerIPs` or `spec.loadBalancerIP` must lie in a
  pool that admits the Service and be free (or shareable);
- otherwise the pools that admit the Service are tried by priority (serviceAllocation.priority,
  lower first, unset last, then by name; `metallb.io/address-pool` names the only one to try,
  and autoAssign: false pools are used only when asked for) and the lowest free address wins;
  avoidBuggyIPs skips addresses ending in .0 and .255;
- Services with the same `metallb.io/allow-shared-ip` key may share an address when their
  ports don't clash and both have externalTrafficPolicy Cluster or the same pod selector.
The allocator is pure (no I/O) so that it can be tested alone; the provider feeds it the pools
and namespaces from the controller's caches.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Callable, Iterator

from nanokube.api.selectors import from_label_selector_object
from nanokube.cloudprovider import LoadBalancer, LoadBalancerError
from nanokube.registry.ipaddresspool import AddressRange, pool_ranges

PREFIXES = ("metallb.io/", "metallb.universe.tf/")   # the old prefix is still accepted
LOAD_BALANCER_IPS = "loadBalancerIPs"
ADDRESS_POOL = "address-pool"
ALLOW_SHARED_IP = "allow-shared-ip"
ALLOCATED_FROM_POOL = "metallb.io/ip-allocated-from-pool"
NO_PRIORITY = 1 << 31


def annotation(service: dict, name: str) -> str | None:
    annotations = (service.get("metadata") or {}).get("annotations") or {}
    for prefix in PREFIXES:
        if prefix + name in annotations:
            return annotations[prefix + name]
    return None


def service_key(service: dict) -> str:
    meta = service["metadata"]
    return f"{meta.get('namespace', '')}/{meta['name']}"


def ip_str(ip: int) -> str:
    return str(ipaddress.IPv4Address(ip))


def requested_ip(service: dict) -> int | None:
    """The address the Service asks for, if any; LoadBalancerError when it is unusable."""
    text = annotation(service, LOAD_BALANCER_IPS)
    if text is None:
        text = (service.get("spec") or {}).get("loadBalancerIP") or None
    if not text:
        return None
    wanted = [t.strip() for t in text.split(",") if t.strip()]
    ips = []
    for t in wanted:
        try:
            ips.append(ipaddress.ip_address(t))
        except ValueError:
            raise LoadBalancerError(f"invalid requested IP {t!r}") from None
    v4 = [ip for ip in ips if ip.version == 4]
    if len(v4) != len(ips):
        raise LoadBalancerError(f"IPv6 addresses are not supported (requested {text})")
    if len(v4) > 1:
        raise LoadBalancerError(f"more than one IPv4 address requested ({text})")
    return int(v4[0]) if v4 else None


@dataclass
class Pool:
    name: str
    ranges: list[AddressRange]
    auto_assign: bool = True
    avoid_buggy_ips: bool = False
    priority: int = NO_PRIORITY
    namespaces: list[str] | None = None
    namespace_selectors: list[dict] | None = None
    service_selectors: list[dict] | None = None

    @classmethod
    def from_object(cls, obj: dict) -> "Pool":
        spec = obj.get("spec") or {}
        alloc = spec.get("serviceAllocation") or {}
        return cls(name=obj["metadata"]["name"], ranges=sorted(pool_ranges(obj)),
                   auto_assign=spec.get("autoAssign", True) is not False,
                   avoid_buggy_ips=bool(spec.get("avoidBuggyIPs")),
                   priority=alloc.get("priority") or NO_PRIORITY,
                   namespaces=alloc.get("namespaces"),
                   namespace_selectors=alloc.get("namespaceSelectors"),
                   service_selectors=alloc.get("serviceSelectors"))

    def sort_key(self) -> tuple[int, str]:
        return (self.priority, self.name)

    def contains(self, ip: int) -> bool:
        return any(ip in r for r in self.ranges) and self.usable(ip)

    def usable(self, ip: int) -> bool:
        return not (self.avoid_buggy_ips and ip & 0xFF in (0, 0xFF))

    def addresses(self) -> Iterator[int]:
        """Every usable address, lowest first."""
        for r in self.ranges:
            for ip in range(r.first, r.last + 1):
                if self.usable(ip):
                    yield ip

    def admits(self, service: dict, namespace_labels: dict) -> bool:
        """serviceAllocation: namespaces (by name or selector) and service selectors."""
        meta = service["metadata"]
        if self.namespaces or self.namespace_selectors:
            by_name = meta.get("namespace") in (self.namespaces or [])
            by_label = any(from_label_selector_object(s).matches(namespace_labels)
                           for s in self.namespace_selectors or [])
            if not (by_name or by_label):
                return False
        if self.service_selectors:
            return any(from_label_selector_object(s).matches(meta.get("labels") or {})
                       for s in self.service_selectors)
        return True


@dataclass
class Allocation:
    ip: int
    pool: str
    sharing_key: str | None
    ports: frozenset[tuple[str, int]]           # (protocol, port)
    local_policy: bool
    selector: dict | None

    @classmethod
    def of(cls, service: dict, ip: int, pool: str) -> "Allocation":
        spec = service.get("spec") or {}
        ports = frozenset((p.get("protocol") or "TCP", p.get("port"))
                          for p in spec.get("ports") or [])
        return cls(ip, pool, annotation(service, ALLOW_SHARED_IP) or None, ports,
                   spec.get("externalTrafficPolicy") == "Local", spec.get("selector"))


def sharing_conflict(mine: Allocation, other: Allocation, other_key: str) -> str | None:
    """Why two Services cannot share an address, or None if they can."""
    taken = f"address {ip_str(mine.ip)} is already in use by {other_key}"
    if not mine.sharing_key or mine.sharing_key != other.sharing_key:
        return taken
    clash = mine.ports & other.ports
    if clash:
        ports = ", ".join(f"{port}/{proto}" for proto, port in sorted(clash))
        return f"{taken} with the same ports ({ports})"
    if (mine.local_policy or other.local_policy) and mine.selector != other.selector:
        return f"{taken}, which selects other pods with externalTrafficPolicy Local"
    return None


@dataclass
class PoolAllocator:
    pools: dict[str, Pool] = field(default_factory=dict)
    allocations: dict[str, Allocation] = field(default_factory=dict)   # service key -> ...
    users: dict[int, set[str]] = field(default_factory=dict)           # ip -> service keys

    def set_pools(self, objects: list[dict]) -> None:
        self.pools = {o["metadata"]["name"]: Pool.from_object(o) for o in objects}

    def pool_of(self, ip: int) -> Pool | None:
        return next((p for p in self.pools.values() if p.contains(ip)), None)

    # ---- bookkeeping -------------------------------------------------------------------------
    def _take(self, key: str, alloc: Allocation) -> None:
        self.release(key)
        self.allocations[key] = alloc
        self.users.setdefault(alloc.ip, set()).add(key)

    def release(self, key: str) -> Allocation | None:
        alloc = self.allocations.pop(key, None)
        if alloc is not None:
            users = self.users.get(alloc.ip, set())
            users.discard(key)
            if not users:
                self.users.pop(alloc.ip, None)
        return alloc

    def restore(self, service: dict, ip_text: str) -> bool:
        """Record an address a Service already holds (its status), at start."""
        try:
            ip = int(ipaddress.IPv4Address(ip_text))
        except ValueError:
            return False
        pool = self.pool_of(ip)
        self._take(service_key(service), Allocation.of(service, ip, pool.name if pool else ""))
        return True

    def conflict(self, key: str, alloc: Allocation) -> str | None:
        for other_key in sorted(self.users.get(alloc.ip, set()) - {key}):
            why = sharing_conflict(alloc, self.allocations[other_key], other_key)
            if why:
                return why
        return None

    # ---- allocation --------------------------------------------------------------------------
    def _still_valid(self, key: str, service: dict, ns_labels: dict) -> bool:
        current = self.allocations.get(key)
        if current is None:
            return False
        pool = self.pool_of(current.ip)
        wanted_pool = annotation(service, ADDRESS_POOL)
        wanted_ip = requested_ip(service)
        if pool is None or not pool.admits(service, ns_labels):
            return False
        if (wanted_pool and pool.name != wanted_pool) or \
                (wanted_ip is not None and wanted_ip != current.ip):
            return False
        if wanted_ip is None and not wanted_pool and not pool.auto_assign:
            return False
        updated = Allocation.of(service, current.ip, pool.name)
        if self.conflict(key, updated):
            return False
        self.allocations[key] = updated
        return True

    def assign(self, service: dict, ns_labels: dict | None = None) -> Allocation:
        """The Service's address: kept if still valid, else newly chosen. Raises
        LoadBalancerError saying why none can be given (the old address is then released)."""
        key = service_key(service)
        ns_labels = ns_labels or {}
        try:
            wanted_ip = requested_ip(service)
        except LoadBalancerError:
            self.release(key)
            raise
        if self._still_valid(key, service, ns_labels):
            return self.allocations[key]
        self.release(key)
        wanted_pool = annotation(service, ADDRESS_POOL)
        if wanted_pool and wanted_pool not in self.pools:
            raise LoadBalancerError(f"unknown IPAddressPool {wanted_pool!r}")
        if wanted_ip is not None:
            return self._assign_requested(key, service, ns_labels, wanted_ip, wanted_pool)
        if wanted_pool:
            pools = [self.pools[wanted_pool]]
        else:
            pools = sorted((p for p in self.pools.values() if p.auto_assign),
                           key=Pool.sort_key)
        pools = [p for p in pools if p.admits(service, ns_labels)]
        if not pools:
            raise LoadBalancerError(f"no IPAddressPool admits Service {key}" if self.pools
                                    else "no IPAddressPool is configured")
        for pool in pools:
            for ip in pool.addresses():
                alloc = Allocation.of(service, ip, pool.name)
                if self.conflict(key, alloc) is None:
                    self._take(key, alloc)
                    return alloc
        names = ", ".join(p.name for p in pools)
        raise LoadBalancerError(f"no available IPs: IPAddressPool {names} exhausted"
                                if len(pools) == 1 else
                                f"no available IPs: IPAddressPools {names} exhausted")

    def _assign_requested(self, key: str, service: dict, ns_labels: dict, ip: int,
                          wanted_pool: str | None) -> Allocation:
        pool = self.pool_of(ip)
        if pool is None:
            raise LoadBalancerError(f"requested IP {ip_str(ip)} is outside every IPAddressPool")
        if wanted_pool and pool.name != wanted_pool:
            raise LoadBalancerError(f"requested IP {ip_str(ip)} is not in IPAddressPool "
                                    f"{wanted_pool!r} (it is in {pool.name!r})")
        if not pool.admits(service, ns_labels):
            raise LoadBalancerError(f"IPAddressPool {pool.name!r} of requested IP {ip_str(ip)} "
                                    f"does not admit Service {key}")
        alloc = Allocation.of(service, ip, pool.name)
        why = self.conflict(key, alloc)
        if why:
            raise LoadBalancerError(why)
        self._take(key, alloc)
        return alloc


def ingress_status(alloc: Allocation) -> dict:
    return {"ingress": [{"ip": ip_str(alloc.ip), "ipMode": "VIP"}]}


class PoolProvider(LoadBalancer):
    """The LoadBalancer interface over a PoolAllocator. `pools()` returns the current
    IPAddressPool objects, `namespace_labels(ns)` a namespace's labels."""

    name = "pool"

    def __init__(self, pools: Callable[[], list[dict]],
                 namespace_labels: Callable[[str], dict] = lambda ns: {}):
        self.allocator = PoolAllocator()
        self._pools = pools
        self._namespace_labels = namespace_labels

    def refresh(self) -> None:
        self.allocator.set_pools(self._pools())

    def allocation(self, service: dict) -> Allocation | None:
        return self.allocator.allocations.get(service_key(service))

    async def get_load_balancer(self, cluster_name: str, service: dict) -> tuple[dict, bool]:
        alloc = self.allocation(service)
        return (ingress_status(alloc), True) if alloc else ({}, False)

    async def ensure_load_balancer(self, cluster_name: str, service: dict,
                                   nodes: list[dict]) -> dict:
        self.refresh()
        ns = service["metadata"].get("namespace", "")
        return ingress_status(self.allocator.assign(service, self._namespace_labels(ns)))

    async def update_load_balancer(self, cluster_name: str, service: dict,
                                   nodes: list[dict]) -> None:
        """Nothing to do: the address does not depend on the nodes (announcing does)."""

    async def ensure_load_balancer_deleted(self, cluster_name: str, service: dict) -> None:
        self.allocator.release(service_key(service))
