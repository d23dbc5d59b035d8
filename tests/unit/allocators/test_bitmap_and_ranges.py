import random

import pytest

from nanokube.allocators.bitmap import AllocationBitmap, range_offset
from nanokube.allocators.clusterip import AllocationError, ClusterIPAllocator, family_of
from nanokube.allocators.nodeport import NodePortAllocator, PortAllocationOperation, PortRange


@pytest.mark.parametrize("cidr, size, offset, first", [
    ("10.96.0.0/12", 2**20 - 2, 256, "10.96.0.1"),   # capped at 256
    ("10.0.0.0/16", 2**16 - 2, 256, "10.0.0.1"),
    ("10.0.0.0/20", 4094, 256, "10.0.0.1"),          # 4096/16
    ("10.0.0.0/24", 254, 16, "10.0.0.1"),            # min 16
    ("10.0.0.0/28", 14, 0, "10.0.0.1"),              # <= 16 addresses: no band
    ("10.96.0.5/12", 2**20 - 2, 256, "10.96.0.1"),   # host bits are masked, as ParseCIDR does
    ("fd00::/108", 65535, 256, "fd00::1"),  # IPv6 capped at 65536
])
def test_cluster_ip_range_shape(cidr, size, offset, first):
    a = ClusterIPAllocator(cidr)
    assert (a.max, a.offset, a.first_ip()) == (size, offset, first)


def test_ipv4_excludes_network_and_broadcast():
    a = ClusterIPAllocator("10.0.0.0/24")
    for ip in ("10.0.0.0", "10.0.0.255", "10.0.1.1", "fd00::1", "bogus"):
        assert not a.contains(ip)
    assert a.contains("10.0.0.1") and a.contains("10.0.0.254")


def test_not_in_range_message_is_the_1_32_wording():
    a = ClusterIPAllocator("10.30.0.0/24")
    with pytest.raises(AllocationError) as err:
        a.allocate("0.0.0.0")
    assert str(err.value) == ("the provided IP (0.0.0.0) is not in the valid range. "
                              "The range of valid IPs is 10.30.0.0/24")


def test_static_allocation_collision_and_release():
    a = ClusterIPAllocator("10.96.0.0/12")
    a.allocate("10.96.0.1")
    with pytest.raises(AllocationError, match="^provided IP is already allocated$"):
        a.allocate("10.96.0.1")
    a.release("10.96.0.1")
    a.allocate("10.96.0.1")
    assert a.used() == 1


def test_dynamic_allocations_avoid_the_static_band_until_the_upper_band_is_full():
    a = ClusterIPAllocator("10.0.0.0/24", rng=random.Random(1))  # band = offsets 0..15
    dynamic = [a.allocate_next() for _ in range(254 - 16)]
    band = {a.ip_at(i) for i in range(16)}
    assert not band & set(dynamic)
    assert "10.0.0.1" not in dynamic and "10.0.0.10" not in dynamic
    rest = {a.allocate_next() for _ in range(16)}  # only then the lower band
    assert rest == band
    with pytest.raises(AllocationError, match="^range is full$"):
        a.allocate_next()


def test_dry_run_takes_nothing():
    a = ClusterIPAllocator("10.0.0.0/24")
    ip = a.allocate_next(dry_run=True)
    a.allocate("10.0.0.7", dry_run=True)
    assert a.used() == 0 and a.contains(ip)
    a.allocate("10.0.0.7")
    with pytest.raises(AllocationError):
        a.allocate("10.0.0.7", dry_run=True)


def test_family_of():
    assert [family_of(x) for x in ("10.0.0.1", "fd00::1", "x")] == ["IPv4", "IPv6", "unknown"]


@pytest.mark.parametrize("size, expected", [(2768, 86), (16, 0), (17, 16), (100, 16),
                                            (10000, 128)])
def test_node_port_band(size, expected):
    assert range_offset(size, 16, 128, 32) == expected


@pytest.mark.parametrize("spec, text", [("30000-32767", "30000-32767"),
                                        ("30000+2767", "30000-32767"), ("8080", "8080-8080")])
def test_port_range_parse(spec, text):
    assert str(PortRange(spec)) == text


def test_node_port_messages():
    p = NodePortAllocator("30000-32767")
    with pytest.raises(AllocationError) as err:
        p.allocate(99)
    assert str(err.value) == ("provided port is not in the valid range. "
                              "The range of valid ports is 30000-32767")
    p.allocate(30080)
    with pytest.raises(AllocationError) as err:
        p.allocate(30080)
    assert str(err.value) == "provided port is already allocated"


def test_node_port_dynamic_band_and_exhaustion():
    p = NodePortAllocator("30000-30099", rng=random.Random(3))   # 100 ports, band 16
    first = [p.allocate_next() for _ in range(84)]
    assert min(first) >= 30016
    rest = [p.allocate_next() for _ in range(16)]
    assert sorted(rest) == list(range(30000, 30016))
    with pytest.raises(AllocationError, match="^range is full$"):
        p.allocate_next()


def test_operation_rollback_commit_and_deferred_release():
    p = NodePortAllocator("30000-32767")
    p.allocate(30001)
    op = PortAllocationOperation(p)
    op.allocate(30002)
    new = op.allocate_next()
    op.release_deferred(30001)
    assert p.has(30001)            # deferred until commit
    op.finish()                    # not committed: give back what it took
    assert not p.has(30002) and not p.has(new) and p.has(30001)

    op = PortAllocationOperation(p)
    op.allocate(30002)
    op.release_deferred(30001)
    op.commit()
    op.finish()
    assert p.has(30002) and not p.has(30001)


def test_dry_run_operation_sees_its_own_allocations():
    p = NodePortAllocator("30000-30016")
    op = PortAllocationOperation(p, dry_run=True)
    op.allocate(30005)
    with pytest.raises(AllocationError, match="already allocated"):
        op.allocate(30005)
    ports = {op.allocate_next() for _ in range(16)}
    assert 30005 not in ports and len(ports) == 16
    with pytest.raises(AllocationError, match="range is full"):
        op.allocate_next()
    assert p.used() == 0


def test_bitmap_release_is_idempotent():
    b = AllocationBitmap(4)
    assert b.allocate(2) and not b.allocate(2)
    b.release(2)
    b.release(2)
    b.release(99)
    assert b.count == 0 and b.free() == 4
