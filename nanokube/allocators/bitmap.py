"""AllocationBitmap: which offsets of a range are taken (registry/core/service/allocator).

Dynamic allocation follows KEP-3070/KEP-3668: offsets below `offset` form a band reserved for
static (user-chosen) values; a dynamic allocation picks a random start in the upper band
[offset, size) and scans forward with wraparound, and only when that band is full does it
scan the lower band [0, offset) the same way.
"""
from __future__ import annotations

import random


def range_offset(size: int, minimum: int, maximum: int, step: int) -> int:
    """calculateRangeOffset: min(max(minimum, size/step), maximum); 0 for tiny ranges."""
    if size <= minimum:
        return 0
    return min(max(minimum, size // step), maximum)


class AllocationBitmap:
    def __init__(self, size: int, offset: int = 0, rng: random.Random | None = None):
        self.size = max(0, size)
        self.offset = min(max(0, offset), self.size)
        self.rng = rng or random.Random()
        self._bits = bytearray(self.size)
        self.count = 0

    def has(self, i: int) -> bool:
        return 0 <= i < self.size and self._bits[i] == 1

    def allocate(self, i: int) -> bool:
        """Take offset i; False when it is already taken."""
        if self._bits[i]:
            return False
        self._bits[i] = 1
        self.count += 1
        return True

    def release(self, i: int) -> None:
        if 0 <= i < self.size and self._bits[i]:
            self._bits[i] = 0
            self.count -= 1

    def free(self) -> int:
        return self.size - self.count

    def next_free(self, exclude: frozenset[int] | set[int] = frozenset()) -> int | None:
        """The offset a dynamic allocation would take (without taking it), or None when full."""
        if self.count >= self.size:
            return None
        for lo, hi in ((self.offset, self.size), (0, self.offset)):
            found = self._scan(lo, hi, exclude)
            if found is not None:
                return found
        return None

    def allocate_next(self) -> int | None:
        i = self.next_free()
        if i is not None:
            self.allocate(i)
        return i

    def _scan(self, lo: int, hi: int, exclude) -> int | None:
        # Random start, then a forward scan with wraparound inside [lo, hi).
        if hi <= lo:
            return None
        start = lo + self.rng.randrange(hi - lo)
        for a, b in ((start, hi), (lo, start)):
            i = self._bits.find(0, a, b)
            while i != -1 and i in exclude:
                i = self._bits.find(0, i + 1, b)
            if i != -1:
                return i
        return None
