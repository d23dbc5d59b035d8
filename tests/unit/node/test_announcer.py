"""The L2 announcer without a network: election, liveness, Service selection, ARP frames."""
from __future__ import annotations

import asyncio
import hashlib
import time
from datetime import datetime, timezone

from nanokube.node import announcer as an
from nanokube.node.announcer import (ARP_REPLY, ARP_REQUEST, BROADCAST, Arp, Announcer,
                                     arp_reply, build_arp, elect, gratuitous, live_nodes,
                                     owners, parse_arp)

MAC1 = bytes.fromhex("020000000001")
MAC2 = bytes.fromhex("020000000002")


def node(name, ready=True, deleting=False):
    meta = {"name": name}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": {"conditions": [
        {"type": "Ready", "status": "True" if ready else "Unknown"}]}}


def lease(name, age, now, duration=10):
    t = datetime.fromtimestamp(now - age, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {"metadata": {"name": name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": duration, "renewTime": t}}


def lb_service(name, ips, policy="Cluster", **spec):
    return {"metadata": {"name": name, "namespace": "default"},
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": policy, **spec},
            "status": {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"} for ip in ips]}}}


def eps_slice(service, *endpoints):
    """endpoints: (nodeName, ready)"""
    return {"metadata": {"name": service + "-x", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": service}},
            "endpoints": [{"addresses": ["10.244.1.5"], "nodeName": n,
                           "conditions": {"ready": r}} for n, r in endpoints]}


# ---- election --------------------------------------------------------------------------------

def test_elect_is_metallbs_hash_order():
    ip = "10.123.0.200"
    nodes = ["node-1", "node-2", "node-3"]
    expected = min(nodes, key=lambda n: hashlib.sha256(f"{n}#{ip}".encode()).hexdigest())
    assert elect(nodes, ip) == expected
    assert elect(reversed(nodes), ip) == expected          # order of the input is irrelevant
    assert elect([], ip) is None


def test_elect_spreads_addresses_and_moves_only_when_owner_leaves():
    nodes = {"node-1", "node-2"}
    ips = [f"10.123.0.{i}" for i in range(200, 251)]
    winners = {ip: elect(nodes, ip) for ip in ips}
    assert set(winners.values()) == nodes                   # both nodes get some
    for ip, owner in winners.items():
        assert elect(nodes | {"node-9"}, ip) in (owner, "node-9")   # no reshuffle among others
        other = (nodes - {owner}).pop()
        assert elect(nodes - {owner}, ip) == other


def test_live_nodes_ready_deleting_and_leases():
    now = time.time()
    nodes = [node("a"), node("b"), node("c", ready=False), node("d", deleting=True)]
    assert live_nodes(nodes, {}, now) == {"a", "b"}
    leases = {"a": lease("a", 0.5, now), "b": lease("b", 5.0, now)}
    assert live_nodes(nodes, leases, now) == {"a"}             # b's lease is 5 s old
    # 3 s grace, at least 1.5 renew intervals: a 40 s lease renews every 10 s
    assert live_nodes(nodes, {"b": lease("b", 12, now, duration=40)}, now) == {"a", "b"}
    assert live_nodes(nodes, {"b": lease("b", 16, now, duration=40)}, now) == {"a"}
    # every lease stale: the API server is the problem, not the nodes
    leases = {"a": lease("a", 30, now), "b": lease("b", 30, now)}
    assert live_nodes(nodes, leases, now) == {"a", "b"}


def test_owners_policies_and_endpoints():
    alive = {"node-1", "node-2"}
    slices = {"web": [eps_slice("web", ("node-1", True), ("node-2", True))],
              "local": [eps_slice("local", ("node-1", False), ("node-2", True))],
              "empty": [eps_slice("empty", ("node-1", False))],
              "nolocal": [eps_slice("nolocal", ("node-3", True))]}
    of = lambda ns, name: slices.get(name, [])
    # pick, for each Service, an address that node-1 would win under Cluster policy
    candidates = (f"10.123.0.{i}" for i in range(200, 251))
    node1_ips = [ip for ip in candidates if elect(alive, ip) == "node-1"]
    services = [lb_service("web", [node1_ips[0]]),
                lb_service("local", [node1_ips[1]], policy="Local"),
                lb_service("empty", [node1_ips[2]]),
                lb_service("nolocal", [node1_ips[3]], policy="Local"),
                lb_service("other-class", [node1_ips[4]], loadBalancerClass="x.io/lb"),
                lb_service("v6", ["fd00::1"]),
                {"metadata": {"name": "cip", "namespace": "default"},
                 "spec": {"type": "ClusterIP"},
                 "status": {"loadBalancer": {"ingress": [{"ip": node1_ips[5]}]}}}]
    got = owners(services, of, alive)
    assert got == {node1_ips[0]: "node-1",      # Cluster: the hash winner
                   node1_ips[1]: "node-2"}      # Local: the only node with a ready endpoint
    # no ready endpoint at all (empty), none on a live node (nolocal), another class, IPv6,
    # not a LoadBalancer: nobody announces
    assert owners(services, of, {"node-2"})[node1_ips[0]] == "node-2"    # node-1 died


# ---- ARP frames --------------------------------------------------------------------------------

def test_build_and_parse_request_and_reply():
    request = Arp(ARP_REQUEST, MAC1, "10.123.0.254", b"\0" * 6, "10.123.0.200", eth_src=MAC1)
    frame = build_arp(request)
    assert len(frame) == 60
    assert frame[:6] == BROADCAST and frame[6:12] == MAC1 and frame[12:14] == b"\x08\x06"
    # htype 1, ptype IPv4, hlen 6, plen 4, op 1
    assert frame[14:22] == bytes.fromhex("0001080006040001")
    assert parse_arp(frame) == request
    reply = arp_reply(parse_arp(frame), MAC2)
    raw = build_arp(reply)
    assert raw[:6] == MAC1 and raw[6:12] == MAC2                 # unicast back to the asker
    parsed = parse_arp(raw)
    assert (parsed.op, parsed.sender_mac, parsed.sender_ip, parsed.target_mac,
            parsed.target_ip) == (ARP_REPLY, MAC2, "10.123.0.200", MAC1, "10.123.0.254")


def test_parse_rejects_other_frames():
    assert parse_arp(b"\xff" * 20) is None
    ipv4 = bytearray(build_arp(Arp(ARP_REQUEST, MAC1, "1.2.3.4", MAC2, "1.2.3.5")))
    ipv4[12:14] = b"\x08\x00"
    assert parse_arp(bytes(ipv4)) is None


def test_gratuitous_frames():
    frames = [parse_arp(build_arp(a)) for a in gratuitous("10.123.0.200", MAC2)]
    assert [f.op for f in frames] == [ARP_REQUEST, ARP_REPLY]
    for f in frames:
        assert f.sender_ip == f.target_ip == "10.123.0.200"
        assert f.sender_mac == f.eth_src == MAC2 and f.eth_dst == BROADCAST


# ---- the announcer's state machine, with a fake socket ---------------------------------------

class FakeInformer:
    def __init__(self, items):
        self.items = items
        self.synced = asyncio.Event()
        self.synced.set()

    def list(self, namespace=None):
        return [i for i in self.items
                if namespace is None or i["metadata"].get("namespace") == namespace]

    def add_handler(self, handler):
        pass


class FakeSocket:
    def __init__(self):
        self.sent: list[bytes] = []
        self.inbox: list[tuple[bytes, tuple]] = []

    def send(self, frame):
        self.sent.append(frame)

    def recvfrom(self, size):
        if not self.inbox:
            raise BlockingIOError
        return self.inbox.pop(0)


def test_announcer_answers_only_what_it_wins(monkeypatch):
    monkeypatch.setattr(an, "GRATUITOUS_INTERVAL", 0.01)
    alive = {"node-1", "node-2"}
    ips = [f"10.123.0.{i}" for i in range(200, 251)]
    mine = next(ip for ip in ips if elect(alive, ip) == "node-1")
    theirs = next(ip for ip in ips if elect(alive, ip) == "node-2")
    nodes = FakeInformer([node("node-1"), node("node-2")])
    services = FakeInformer([lb_service("web", [mine, theirs])])
    slices = FakeInformer([eps_slice("web", ("node-2", True))])

    async def scenario():
        a = Announcer(None, "node-1", nodes, services, slices)
        a.leases = FakeInformer([])
        a.mac = MAC1
        a._sock = sock = FakeSocket()
        a.sync()
        assert a.announcing == {mine}
        await asyncio.sleep(0.1)
        garp = [parse_arp(f) for f in sock.sent]
        assert len(garp) == 2 * an.GRATUITOUS_ROUNDS
        assert {g.sender_ip for g in garp} == {mine}
        sock.sent.clear()
        for target in (mine, theirs):
            req = Arp(ARP_REQUEST, MAC2, "10.123.0.254", b"\0" * 6, target, eth_src=MAC2)
            sock.inbox.append((build_arp(req), ("eth0", 0x0806, 1, 1, MAC2)))
        a._on_readable()
        replies = [parse_arp(f) for f in sock.sent]
        assert [(r.op, r.sender_ip, r.sender_mac, r.eth_dst) for r in replies] == \
            [(ARP_REPLY, mine, MAC1, MAC2)]
        # node-2 goes away: node-1 takes its address over, with gratuitous ARP
        nodes.items = [node("node-1"), node("node-2", ready=False)]
        sock.sent.clear()
        a.sync()
        assert a.announcing == {mine, theirs}
        await asyncio.sleep(0.1)
        assert {parse_arp(f).sender_ip for f in sock.sent} == {theirs}
        # the Service is deleted: nothing is answered
        services.items = []
        a.sync()
        assert a.announcing == set()
        sock.sent.clear()
        req = Arp(ARP_REQUEST, MAC2, "10.123.0.254", b"\0" * 6, mine, eth_src=MAC2)
        sock.inbox.append((build_arp(req), ("eth0", 0x0806, 1, 1, MAC2)))
        a._on_readable()
        assert sock.sent == []

    asyncio.run(scenario())


# ---- L2Advertisements decide which nodes may announce a pool's addresses ---------------------

def _node(name: str, **labels) -> dict:
    return {"metadata": {"name": name, "labels": labels}}


def _pool(name: str, **labels) -> dict:
    return {"metadata": {"name": name, "namespace": "metallb-system", "labels": labels},
            "spec": {"addresses": ["10.0.0.0/24"]}}


def _ad(**spec) -> dict:
    return {"metadata": {"name": "ad", "namespace": "metallb-system"}, "spec": spec}


def _svc_from(pool: str | None) -> dict:
    ann = {"metallb.io/ip-allocated-from-pool": pool} if pool else {}
    return {"metadata": {"name": "s", "namespace": "default", "annotations": ann}}


def test_advertised_nodes_follow_l2advertisements():
    from nanokube.node.announcer import advertised_nodes
    nodes = [_node("a", zone="x"), _node("b", zone="y")]
    pools = [_pool("p1"), _pool("p2", tier="edge")]
    # no advertisement for the pool: MetalLB does not announce it
    assert advertised_nodes(_svc_from("p1"), pools, [], nodes) == set()
    # an advertisement without pools or selectors covers every pool on every node
    assert advertised_nodes(_svc_from("p1"), pools, [_ad()], nodes) == {"a", "b"}
    # by pool name, with a node selector
    ad = _ad(ipAddressPools=["p1"], nodeSelectors=[{"matchLabels": {"zone": "y"}}])
    assert advertised_nodes(_svc_from("p1"), pools, [ad], nodes) == {"b"}
    assert advertised_nodes(_svc_from("p2"), pools, [ad], nodes) == set()
    # by pool selector
    ad = _ad(ipAddressPoolSelectors=[{"matchLabels": {"tier": "edge"}}])
    assert advertised_nodes(_svc_from("p2"), pools, [ad], nodes) == {"a", "b"}
    assert advertised_nodes(_svc_from("p1"), pools, [ad], nodes) == set()
    # an address no pool allocated (status set by hand): any node
    assert advertised_nodes(_svc_from(None), pools, [], nodes) is None
