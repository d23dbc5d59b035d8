"""NftProxier syncs against the fake nft: full sync, partial diffs, failures, health, metrics."""
from __future__ import annotations

import random
import re
import time

import pytest
from proxy_objects import endpoint, service, slice_

from nanokube.node.proxy import NftProxier
from nanokube.node.proxy.conntrack import FakeConntrack
from nanokube.node.proxy.nft import FakeNft, Transaction

PORTS = [{"name": "http", "port": 80}]
SLICE_PORTS = [{"name": "http", "port": 8080}]


def make_proxier(nft=None, **kw) -> NftProxier:
    return NftProxier("node-1", ["10.123.0.11"], "10.244.1.0/24", "10.244.0.0/16", "10.96.0.0/12",
                      nft=nft or FakeNft(), conntrack=FakeConntrack(), health_check_servers=False,
                      coalesce=0, **kw)


def svc_ip(i: int) -> str:
    return f"10.96.{i // 250}.{i % 250 + 1}"


def add_services(p: NftProxier, n: int, eps: int, node_port_base: int = 0) -> None:
    for i in range(n):
        extra = {"type": "NodePort"} if node_port_base else {}
        ports = [{"name": "http", "port": 80, **({"nodePort": node_port_base + i} if node_port_base else {})}]
        p.on_service("ADDED", service(f"s{i}", svc_ip(i), ports, **extra))
        p.on_endpointslice("ADDED", slice_(f"s{i}", [endpoint(f"10.{100 + i // 250}.{i % 250}.{j}", node="node-2")
                                                     for j in range(eps)], SLICE_PORTS))


async def started(p: NftProxier) -> NftProxier:
    await p.start()
    return p


def kernel_state(nft: FakeNft) -> tuple:
    """The table without empty leftover chains/maps waiting for their delayed deletion, nor
    shared endpoint-count chains no Service points at any more (they are kept for reuse)."""
    targets = " ".join(v for m in nft.maps.values() for v in m.values() if v)
    chains = {k: v for k, v in nft.chains.items() if (v or k in nft.base_chains)
              and not (re.fullmatch(r"(cluster|external|nodeport)-n\d+", k) and f"goto {k}" not in targets)}
    referenced = " ".join(r for rules in chains.values() for r in rules)
    maps = {k: v for k, v in nft.maps.items() if f"@{k}" in referenced or not k.startswith("affinity-")}
    return chains, maps


async def test_full_sync_replaces_table_in_one_transaction():
    nft = FakeNft()
    p = make_proxier(nft)
    add_services(p, 3, 2)
    p = await started(p)
    try:
        assert len(nft.transactions) == 1
        ops = nft.last.ops
        assert ops[0][:2] == ("add", "table") and ops[1][:2] == ("delete", "table")
        assert ops[2][:2] == ("add", "table")
        assert nft.maps["service-ips"] == {f"{svc_ip(i)} . tcp . 80": "goto cluster-n2" for i in range(3)}
        assert nft.chains["services"][0] == "ip daddr . meta l4proto . th dport vmap @service-ips"
        assert p.healthy()
        # the text is valid-looking nft: one element command per map
        text = nft.last.text()
        assert text.count("add element ip nanokube backends") == 1
        assert p.ruleset().splitlines().count("add chain ip nanokube cluster-n2") == 1
    finally:
        await p.stop()


async def test_one_endpoint_change_is_small_and_touches_only_that_service():
    nft = FakeNft()
    p = make_proxier(nft)
    add_services(p, 1000, 10)
    p = await started(p)
    try:
        p.on_endpointslice("MODIFIED", slice_("s7", [endpoint(f"10.100.7.{j}", node="node-2") for j in range(9)]
                                              + [endpoint("10.100.7.99", node="node-2")], SLICE_PORTS))
        await p.sync()
        tx = nft.last
        assert [op[:2] for op in tx.ops] == [("delete", "element"), ("add", "element")]
        assert tx.ops[0][2:4] == ("backends", f"{svc_ip(7)} . tcp . 80 . 9")
        assert tx.ops[1][2:5] == ("backends", f"{svc_ip(7)} . tcp . 80 . 9", "10.100.7.99 . 8080")
        # a count change re-points the service at another shared chain, still a handful of ops
        p.on_endpointslice("MODIFIED", slice_("s7", [endpoint("10.100.7.1", node="node-2")], SLICE_PORTS))
        await p.sync()
        tx = nft.last
        assert all(op[2] == "cluster-n1" or svc_ip(7) in op[3] for op in tx.ops)
        assert len(tx) <= 16  # 3 to create cluster-n1, 11 deletions, 2 additions
        assert nft.maps["service-ips"][f"{svc_ip(7)} . tcp . 80"] == "goto cluster-n1"
        assert nft.chains["cluster-n1"]  # created on demand
    finally:
        await p.stop()


async def test_object_count_does_not_grow_with_endpoints():
    counts = []
    for eps in (2, 20):
        nft = FakeNft()
        p = make_proxier(nft)
        add_services(p, 50, eps, node_port_base=30000)
        p = await started(p)
        await p.stop()
        c = nft.object_counts()
        counts.append((c["chains"], c["rules"], c["maps"]))
        assert c["elements"] >= 50 * eps * 2
        assert p.object_counts()["chains"] == c["chains"]
    assert counts[0] == counts[1]


async def test_partial_syncs_converge_to_the_full_sync_state():
    """Random events applied incrementally leave exactly what a fresh full sync renders."""
    rng = random.Random(4)
    nft = FakeNft()
    p = await started(make_proxier(nft))
    try:
        for step in range(300):
            i = rng.randrange(12)
            kind = rng.random()
            if kind < 0.35:
                spec = {}
                if rng.random() < 0.3:
                    spec["sessionAffinity"] = "ClientIP"
                    spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": rng.choice([30, 60])}}
                if rng.random() < 0.3:
                    spec["type"] = "NodePort"
                    spec["externalTrafficPolicy"] = rng.choice(["Local", "Cluster"])
                if rng.random() < 0.2:
                    spec["internalTrafficPolicy"] = "Local"
                if rng.random() < 0.3:
                    spec["externalIPs"] = ["10.123.0.50"]  # shared by several Services on purpose
                ports = [{"name": "http", "port": 80, **({"nodePort": 30000 + i} if "type" in spec else {})}]
                p.on_service("MODIFIED", service(f"s{i}", svc_ip(i), ports, **spec))
            elif kind < 0.45:
                p.on_service("DELETED", service(f"s{i}", svc_ip(i), PORTS))
            elif kind < 0.9:
                eps = [endpoint(f"10.244.{rng.choice([1, 2])}.{rng.randrange(20)}",
                                node=rng.choice(["node-1", "node-2"]), ready=rng.random() < 0.8,
                                terminating=rng.random() < 0.2) for _ in range(rng.randrange(5))]
                p.on_endpointslice("MODIFIED", slice_(f"s{i}", eps, SLICE_PORTS))
            else:
                p.on_endpointslice("DELETED", slice_(f"s{i}", [], SLICE_PORTS))
            if rng.random() < 0.5:
                await p.sync()
        await p.sync()
        fresh = FakeNft()
        q = make_proxier(fresh)
        q.model = p.model
        await q.start()
        await q.stop()
        assert kernel_state(nft) == kernel_state(fresh)
        assert len(nft.transactions) > 100
    finally:
        await p.stop()


async def test_removed_chains_are_deleted_later(monkeypatch):
    from nanokube.node.proxy import proxier as proxier_mod
    monkeypatch.setattr(proxier_mod, "STALE_DELAY", 0.05)
    nft = FakeNft()
    p = make_proxier(nft)
    p.on_service("ADDED", service("a", "10.96.0.5", PORTS, sessionAffinity="ClientIP"))
    p.on_endpointslice("ADDED", slice_("a", [endpoint("10.244.1.2")], SLICE_PORTS))
    p = await started(p)
    try:
        affinity_chains = [c for c in nft.chains if "default/a/" in c]
        assert len(affinity_chains) == 3
        p.on_service("DELETED", service("a", "10.96.0.5", PORTS))
        await p.sync()
        ops = nft.last.ops
        assert {("flush", "chain", c) for c in affinity_chains} <= {op[:3] for op in ops}
        assert all(nft.chains[c] == [] for c in affinity_chains)
        time.sleep(0.06)
        p.on_service("ADDED", service("b", "10.96.0.6", PORTS))
        await p.sync()
        assert not any("default/a/" in c for c in nft.chains)
        assert not any("default/a/" in m for m in nft.maps)
    finally:
        await p.stop()


async def test_failed_transaction_forces_full_sync_and_health():
    nft = FakeNft()
    p = await started(make_proxier(nft, healthz_timeout=0.05))
    try:
        nft.fail_next = "Error: boom"
        p.on_service("ADDED", service("a", "10.96.0.5", PORTS))
        await p.sync()
        assert "10.96.0.5" not in nft.maps["cluster-ips"]
        time.sleep(0.06)
        assert not p.healthy()  # a change waits longer than the timeout
        assert b"kubeproxy_sync_proxy_rules_nftables_sync_failures_total 1.0" in p.metrics_text()
        p._retry_at = None
        await p.sync()
        assert nft.last.ops[1][:2] == ("delete", "table")  # it was a full sync
        assert "10.96.0.5" in nft.maps["cluster-ips"]
        assert p.healthy()
    finally:
        await p.stop()


async def test_not_healthy_before_start_and_metrics():
    p = make_proxier()
    assert not p.healthy()
    add_services(p, 2, 3)
    await p.start()
    try:
        text = p.metrics_text().decode()
        assert "kubeproxy_sync_proxy_rules_duration_seconds_bucket" in text
        assert "kubeproxy_sync_full_proxy_rules_duration_seconds_count 1.0" in text
        assert "kubeproxy_sync_proxy_rules_last_timestamp_seconds" in text
        assert 'nanokube_proxy_nftables_objects{kind="elements"}' in text
    finally:
        await p.stop()


async def test_background_loop_coalesces_a_burst():
    nft = FakeNft()
    p = make_proxier(nft)
    p.coalesce = 0.01
    await p.start()
    try:
        for i in range(20):
            p.on_service("ADDED", service(f"s{i}", svc_ip(i), PORTS))
        for _ in range(100):
            if len(nft.transactions) > 1 and not p._dirty:
                break
            import asyncio
            await asyncio.sleep(0.01)
        assert len(nft.transactions) == 2
        assert len(nft.maps["no-endpoint-services"]) == 20
    finally:
        await p.stop()


async def test_udp_endpoint_removal_clears_conntrack():
    ct = FakeConntrack()
    p = NftProxier("node-1", [], "10.244.1.0/24", "10.244.0.0/16", "10.96.0.0/12", nft=FakeNft(),
                   conntrack=ct, health_check_servers=False)
    udp = [{"name": "dns", "port": 53, "protocol": "UDP"}]
    p.on_service("ADDED", service("dns", "10.96.0.10", udp))
    await p.start()
    try:
        p.on_endpointslice("ADDED", slice_("dns", [endpoint("10.244.1.5"), endpoint("10.244.1.6")],
                                           [{"name": "dns", "port": 53, "protocol": "UDP"}]))
        await p.sync()
        assert ct.calls == [["-p", "udp", "--orig-dst", "10.96.0.10", "--orig-port-dst", "53"]]
        ct.calls.clear()
        p.on_endpointslice("MODIFIED", slice_("dns", [endpoint("10.244.1.6")],
                                              [{"name": "dns", "port": 53, "protocol": "UDP"}]))
        await p.sync()
        assert ct.calls == [["-p", "udp", "--orig-dst", "10.96.0.10", "--orig-port-dst", "53",
                             "--reply-src", "10.244.1.5"]]
    finally:
        await p.stop()


def test_transaction_text_batches_elements():
    tx = Transaction(table="t")
    tx.add_map("m", "type ipv4_addr : verdict")
    tx.add_element("m", "10.0.0.1", "drop")
    tx.add_element("m", "10.0.0.2", "goto c")
    tx.delete_element("m", "10.0.0.3")
    assert tx.text() == ("add map ip t m { type ipv4_addr : verdict ; }\n"
                         "add element ip t m { 10.0.0.1 : drop, 10.0.0.2 : goto c }\n"
                         "delete element ip t m { 10.0.0.3 }\n")


async def test_fake_nft_refuses_what_the_kernel_refuses():
    nft = FakeNft()
    tx = Transaction()
    tx.add_table()
    tx.add_map("m", "type ipv4_addr : verdict")
    tx.add_element("m", "10.0.0.1", "goto nowhere")
    with pytest.raises(Exception):
        await nft.run(tx)
    assert not nft.exists  # nothing of a failed transaction stays
