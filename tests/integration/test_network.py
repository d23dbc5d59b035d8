"""The cluster network for real: LAN, nodes, outside host, pods and host-gw routes (root).

A 2-node cluster network under a name and LAN index of its own (never a real cluster's); each
node's PodNetwork runs in a Python process inside the node namespace, as in the node agent.
Everything is removed in `finally`, and the test checks that nothing is left.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from nanokube.cluster import network

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip")
                                or not shutil.which("nsenter"),
                                reason="needs root, iproute2 and nsenter")

# ICMP echo from inside a namespace, without ping(8): prints {target: "ok"|"timeout"|"no route"}.
PING = textwrap.dedent("""
    import errno, json, os, select, socket, struct, sys, time

    def checksum(data):
        total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
        total = (total >> 16) + (total & 0xFFFF)
        return ~(total + (total >> 16)) & 0xFFFF

    def ping(target, timeout=1.0):
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        ident = os.getpid() & 0xFFFF
        body = b"nanokube"
        header = struct.pack("!BBHHH", 8, 0, 0, ident, 1)
        packet = struct.pack("!BBHHH", 8, 0, checksum(header + body), ident, 1) + body
        try:
            s.sendto(packet, (target, 0))
        except OSError as e:
            return "no route" if e.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH) else str(e)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([s], [], [], left)[0]:
                break
            data, (src, _) = s.recvfrom(1500)
            icmp = data[(data[0] & 0x0F) * 4:]
            if src == target and icmp[0] == 0 and struct.unpack("!H", icmp[4:6])[0] == ident:
                return "ok"
        return "timeout"

    print(json.dumps({t: ping(t) for t in sys.argv[1:]}))
""")

# The PodNetwork calls of one step, run inside a node namespace like the agent runs them.
CNI = textwrap.dedent("""
    import asyncio, json, sys, time
    from nanokube.node.cni import PodNetwork

    async def main():
        args = json.loads(sys.argv[1])
        pn = PodNetwork(args["cluster"], args["state_dir"])
        out = {}
        {code}
        print(json.dumps(out))

    asyncio.run(main())
""")


def in_netns(netns: str, argv: list[str], timeout: float = 30) -> str:
    proc = subprocess.run(network.netns_exec_argv(netns, argv), capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


# A TCP connect to port 80 of argv[1]: which error, and whether it came within a second.
CONNECT = textwrap.dedent("""
    import errno, json, socket, sys, time
    t0 = time.monotonic()
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect((sys.argv[1], 80))
        error = "connected"
    except OSError as e:
        error = errno.errorcode.get(e.errno, str(e))
    print(json.dumps({"error": error, "fast": time.monotonic() - t0 < 1.0}))
""")


def ping(netns: str, *targets: str) -> dict[str, str]:
    return json.loads(in_netns(netns, [sys.executable, "-c", PING, *targets]))


def cni(node: network.NodeNet, cluster: str, state_dir: Path, code: str) -> dict:
    script = CNI.replace("{code}", textwrap.indent(textwrap.dedent(code), " " * 4).lstrip())
    args = json.dumps({"cluster": cluster, "state_dir": str(state_dir / node.name)})
    return json.loads(in_netns(node.netns, [sys.executable, "-c", script, args]))


def free_index() -> int:
    """A high LAN index no cluster uses, so the test never meets a real cluster."""
    used = network.used_indexes()
    return next(k for k in range(250, 150, -1) if k not in used)


def host_state(net: network.ClusterNet) -> str:
    """What the host shows of anything named after the cluster."""
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    routes = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True,
                            text=True).stdout
    prefix = f"10.123.{net.index}."
    netns = [n for n in os.listdir(network.NETNS_DIR) if n.startswith(f"nk-{net.cluster}-")] \
        if os.path.isdir(network.NETNS_DIR) else []
    found = [line for line in links.splitlines() if line.split("@")[0].split()[0]
             in {net.bridge, net.outside_host_if, *(n.host_if for n in net.nodes)}]
    found += [line for line in routes.splitlines() if prefix in line]
    return "\n".join(found + netns)


@pytest.fixture
def cluster_name() -> str:
    return f"t{os.getpid()}"


def test_create_is_idempotent_and_failure_leaves_nothing(cluster_name):
    net = network.plan(cluster_name, free_index(), 2)
    try:
        network.create(net)
        network.create(net)                        # a second time changes nothing
        assert net.index in network.used_indexes()
        addrs = json.loads(subprocess.run(["ip", "-j", "-n", net.nodes[1].netns, "-4", "addr",
                                           "show", "dev", "eth0"], capture_output=True,
                                          text=True, check=True).stdout)
        assert [a["local"] for a in addrs[0]["addr_info"]] == [net.nodes[1].ip]
        network.destroy(net)
        network.destroy(net)                       # tolerant of what is already gone

        broken = network.plan(cluster_name, net.index, 2)
        broken.nodes[1].ip = "10.123.300.12"       # the second node's batch fails
        with pytest.raises(network.NetworkError):
            network.create(broken)
        assert network.leftovers(broken) == []
        assert host_state(broken) == ""
    finally:
        network.destroy(net)
    assert host_state(net) == ""


def test_two_node_pod_network(cluster_name, tmp_path):
    net = network.plan(cluster_name, free_index(), 2)
    pod_cidrs = {"node-1": "10.244.1.0/24", "node-2": "10.244.2.0/24"}
    peers = {pod_cidrs[n.name]: n.ip for n in net.nodes}
    pods = {n.name: [str(uuid.uuid4()), str(uuid.uuid4())] for n in net.nodes}
    timings = {}
    try:
        t0 = time.perf_counter()
        network.create(net)
        timings["create"] = time.perf_counter() - t0

        # Inside each node: the sysctls are set there, and nowhere else.
        sysctls = in_netns(net.nodes[0].netns, ["sysctl", "-n", "net.ipv4.ip_forward",
                                                "net.ipv4.conf.all.rp_filter",
                                                "net.ipv4.conf.all.send_redirects",
                                                "net.ipv4.conf.eth0.send_redirects"]).split()
        assert sysctls == ["1", "0", "0", "0"]
        outside_routes = subprocess.run(["ip", "-n", net.outside_netns, "-4", "route"],
                                        capture_output=True, text=True, check=True).stdout
        assert [r.split() for r in outside_routes.strip().splitlines()] == [
            f"{net.lan_cidr} dev eth0 proto kernel scope link src {net.outside_ip}".split()]

        ips: dict[str, dict[str, str]] = {}
        for node in net.nodes:
            out = cni(node, net.cluster, tmp_path, f"""
                await pn.setup_node({pod_cidrs[node.name]!r})
                await pn.setup_node({pod_cidrs[node.name]!r})
                out["ips"] = {{}}
                for uid in {pods[node.name]!r}:
                    t = time.perf_counter()
                    out["ips"][uid] = await pn.add_pod(uid)
                    out.setdefault("add", []).append(time.perf_counter() - t)
                out["again"] = await pn.add_pod({pods[node.name][0]!r})
                await pn.sync_routes({peers!r})
                await pn.sync_routes({peers!r})
            """)
            ips[node.name] = out["ips"]
            timings.setdefault("add_pod", []).extend(out["add"])
            first = pods[node.name][0]
            assert out["again"] == out["ips"][first]                 # same uid, same IP
            gateway = pod_cidrs[node.name].replace(".0/24", ".1")
            assert sorted(out["ips"].values()) == sorted(
                [gateway[:-1] + "2", gateway[:-1] + "3"])            # after the gateway

        n1, n2 = net.nodes
        (a1, b1), (a2, b2) = (list(ips[n.name].values()) for n in net.nodes)
        pod_a1 = network.netns_prefix(net.cluster) + pods["node-1"][0].replace("-", "")[:12]

        # Exactly one veth per pod in the node, on cni0 with hairpin on.
        links = json.loads(subprocess.run(["ip", "-j", "-d", "-n", n1.netns, "link", "show",
                                           "master", "cni0"], capture_output=True, text=True,
                                          check=True).stdout)
        assert sorted(link["ifname"] for link in links) == sorted(
            "vp" + uid.replace("-", "")[:8] for uid in pods["node-1"])
        assert all(link["linkinfo"]["info_slave_data"]["hairpin"] for link in links)
        routes = subprocess.run(["ip", "-n", n1.netns, "-4", "route", "show", "proto", "200"],
                                capture_output=True, text=True, check=True).stdout
        assert routes.split() == ["10.244.2.0/24", "via", n2.ip, "dev", "eth0"]

        assert ping(pod_a1, b1, a2, b2, a1) == {b1: "ok", a2: "ok", b2: "ok", a1: "ok"}
        assert ping(n1.netns, a1, b1) == {a1: "ok", b1: "ok"}      # node -> its pods
        assert ping(n2.netns, a1) == {a1: "ok"}                    # node -> other node's pod
        assert ping(net.outside_netns, n1.ip, n2.ip) == {n1.ip: "ok", n2.ip: "ok"}
        assert ping(net.outside_netns, a1, a2) == {a1: "no route", a2: "no route"}

        # A restarted agent finds its pods in the IPAM state; removing a route peer removes it.
        out = cni(n1, net.cluster, tmp_path, f"""
            await pn.setup_node({pod_cidrs['node-1']!r})
            out["ips"] = await pn.pod_ips()
            await pn.sync_routes({{}})
        """)
        assert out["ips"] == ips["node-1"]
        assert ping(pod_a1, a2) == {a2: "timeout"}          # no route back from node-1
        assert subprocess.run(["ip", "-n", n1.netns, "-4", "route", "show", "proto", "200"],
                              capture_output=True, text=True).stdout == ""

        for node in net.nodes:
            out = cni(node, net.cluster, tmp_path, f"""
                await pn.setup_node({pod_cidrs[node.name]!r})
                for uid in {pods[node.name]!r}:
                    await pn.remove_pod(uid)
                    await pn.remove_pod(uid)
                out["ips"] = await pn.pod_ips()
            """)
            assert out["ips"] == {}
        # A gone pod's address refuses a connect at once (a reset), from its own node
        # and from the other one, instead of hanging until a timeout.
        for netns in (n1.netns, n2.netns):
            assert json.loads(in_netns(netns, [sys.executable, "-c", CONNECT, a1])) \
                == {"error": "ECONNREFUSED", "fast": True}
        left = [n for n in os.listdir(network.NETNS_DIR) if network.owns_netns(net.cluster, n)]
        assert sorted(left) == sorted([n1.netns, n2.netns, net.outside_netns])
        assert subprocess.run(["ip", "-n", n1.netns, "link", "show", "master", "cni0"],
                              capture_output=True, text=True).stdout == ""
    finally:
        t0 = time.perf_counter()
        network.destroy(net)
        timings["destroy"] = time.perf_counter() - t0
        print(f"\nnetwork timings: create {timings.get('create', 0) * 1000:.1f} ms, "
              f"destroy {timings['destroy'] * 1000:.1f} ms, add_pod "
              + ", ".join(f"{t * 1000:.1f}" for t in timings.get("add_pod", [])) + " ms")
    assert network.leftovers(net) == []
    assert host_state(net) == ""


def test_destroy_removes_pod_namespaces_left_by_agents(cluster_name, tmp_path):
    """`down` after a crashed agent: pods' namespaces are still there, destroy takes them too,
    but not those of a cluster whose name merely starts the same."""
    net = network.plan(cluster_name, free_index(), 1)
    other = f"nk-{cluster_name}-x-node-1"             # e.g. a node of cluster "<name>-x"
    try:
        network.create(net)
        subprocess.run(["ip", "netns", "add", other], check=True)
        cni(net.nodes[0], net.cluster, tmp_path, f"""
            await pn.setup_node("10.244.1.0/24")
            await pn.add_pod({str(uuid.uuid4())!r})
        """)
        assert len([n for n in os.listdir(network.NETNS_DIR)
                    if network.owns_netns(net.cluster, n)]) == 3
        network.destroy(net)
        assert host_state(net) == other            # only the other cluster's namespace is left
    finally:
        network.destroy(net)
        subprocess.run(["ip", "netns", "del", other])
