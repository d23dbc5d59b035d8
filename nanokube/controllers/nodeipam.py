"""Node IPAM: each Node gets a free /N of the cluster CIDR as spec.podCIDR(s).

What is taken is rebuilt from the Nodes in the cache (the range allocator's occupy-on-start).
The first subnet is kept free, so that node-1 typically gets 10.244.1.0/24 (docs/cluster.md).
"""
from __future__ import annotations

import ipaddress
import logging

from nanokube.controllers.informer import object_key
from nanokube.controllers.manager import Controller

log = logging.getLogger("nanokube.nodeipam")


class CIDRSet:
    """The /N subnets of a cluster CIDR and which node holds each."""

    def __init__(self, cluster_cidr: str, mask_size: int, first_index: int = 1):
        self.network = ipaddress.ip_network(cluster_cidr, strict=False)
        if mask_size < self.network.prefixlen:
            raise ValueError(f"node CIDR mask size {mask_size} is larger than the cluster CIDR "
                             f"{cluster_cidr}")
        self.mask_size = mask_size
        self.size = 2 ** (mask_size - self.network.prefixlen)
        self.first_index = first_index if self.size > first_index else 0
        self.owner: dict[str, str] = {}     # cidr -> node name

    def subnet(self, index: int) -> str:
        step = 2 ** (self.network.max_prefixlen - self.mask_size)
        base = int(self.network.network_address) + index * step
        return f"{ipaddress.ip_address(base)}/{self.mask_size}"

    def occupy(self, cidr: str, node: str) -> None:
        """Record a node's existing CIDR (normalised, only if inside the cluster CIDR)."""
        try:
            net = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            return
        if net.version == self.network.version and net.subnet_of(self.network):
            self.owner[str(net)] = node

    def release_node(self, node: str) -> None:
        for cidr in [c for c, n in self.owner.items() if n == node]:
            del self.owner[cidr]

    def of_node(self, node: str) -> str | None:
        return next((c for c, n in self.owner.items() if n == node), None)

    def allocate(self, node: str) -> str | None:
        """The node's CIDR: the one it already holds, else the lowest free one (None: full)."""
        held = self.of_node(node)
        if held:
            return held
        for index in [*range(self.first_index, self.size), *range(0, self.first_index)]:
            cidr = self.subnet(index)
            if cidr not in self.owner:
                self.owner[cidr] = node
                return cidr
        return None


class NodeIpamController(Controller):
    name = "nodeipam"

    def __init__(self, client, informers, cluster_cidr: str, mask_size: int):
        super().__init__(client, informers)
        self.cidrs = CIDRSet(cluster_cidr, mask_size)
        self.nodes = informers.nodes()
        self.nodes.add_handler(self._on_node)

    def _on_node(self, old: dict | None, new: dict | None) -> None:
        if new is None:
            self.cidrs.release_node(old["metadata"]["name"])
            return
        for cidr in _pod_cidrs(new):
            self.cidrs.occupy(cidr, new["metadata"]["name"])
        if not _pod_cidrs(new):
            self.enqueue(object_key(new))

    async def reconcile(self, key: str) -> float | None:
        node = self.nodes.get(key)
        if node is None or _pod_cidrs(node):
            return None
        cidr = self.cidrs.allocate(key)
        if cidr is None:
            log.error("node %s: no free pod CIDR left in %s", key, self.cidrs.network)
            return 30.0
        try:
            updated = await self.client.patch(
                self.client.resource_path("", "v1", "nodes", None, key),
                {"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}})
        except Exception:
            self.cidrs.release_node(key)
            raise
        self.nodes.write_through(updated)
        log.info("node %s: podCIDR %s", key, cidr)
        return None


def _pod_cidrs(node: dict) -> list[str]:
    spec = node.get("spec") or {}
    return list(spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else []))
