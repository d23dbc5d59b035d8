"""ClusterIPAllocator: one Service CIDR's addresses (registry/core/service/ipallocator, bitmap).

Offset 0 is the first usable address (network + 1). IPv4 excludes the network and broadcast
addresses, IPv6 excludes the network address and caps the bitmap at 65536 entries. The lower
KEP-3070 band (min(max(16, size/16), 256) addresses) is left to static requests, which is where
the `kubernetes` Service (first IP) and the cluster DNS (tenth IP) live.
"""
from __future__ import annotations

import ipaddress
import random

from nanokube.allocators.bitmap import AllocationBitmap, range_offset


class AllocationError(Exception):
    """An allocator refused a value; str() is the Go error text."""


ERR_IP_ALLOCATED = "provided IP is already allocated"
ERR_FULL = "range is full"


def parse_ip(value: str):
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def family_of(ip: str) -> str:
    parsed = parse_ip(ip)
    if parsed is None:
        return "unknown"
    return "IPv6" if parsed.version == 6 else "IPv4"


class ClusterIPAllocator:
    def __init__(self, cidr: str, rng: random.Random | None = None):
        self.network = ipaddress.ip_network(cidr.strip(), strict=False)
        size = self.network.num_addresses
        self.family = "IPv6" if self.network.version == 6 else "IPv4"
        usable = min(size, 65536) if self.family == "IPv6" else size - 1  # no broadcast
        self.max = max(0, usable - 1)                                      # no network address
        self.base = int(self.network.network_address) + 1
        self.offset = range_offset(size, 16, 256, 16)
        self.bitmap = AllocationBitmap(self.max, self.offset, rng)

    @property
    def cidr(self) -> str:
        return str(self.network)

    def _offset_of(self, ip: str) -> int | None:
        parsed = parse_ip(ip)
        if parsed is None or parsed.version != self.network.version or parsed not in self.network:
            return None
        offset = int(parsed) - self.base
        return offset if 0 <= offset < self.max else None

    def ip_at(self, offset: int) -> str:
        return str(ipaddress.ip_address(self.base + offset))

    def first_ip(self) -> str:
        return self.ip_at(0)

    def contains(self, ip: str) -> bool:
        return self._offset_of(ip) is not None

    def has(self, ip: str) -> bool:
        offset = self._offset_of(ip)
        return offset is not None and self.bitmap.has(offset)

    def allocate(self, ip: str, dry_run: bool = False) -> None:
        offset = self._offset_of(ip)
        if offset is None:
            shown = parse_ip(ip)
            raise AllocationError(
                f"the provided IP ({shown if shown is not None else '<nil>'}) is not in the valid "
                f"range. The range of valid IPs is {self.cidr}")
        if dry_run:
            if self.bitmap.has(offset):
                raise AllocationError(ERR_IP_ALLOCATED)
            return
        if not self.bitmap.allocate(offset):
            raise AllocationError(ERR_IP_ALLOCATED)

    def allocate_next(self, dry_run: bool = False) -> str:
        offset = self.bitmap.next_free() if dry_run else self.bitmap.allocate_next()
        if offset is None:
            raise AllocationError(ERR_FULL)
        return self.ip_at(offset)

    def release(self, ip: str) -> None:
        offset = self._offset_of(ip)
        if offset is not None:
            self.bitmap.release(offset)

    def free(self) -> int:
        return self.bitmap.free()

    def used(self) -> int:
        return self.bitmap.count
