"""The pool provider's allocator: MetalLB's allocation rules."""
from __future__ import annotations

import asyncio

import pytest

from nanokube.cloudprovider import LoadBalancerError
from nanokube.cloudprovider.pool import PoolAllocator, PoolProvider, ip_str


def pool(name, *addresses, **spec):
    return {"metadata": {"name": name, "namespace": "metallb-system"},
            "spec": {"addresses": list(addresses), **spec}}


def svc(name, ns="default", ports=(80,), annotations=None, labels=None, lb_ip=None,
        policy="Cluster", selector=None, protocol="TCP"):
    spec = {"type": "LoadBalancer", "externalTrafficPolicy": policy,
            "selector": selector or {"app": name},
            "ports": [{"port": p, "protocol": protocol} for p in ports]}
    if lb_ip:
        spec["loadBalancerIP"] = lb_ip
    return {"metadata": {"name": name, "namespace": ns, "annotations": annotations or {},
                         "labels": labels or {}}, "spec": spec}


def allocator(*pools):
    a = PoolAllocator()
    a.set_pools(list(pools))
    return a


def ip(a, service, ns_labels=None):
    return ip_str(a.assign(service, ns_labels).ip)


def test_lowest_free_address_in_order_and_release():
    a = allocator(pool("p", "10.0.0.10-10.0.0.11", "10.0.0.2/31"))
    assert [ip(a, svc(n)) for n in ("a", "b", "c", "d")] == [
        "10.0.0.2", "10.0.0.3", "10.0.0.10", "10.0.0.11"]
    with pytest.raises(LoadBalancerError, match="no available IPs: IPAddressPool p exhausted"):
        a.assign(svc("e"))
    a.release("default/b")
    assert ip(a, svc("e")) == "10.0.0.3"
    # an allocation is stable: asking again gives the same address
    assert ip(a, svc("a")) == "10.0.0.2"


def test_priority_then_name_unset_last_and_auto_assign():
    a = allocator(pool("zz", "10.0.3.1/32", serviceAllocation={"priority": 1}),
                  pool("aa", "10.0.1.1/32"),
                  pool("bb", "10.0.2.1/32", serviceAllocation={"priority": 5}),
                  pool("manual", "10.0.4.0/24", autoAssign=False))
    assert [ip(a, svc(n)) for n in "abc"] == ["10.0.3.1", "10.0.2.1", "10.0.1.1"]
    with pytest.raises(LoadBalancerError, match="exhausted"):
        a.assign(svc("d"))
    # an autoAssign: false pool serves only when asked for, by name or by address
    assert ip(a, svc("d", annotations={"metallb.io/address-pool": "manual"})) == "10.0.4.0"
    assert ip(a, svc("e", lb_ip="10.0.4.7")) == "10.0.4.7"


def test_avoid_buggy_ips():
    a = allocator(pool("p", "10.0.0.255-10.0.1.1", avoidBuggyIPs=True))
    assert ip(a, svc("a")) == "10.0.1.1"
    with pytest.raises(LoadBalancerError, match="exhausted"):
        a.assign(svc("b"))
    with pytest.raises(LoadBalancerError, match="outside every IPAddressPool"):
        a.assign(svc("c", lb_ip="10.0.1.0"))


def test_requested_addresses():
    a = allocator(pool("p", "10.0.0.0/24"), pool("q", "10.0.1.0/24"))
    assert ip(a, svc("a", lb_ip="10.0.0.50")) == "10.0.0.50"
    assert ip(a, svc("b", annotations={"metallb.io/loadBalancerIPs": "10.0.1.9"})) == "10.0.1.9"
    # the old annotation prefix is still accepted
    assert ip(a, svc("c", annotations={"metallb.universe.tf/loadBalancerIPs": "10.0.1.8"})) \
        == "10.0.1.8"
    with pytest.raises(LoadBalancerError) as e:
        a.assign(svc("d", lb_ip="192.168.1.1"))
    assert str(e.value) == "requested IP 192.168.1.1 is outside every IPAddressPool"
    with pytest.raises(LoadBalancerError) as e:
        a.assign(svc("d", lb_ip="10.0.0.50"))
    assert str(e.value) == "address 10.0.0.50 is already in use by default/a"
    with pytest.raises(LoadBalancerError, match="is not in IPAddressPool 'q'"):
        a.assign(svc("d", lb_ip="10.0.0.51", annotations={"metallb.io/address-pool": "q"}))
    with pytest.raises(LoadBalancerError, match="unknown IPAddressPool 'nope'"):
        a.assign(svc("d", annotations={"metallb.io/address-pool": "nope"}))
    with pytest.raises(LoadBalancerError, match="IPv6"):
        a.assign(svc("d", lb_ip="fd00::1"))
    # changing the request moves the Service and frees its old address
    assert ip(a, svc("a", lb_ip="10.0.0.60")) == "10.0.0.60"
    assert ip(a, svc("d", lb_ip="10.0.0.50")) == "10.0.0.50"


def test_a_failed_request_releases_the_old_address():
    a = allocator(pool("p", "10.0.0.0/30"))
    assert ip(a, svc("a")) == "10.0.0.0"
    with pytest.raises(LoadBalancerError):
        a.assign(svc("a", lb_ip="10.9.9.9"))
    assert "default/a" not in a.allocations
    assert ip(a, svc("b")) == "10.0.0.0"


def test_sharing():
    a = allocator(pool("p", "10.0.0.0/30"))
    key = {"metallb.io/allow-shared-ip": "k"}
    assert ip(a, svc("a", ports=(80,), annotations=key)) == "10.0.0.0"
    # same key, other ports: the lowest address, shared
    assert ip(a, svc("b", ports=(443,), annotations=key)) == "10.0.0.0"
    # same port, other protocol: shared too
    assert ip(a, svc("u", ports=(80,), annotations=key, protocol="UDP")) == "10.0.0.0"
    # same key but a clashing port: another address; asking for the shared one fails
    assert ip(a, svc("c", ports=(80,), annotations=key)) == "10.0.0.1"
    with pytest.raises(LoadBalancerError) as e:
        a.assign(svc("d", ports=(443,), annotations=key, lb_ip="10.0.0.0"))
    assert "already in use by default/b with the same ports (443/TCP)" in str(e.value)
    # another key or no key: never shared
    assert ip(a, svc("e", ports=(8080,), annotations={"metallb.io/allow-shared-ip": "x"})) \
        == "10.0.0.2"
    with pytest.raises(LoadBalancerError, match="already in use by default/a"):
        a.assign(svc("f", ports=(9000,), lb_ip="10.0.0.0"))
    # Local policy needs the same selector
    with pytest.raises(LoadBalancerError, match="externalTrafficPolicy Local"):
        a.assign(svc("g", ports=(9000,), annotations=key, lb_ip="10.0.0.0", policy="Local"))
    local = {"metallb.io/allow-shared-ip": "local"}
    assert ip(a, svc("l1", ports=(1,), annotations=local, policy="Local",
                     selector={"app": "l"})) == "10.0.0.3"
    assert ip(a, svc("l2", ports=(2,), annotations=local, policy="Local",
                     selector={"app": "l"})) == "10.0.0.3"
    # the address is free only when every sharer has gone
    for k in ("a", "b", "u"):
        assert a.users[0x0A000000]
        a.release(f"default/{k}")
    assert 0x0A000000 not in a.users


def test_service_allocation_namespaces_and_selectors():
    a = allocator(pool("team", "10.0.1.0/30", serviceAllocation={
                      "priority": 1, "namespaces": ["team-a"],
                      "namespaceSelectors": [{"matchLabels": {"team": "b"}}]}),
                  pool("web", "10.0.2.0/30", serviceAllocation={
                      "priority": 2, "serviceSelectors": [{"matchLabels": {"tier": "web"}}]}),
                  pool("rest", "10.0.3.0/30"))
    assert ip(a, svc("x", ns="team-a")) == "10.0.1.0"
    assert ip(a, svc("x", ns="other", labels={"tier": "web"})) == "10.0.2.0"
    assert ip(a, svc("y", ns="labelled"), {"team": "b"}) == "10.0.1.1"
    assert ip(a, svc("z", ns="other")) == "10.0.3.0"
    with pytest.raises(LoadBalancerError, match="does not admit Service other/w"):
        a.assign(svc("w", ns="other", lb_ip="10.0.1.3"))


def test_pool_changes_invalidate_and_restore():
    a = allocator(pool("p", "10.0.0.0/30"))
    assert ip(a, svc("a")) == "10.0.0.0"
    a.set_pools([pool("p", "10.0.0.2/31")])
    assert ip(a, svc("a")) == "10.0.0.2"         # the old address left the pool: moved
    a.set_pools([])
    with pytest.raises(LoadBalancerError, match="no IPAddressPool is configured"):
        a.assign(svc("a"))
    # restore records what a Service's status holds, even before anything is allocated
    b = allocator(pool("p", "10.0.0.0/30"))
    assert b.restore(svc("a"), "10.0.0.1")
    assert ip(b, svc("n")) == "10.0.0.0"
    assert ip(b, svc("m")) == "10.0.0.2"
    assert ip(b, svc("a")) == "10.0.0.1"


def test_provider_interface():
    pools = [pool("p", "10.0.0.0/30")]
    provider = PoolProvider(lambda: pools)

    async def go():
        s = svc("a")
        assert await provider.get_load_balancer("c", s) == ({}, False)
        status = await provider.ensure_load_balancer("c", s, [])
        assert status == {"ingress": [{"ip": "10.0.0.0", "ipMode": "VIP"}]}
        assert await provider.get_load_balancer("c", s) == (status, True)
        assert provider.allocation(s).pool == "p"
        await provider.update_load_balancer("c", s, [])
        await provider.ensure_load_balancer_deleted("c", s)
        assert await provider.get_load_balancer("c", s) == ({}, False)
        assert provider.get_load_balancer_name("c", {"metadata": {"uid": "ab-cd"}}) == "aabcd"

    asyncio.run(go())
