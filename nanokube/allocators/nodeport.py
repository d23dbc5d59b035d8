"""NodePortAllocator and PortAllocationOperation (registry/core/service/portallocator).

The lower KEP-3668 band (min(max(16, size/32), 128) ports; 30000-30085 for the default range)
is left to static requests. An operation groups the allocations of one write: new ports are
taken at once, releases are deferred until commit(), finish() without commit() gives back what
the operation took.
"""
from __future__ import annotations

import random

from nanokube.allocators.bitmap import AllocationBitmap, range_offset
from nanokube.allocators.clusterip import ERR_FULL, AllocationError

ERR_PORT_ALLOCATED = "provided port is already allocated"


class PortRange:
    """net.PortRange: "30000-32767", "30000+2767" or a single port."""

    def __init__(self, spec: str):
        spec = spec.strip()
        if "-" in spec:
            low, high = (int(p) for p in spec.split("-", 1))
            self.base, self.size = low, high - low + 1
        elif "+" in spec:
            low, extra = (int(p) for p in spec.split("+", 1))
            self.base, self.size = low, extra + 1
        else:
            self.base, self.size = int(spec), 1
        if self.size < 1 or self.base < 0 or self.base + self.size - 1 > 65535:
            raise ValueError(f"invalid port range {spec!r}")

    def __str__(self) -> str:
        return f"{self.base}-{self.base + self.size - 1}"

    def contains(self, port: int) -> bool:
        return self.base <= port < self.base + self.size


class NodePortAllocator:
    def __init__(self, port_range: str, rng: random.Random | None = None):
        self.range = PortRange(port_range)
        self.offset = range_offset(self.range.size, 16, 128, 32)
        self.bitmap = AllocationBitmap(self.range.size, self.offset, rng)

    def has(self, port: int) -> bool:
        return self.range.contains(port) and self.bitmap.has(port - self.range.base)

    def _check_range(self, port: int) -> None:
        if not self.range.contains(port):
            raise AllocationError("provided port is not in the valid range. The range of valid "
                                  f"ports is {self.range}")

    def allocate(self, port: int, dry_run: bool = False) -> None:
        self._check_range(port)
        if dry_run:
            if self.has(port):
                raise AllocationError(ERR_PORT_ALLOCATED)
            return
        if not self.bitmap.allocate(port - self.range.base):
            raise AllocationError(ERR_PORT_ALLOCATED)

    def allocate_next(self, dry_run: bool = False, exclude: set[int] = frozenset()) -> int:
        if dry_run:
            offset = self.bitmap.next_free({p - self.range.base for p in exclude})
        else:
            offset = self.bitmap.allocate_next()
        if offset is None:
            raise AllocationError(ERR_FULL)
        return self.range.base + offset

    def release(self, port: int) -> None:
        if self.range.contains(port):
            self.bitmap.release(port - self.range.base)

    def free(self) -> int:
        return self.bitmap.free()

    def used(self) -> int:
        return self.bitmap.count


class PortAllocationOperation:
    """One write's node port changes; dry-run operations check without taking anything."""

    def __init__(self, allocator: NodePortAllocator, dry_run: bool = False):
        self.allocator = allocator
        self.dry_run = dry_run
        self.allocated: list[int] = []
        self.release_deferred_ports: list[int] = []
        self.committed = False

    def allocate(self, port: int) -> None:
        if self.dry_run and port in self.allocated:
            self.allocator._check_range(port)
            raise AllocationError(ERR_PORT_ALLOCATED)
        self.allocator.allocate(port, self.dry_run)
        self.allocated.append(port)

    def allocate_next(self) -> int:
        port = self.allocator.allocate_next(self.dry_run, set(self.allocated))
        self.allocated.append(port)
        return port

    def release_deferred(self, port: int) -> None:
        self.release_deferred_ports.append(port)

    def commit(self) -> None:
        if not self.dry_run:
            for port in self.release_deferred_ports:
                self.allocator.release(port)
        self.committed = True

    def finish(self) -> None:
        """Give back what this operation took unless it was committed."""
        if not self.committed and not self.dry_run:
            for port in self.allocated:
                self.allocator.release(port)
        self.allocated = []
        self.release_deferred_ports = []
