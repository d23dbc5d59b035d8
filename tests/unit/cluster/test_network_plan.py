"""Naming and addressing of the cluster network (docs/cluster.md), and the batches create feeds
to `ip`, without root."""
from __future__ import annotations

import pytest

from nanokube.cluster import network


def test_plan_follows_the_conventions():
    net = network.plan("demo", 3, 2)
    assert (net.cluster, net.index, net.lan_cidr, net.bridge, net.host_ip) == (
        "demo", 3, "10.123.3.0/24", "nk3", "10.123.3.1")
    assert net.nodes == [
        network.NodeNet("node-1", "nk-demo-node-1", "10.123.3.11", "nk3n1"),
        network.NodeNet("node-2", "nk-demo-node-2", "10.123.3.12", "nk3n2"),
    ]
    assert (net.outside_netns, net.outside_ip) == ("nk-demo-outside", "10.123.3.254")
    assert net.lb_pool == "10.123.3.200-10.123.3.250"
    assert net.outside_host_if == "nk3o"


def test_node_ips_stay_unique_and_below_the_lb_pool():
    net = network.plan("c", 0, network.MAX_NODES)
    ips = [n.ip for n in net.nodes]
    assert len(set(ips)) == len(ips)
    assert ips[8:10] == ["10.123.0.19", "10.123.0.110"]
    assert max(int(ip.rsplit(".", 1)[1]) for ip in ips) < 200
    assert all(len(n.host_if) <= 15 for n in network.plan("c", 255, 99).nodes)  # IFNAMSIZ


@pytest.mark.parametrize("args", [("Bad", 0, 1), ("a/b", 0, 1), ("-a", 0, 1), ("a", 256, 1),
                                  ("a", -1, 1), ("a", 0, 0), ("a", 0, 100)])
def test_plan_rejects_what_cannot_be_named_or_addressed(args):
    with pytest.raises(ValueError):
        network.plan(*args)


def test_round_trip_through_a_dict():
    net = network.plan("demo", 1, 3)
    d = net.to_dict()
    assert d["nodes"][2] == {"name": "node-3", "netns": "nk-demo-node-3", "ip": "10.123.1.13",
                             "host_if": "nk1n3"}
    assert network.ClusterNet.from_dict(d) == net


def test_owns_netns_only_matches_the_clusters_own_namespaces():
    assert network.owns_netns("a", "nk-a-node-1")
    assert network.owns_netns("a", "nk-a-outside")
    assert network.owns_netns("a", "nk-a-0123456789ab")            # a pod
    assert not network.owns_netns("a", "nk-a-b-node-1")            # cluster "a-b"
    assert not network.owns_netns("a", "nk-a-b-0123456789ab")
    assert not network.owns_netns("a", "nk-ab-node-1")
    assert not network.owns_netns("a", "other")


def test_netns_exec_enters_only_the_network_namespace():
    assert network.netns_exec_argv("nk-a-node-1", ["nanokube", "agent"]) == [
        "nsenter", "--net=/run/netns/nk-a-node-1", "--", "nanokube", "agent"]


def test_used_indexes_are_the_lan_bridges(monkeypatch):
    monkeypatch.setattr(network, "_host_links",
                        lambda: {"lo", "eth0", "nk0", "nk0n1", "nk0o", "nk12", "nkx", "cni0"})
    assert network.used_indexes() == {0, 12}


def test_host_batch_makes_everything_on_a_fresh_host(monkeypatch):
    monkeypatch.setattr(network, "_host_links", lambda: {"lo", "eth0"})
    monkeypatch.setattr(network, "_netns_names", lambda: [])
    group = network.link_group(2)
    lines = network._host_batch(network.plan("demo", 2, 1))
    assert lines == [
        "link add name nk2 address 0a:58:0a:7b:02:01 type bridge",
        f"link set dev nk2 addrgenmode none group {group}",
        "addr replace 10.123.2.1/24 dev nk2",
        "link set dev nk2 up",
        "route replace blackhole 10.123.2.0/24 metric 4242",
        "netns add nk-demo-node-1",
        "link add name nk2n1 type veth peer name eth0 netns nk-demo-node-1",
        f"link set dev nk2n1 addrgenmode none group {group}",
        "link set dev nk2n1 master nk2 up",
        "netns add nk-demo-outside",
        "link add name nk2o type veth peer name eth0 netns nk-demo-outside",
        f"link set dev nk2o addrgenmode none group {group}",
        "link set dev nk2o master nk2 up",
    ]


def test_host_batch_skips_what_exists(monkeypatch):
    monkeypatch.setattr(network, "_host_links", lambda: {"nk2", "nk2n1", "nk2o"})
    monkeypatch.setattr(network, "_netns_names", lambda: ["nk-demo-node-1", "nk-demo-outside"])
    lines = network._host_batch(network.plan("demo", 2, 1))
    assert not [line for line in lines if line.startswith(("link add", "netns add"))]


def test_node_and_outside_ends():
    assert network._lan_end_batch("10.123.0.11", 24, "10.123.0.1") == [
        "link set dev lo up", "addr replace 10.123.0.11/24 dev eth0", "link set dev eth0 up",
        "route replace default via 10.123.0.1"]
    # The outside host has its connected LAN route and nothing else.
    assert not [line for line in network._lan_end_batch("10.123.0.254", 24, None)
                if line.startswith("route")]


def test_node_sysctls_are_set_inside_the_node():
    argv = network._sysctl_argv("nk-a-node-1")
    assert argv[:3] == ["nsenter", "--net=/run/netns/nk-a-node-1", "--"]
    assert "net.ipv4.ip_forward=1" in argv and "net.ipv4.conf.all.rp_filter=0" in argv
    # no ICMP redirects for NodePort traffic that leaves by the link it came in on
    assert {"net.ipv4.conf.all.send_redirects=0", "net.ipv4.conf.eth0.send_redirects=0"} <= set(argv)
