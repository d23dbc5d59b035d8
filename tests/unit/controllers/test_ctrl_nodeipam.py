"""Node IPAM's CIDR set."""
from __future__ import annotations

import pytest

from nanokube.controllers.nodeipam import CIDRSet


def test_allocates_lowest_free_skipping_the_first():
    s = CIDRSet("10.244.0.0/16", 24)
    assert s.allocate("node-1") == "10.244.1.0/24"
    assert s.allocate("node-2") == "10.244.2.0/24"
    assert s.allocate("node-1") == "10.244.1.0/24"        # idempotent
    s.release_node("node-1")
    assert s.allocate("node-3") == "10.244.1.0/24"


def test_existing_nodes_are_occupied_first():
    s = CIDRSet("10.244.0.0/16", 24)
    s.occupy("10.244.1.0/24", "old-1")
    s.occupy("10.244.3.0/24", "old-3")
    s.occupy("192.168.0.0/24", "foreign")                 # outside the cluster CIDR: ignored
    assert s.allocate("new") == "10.244.2.0/24"
    assert s.allocate("newer") == "10.244.4.0/24"


def test_full_range_and_other_mask_sizes():
    s = CIDRSet("10.0.0.0/23", 24)
    assert s.allocate("a") == "10.0.1.0/24"
    assert s.allocate("b") == "10.0.0.0/24"              # the kept-free one, as a last resort
    assert s.allocate("c") is None
    assert CIDRSet("10.244.0.0/16", 26).subnet(5) == "10.244.1.64/26"
    with pytest.raises(ValueError):
        CIDRSet("10.244.0.0/16", 8)
