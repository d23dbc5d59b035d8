"""The node's pod network without root: names, host-local IPAM and the `ip` batches PodNetwork
feeds (nanokube/node/cni.py; kept here beside the cluster network tests)."""
from __future__ import annotations

import pytest

from nanokube.node import cni

UID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


class FakeIP:
    """Records the batches and plays a node namespace: links and namespaces that exist."""

    def __init__(self, monkeypatch):
        self.batches: list[tuple[str | None, list[str]]] = []
        self.links: set[str] = set()
        self.netns: set[str] = set()
        self.routes: list[dict] = []
        self.fail_on: str | None = None
        self.nft_scripts: list[str] = []
        monkeypatch.setattr(cni, "_ip_batch", self.batch)
        monkeypatch.setattr(cni, "_nft", self.nft)   # never the host's firewall
        monkeypatch.setattr(cni, "_ip_json", self.json)
        monkeypatch.setattr(cni, "_link_exists", lambda name: name in self.links)
        monkeypatch.setattr(cni, "_netns_exists", lambda name: name in self.netns)

    async def batch(self, lines, netns=None):
        if not lines:
            return
        self.batches.append((netns, list(lines)))
        if self.fail_on and any(self.fail_on in line for line in lines):
            raise cni.CNIError("boom")
        for line in lines:
            words = line.split()
            if words[:2] == ["netns", "add"]:
                self.netns.add(words[2])
            elif words[:2] == ["netns", "del"]:
                self.netns.discard(words[2])
            elif words[:3] == ["link", "add", "name"]:
                self.links.add(words[3])
            elif words[:3] == ["link", "del", "dev"]:
                self.links.discard(words[3])

    async def nft(self, script):
        self.nft_scripts.append(script)

    async def json(self, args):
        return self.routes


@pytest.fixture
def ip(monkeypatch):
    return FakeIP(monkeypatch)


@pytest.fixture
async def pn(tmp_path, ip):
    pn = cni.PodNetwork("demo", str(tmp_path))
    await pn.setup_node("10.244.1.0/24")
    return pn


def test_names():
    pn = cni.PodNetwork("demo", "/nonexistent")
    assert pn.netns_name(UID) == "nk-demo-0f1e2d3c4b5a"
    assert cni.veth_name(UID) == "vp0f1e2d3c"


async def test_setup_node_makes_the_bridge_once(ip, tmp_path):
    pn = cni.PodNetwork("demo", str(tmp_path))
    await pn.setup_node("10.244.1.0/24")
    assert ip.batches[-1] == (None, [
        "link add name cni0 address 0a:58:0a:f4:01:01 type bridge",
        "addr replace 10.244.1.1/24 dev cni0", "link set dev cni0 up"])
    await pn.setup_node("10.244.1.0/24")
    assert not [line for line in ip.batches[-1][1] if line.startswith("link add")]
    assert pn.gateway == "10.244.1.1"
    # pods leave the node masqueraded, except towards the cluster CIDR
    assert "ip saddr 10.244.1.0/24 ip daddr != 10.244.0.0/16 masquerade" in ip.nft_scripts[-1]


async def test_add_pod_wires_node_and_pod(pn, ip):
    assert await pn.add_pod(UID) == "10.244.1.2"
    node, pod = ip.batches[-2:]
    assert node == (None, [
        "netns add nk-demo-0f1e2d3c4b5a",
        "link add name vp0f1e2d3c type veth peer name eth0 netns nk-demo-0f1e2d3c4b5a",
        "link set dev vp0f1e2d3c master cni0 up",
        "link set dev vp0f1e2d3c type bridge_slave hairpin on"])
    assert pod == ("nk-demo-0f1e2d3c4b5a", [
        "link set dev lo up", "addr replace 10.244.1.2/24 dev eth0", "link set dev eth0 up",
        "route replace default via 10.244.1.1"])


async def test_add_pod_is_idempotent(pn, ip):
    first = await pn.add_pod(UID)
    assert await pn.add_pod(UID) == first
    node = ip.batches[-2][1]
    assert not [line for line in node if line.startswith(("link add", "netns add"))]
    assert await pn.pod_ips() == {UID: first}


async def test_add_pod_before_setup_node_fails(tmp_path, ip):
    with pytest.raises(cni.CNIError, match="setup_node"):
        await cni.PodNetwork("demo", str(tmp_path)).add_pod(UID)


async def test_failed_add_pod_leaves_nothing(pn, ip):
    ip.fail_on = "route replace default"
    with pytest.raises(cni.CNIError):
        await pn.add_pod(UID)
    assert ip.links == {"cni0"} and ip.netns == set()
    assert await pn.pod_ips() == {}


async def test_remove_pod_is_idempotent(pn, ip):
    await pn.add_pod(UID)
    await pn.remove_pod(UID)
    assert ip.batches[-1] == (None, ["link del dev vp0f1e2d3c", "netns del nk-demo-0f1e2d3c4b5a"])
    count = len(ip.batches), len(ip.nft_scripts)
    await pn.remove_pod(UID)
    assert (len(ip.batches), len(ip.nft_scripts)) == count     # nothing left to do
    assert await pn.pod_ips() == {}


async def test_only_live_pod_addresses_are_let_through(pn, ip, tmp_path):
    table = ip.nft_scripts[-1]
    refuse = "ip daddr 10.244.1.0/24 ip daddr != 10.244.1.1 ip daddr != @pods goto refuse"
    assert table.count(refuse) == 2                         # forward and output
    assert "meta l4proto tcp reject with tcp reset" in table
    assert "elements" not in table                          # no pod yet
    first = await pn.add_pod(UID)
    assert ip.nft_scripts[-1] == f"add element ip nanokube-cni pods {{ {first} }}\n"
    await pn.remove_pod(UID)
    assert ip.nft_scripts[-1] == f"delete element ip nanokube-cni pods {{ {first} }}\n"
    # a restarted agent rebuilds the set from the IPAM leases
    second = await pn.add_pod("11111111-2222-3333-4444-555555555555")
    again = cni.PodNetwork("demo", str(tmp_path))
    await again.setup_node("10.244.1.0/24")
    assert f"elements = {{ {second} }};" in ip.nft_scripts[-1]


async def test_sync_routes_keeps_exactly_the_peers(pn, ip):
    ip.routes = [{"dst": "10.244.2.0/24", "gateway": "10.123.0.12"},     # right already
                 {"dst": "10.244.3.0/24", "gateway": "10.123.0.99"},     # moved
                 {"dst": "10.244.9.0/24", "gateway": "10.123.0.19"}]     # node gone
    await pn.sync_routes({"10.244.1.0/24": "10.123.0.11",                # our own: skipped
                          "10.244.2.0/24": "10.123.0.12",
                          "10.244.3.0/24": "10.123.0.13",
                          "10.244.4.0/24": "10.123.0.14"})
    assert ip.batches[-1] == (None, [
        "route replace 10.244.3.0/24 via 10.123.0.13 proto 200",
        "route replace 10.244.4.0/24 via 10.123.0.14 proto 200",
        "route del 10.244.9.0/24 proto 200"])


def test_ipam_skips_network_gateway_and_broadcast(tmp_path):
    ipam = cni.HostLocalIPAM(tmp_path / "ipam")
    ips = [ipam.allocate(f"uid-{i}", "10.244.1.0/24") for i in range(253)]
    assert ips[0] == "10.244.1.2" and ips[-1] == "10.244.1.254"
    assert len(set(ips)) == 253
    with pytest.raises(cni.CNIError, match="no IP addresses available in range set: "
                                           "10.244.1.2-10.244.1.254"):
        ipam.allocate("one-too-many", "10.244.1.0/24")


def test_ipam_goes_round_robin_and_survives_restarts(tmp_path):
    ipam = cni.HostLocalIPAM(tmp_path / "ipam")
    assert ipam.allocate("a", "10.244.1.0/24") == "10.244.1.2"
    assert ipam.allocate("b", "10.244.1.0/24") == "10.244.1.3"
    ipam.release("a")
    # A fresh instance (an agent restart) sees the leases and does not hand out .2 again at once.
    again = cni.HostLocalIPAM(tmp_path / "ipam")
    assert again.leases() == {"b": "10.244.1.3"}
    assert again.allocate("c", "10.244.1.0/24") == "10.244.1.4"
    assert again.allocate("b", "10.244.1.0/24") == "10.244.1.3"
    assert (tmp_path / "ipam" / "10.244.1.4").read_text() == "c"


def test_ipam_drops_a_lease_from_a_former_pod_cidr(tmp_path):
    ipam = cni.HostLocalIPAM(tmp_path / "ipam")
    ipam.allocate("a", "10.244.1.0/24")
    assert ipam.allocate("a", "10.244.7.0/24") == "10.244.7.2"
    assert ipam.leases() == {"a": "10.244.7.2"}
