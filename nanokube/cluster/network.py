"""The cluster's network on this machine: LAN bridge, node and outside namespaces (docs/cluster.md).

Runs on the host as root. Every change is fed to one `ip -batch` process per namespace, so a
2-node cluster takes a handful of processes (tens of milliseconds), not one per command.

The host's own namespace only gets the LAN bridge `nk<k>` with its address (and so its connected
route), the node veth ends on it, and a blackhole route for the LAN at metric 4242; routes and
sysctls of the nodes live inside the node namespaces.
"""
from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
from dataclasses import asdict, dataclass, field

LAN_PREFIX = "10.123"             # the LAN of cluster k is 10.123.<k>.0/24
BLACKHOLE_METRIC = 4242
# Each link deletion waits for an RCU grace period (~20 ms); links of one group go in one.
# The cluster's host links share the group "nk" << 16 | k.
LINK_GROUP_BASE = 0x6E6B0000
NETNS_DIR = "/run/netns"
SYS_NET = "/sys/class/net"
MAX_NODES = 99                    # node i is .1<i>: .11-.19, then .110-.199, below the LB pool
_CLUSTER_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_BRIDGE = re.compile(r"^nk(\d+)$")
# What follows "nk-<cluster>-" in the name of a namespace the cluster owns: a node, the outside
# host, or a pod (12 hex of its uid). Matching the whole rest keeps cluster "a" away from the
# namespaces of cluster "a-b".
_OWN_NETNS_SUFFIX = re.compile(r"^(node-\d+|outside|[0-9a-f]{12})$")

# Inside each node: it routes between its pods and the LAN, and replies may come back on another
# interface than the request went out of (NodePort, LoadBalancer), so no reverse-path filter.
NODE_SYSCTLS = {
    "net.ipv4.ip_forward": "1",
    "net.ipv4.conf.all.rp_filter": "0",
    "net.ipv4.conf.default.rp_filter": "0",
    # A NodePort whose endpoint is on another node leaves by the LAN link it came in on; the
    # kernel would answer each such packet with an ICMP redirect pointing the client at the
    # other node for the (DNATed) pod address, a hint the client must not use, and would check
    # the source route of every packet to decide so (bench/dataplane.py: half a percent of the
    # path's CPU). Any interface (`all`) or the link itself turns redirects on.
    "net.ipv4.conf.all.send_redirects": "0",
    "net.ipv4.conf.default.send_redirects": "0",
    "net.ipv4.conf.eth0.send_redirects": "0",
}


class NetworkError(RuntimeError):
    pass


@dataclass
class NodeNet:
    name: str          # node-1
    netns: str         # nk-<cluster>-node-1
    ip: str            # 10.123.<k>.11
    host_if: str       # nk<k>n1, the host end of the node's veth, on the LAN bridge


@dataclass
class ClusterNet:
    cluster: str
    index: int
    lan_cidr: str      # 10.123.<k>.0/24
    bridge: str        # nk<k>
    host_ip: str       # 10.123.<k>.1
    nodes: list[NodeNet] = field(default_factory=list)
    outside_netns: str = ""
    outside_ip: str = ""
    lb_pool: str = ""  # 10.123.<k>.200-10.123.<k>.250

    @property
    def outside_host_if(self) -> str:
        """The host end of the outside host's veth (docs/cluster.md names no other)."""
        return f"{self.bridge}o"

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.lan_cidr).prefixlen

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ClusterNet":
        d = dict(d)
        d["nodes"] = [NodeNet(**n) for n in d.get("nodes", [])]
        return cls(**d)


# ---- naming and addressing (pure) --------------------------------------------------------------

def link_group(index: int) -> int:
    return LINK_GROUP_BASE + index


def bridge_name(index: int) -> str:
    return f"nk{index}"


def node_name(i: int) -> str:
    return f"node-{i}"


def netns_prefix(cluster: str) -> str:
    return f"nk-{cluster}-"


def owns_netns(cluster: str, netns: str) -> bool:
    """Whether `netns` is one of the cluster's: a node, the outside host or a pod."""
    prefix = netns_prefix(cluster)
    return netns.startswith(prefix) and bool(_OWN_NETNS_SUFFIX.match(netns[len(prefix):]))


def plan(cluster: str, index: int, node_count: int) -> ClusterNet:
    """The names and addresses of cluster `cluster` at LAN index `index` with `node_count` nodes."""
    if not _CLUSTER_NAME.match(cluster):
        raise ValueError(f"invalid cluster name {cluster!r}: lower-case letters, digits and '-'")
    if not 0 <= index <= 255:
        raise ValueError(f"cluster index {index} out of range 0-255")
    if not 1 <= node_count <= MAX_NODES:
        raise ValueError(f"node count {node_count} out of range 1-{MAX_NODES}")
    base = f"{LAN_PREFIX}.{index}"
    bridge = bridge_name(index)
    nodes = [NodeNet(name=node_name(i), netns=f"{netns_prefix(cluster)}{node_name(i)}",
                     ip=f"{base}.1{i}", host_if=f"{bridge}n{i}")
             for i in range(1, node_count + 1)]
    return ClusterNet(cluster=cluster, index=index, lan_cidr=f"{base}.0/24", bridge=bridge,
                      host_ip=f"{base}.1", nodes=nodes,
                      outside_netns=f"{netns_prefix(cluster)}outside", outside_ip=f"{base}.254",
                      lb_pool=f"{base}.200-{base}.250")


def netns_exec_argv(netns: str, argv: list[str]) -> list[str]:
    """Run `argv` inside network namespace `netns`.

    `ip netns exec` would also put the process in a private mount namespace (to remount /sys);
    a node agent started that way would create its pods' namespaces there, invisible to the host
    and to `down`. So only the network namespace is entered."""
    return ["nsenter", f"--net={NETNS_DIR}/{netns}", "--", *argv]


# ---- reading the host's state (no process needed) ----------------------------------------------

def _netns_names() -> list[str]:
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def _host_links() -> set[str]:
    return set(os.listdir(SYS_NET))


def used_indexes() -> set[int]:
    """The indexes k of the LAN bridges nk<k> on this host (taken by some cluster)."""
    return {int(m.group(1)) for name in _host_links() if (m := _BRIDGE.match(name))}


# ---- running ip ----------------------------------------------------------------------------------

def _batch_argv(netns: str | None, force: bool = False) -> list[str]:
    argv = ["ip"]
    if netns:
        argv += ["-n", netns]
    if force:
        argv.append("-force")  # go on after a failed line (used to tear down partial state)
    return argv + ["-batch", "-"]


def _start(argv: list[str], stdin: str = "") -> subprocess.Popen:
    """Starts `argv` with `stdin` already in its input pipe, so several run at once."""
    read_end, write_end = os.pipe()
    os.write(write_end, stdin.encode())  # a batch is a few hundred bytes: fits the pipe
    os.close(write_end)
    try:
        return subprocess.Popen(argv, stdin=read_end, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    finally:
        os.close(read_end)


def _finish(proc: subprocess.Popen, what: str, check: bool = True) -> str:
    out, err = proc.communicate()
    if check and proc.returncode != 0:
        raise NetworkError(f"{what}: {' '.join(proc.args)} failed: {err.strip()}")
    return out


def _run_parallel(jobs: list[tuple[list[str], str, str]]) -> None:
    """Runs (argv, stdin, what) jobs at once, waits for all, then raises if any failed."""
    procs = [(_start(argv, stdin), what) for argv, stdin, what in jobs]
    errors = []
    for proc, what in procs:
        try:
            _finish(proc, what)
        except NetworkError as e:
            errors.append(str(e))
    if errors:
        raise NetworkError("; ".join(errors))


# ---- create / destroy ----------------------------------------------------------------------------

def _mac(ip: str) -> str:
    """A fixed MAC for a bridge: otherwise a bridge takes the lowest MAC of its ports and changes
    it as ports come and go, which stales the ARP caches of its neighbours."""
    return "0a:58:" + ":".join(f"{b:02x}" for b in ipaddress.ip_address(ip).packed)


def _veths(net: ClusterNet) -> list[tuple[str, str]]:
    """(host end, namespace) of every veth the LAN has: the nodes', then the outside host's."""
    return [(n.host_if, n.netns) for n in net.nodes] + [(net.outside_host_if, net.outside_netns)]


def _host_batch(net: ClusterNet) -> list[str]:
    """The host's part: skips what exists, so that create is idempotent."""
    links, namespaces = _host_links(), set(_netns_names())
    lines = []
    if net.bridge not in links:
        lines.append(f"link add name {net.bridge} address {_mac(net.host_ip)} type bridge")
    lines += [
        # No IPv6 link-local address on the host's side of the LAN: the cluster is IPv4.
        f"link set dev {net.bridge} addrgenmode none group {link_group(net.index)}",
        f"addr replace {net.host_ip}/{net.prefixlen} dev {net.bridge}",
        f"link set dev {net.bridge} up",
        f"route replace blackhole {net.lan_cidr} metric {BLACKHOLE_METRIC}",
    ]
    for host_if, netns in _veths(net):
        if netns not in namespaces:
            lines.append(f"netns add {netns}")
        if host_if not in links:
            # The peer is born in the namespace, so it can be called eth0 like everywhere else.
            lines.append(f"link add name {host_if} type veth peer name eth0 netns {netns}")
        lines += [f"link set dev {host_if} addrgenmode none group {link_group(net.index)}",
                  f"link set dev {host_if} master {net.bridge} up"]
    return lines


def _lan_end_batch(ip: str, prefixlen: int, gateway: str | None) -> list[str]:
    lines = ["link set dev lo up",
             f"addr replace {ip}/{prefixlen} dev eth0",
             "link set dev eth0 up"]
    if gateway:
        lines.append(f"route replace default via {gateway}")
    return lines


def _sysctl_argv(netns: str) -> list[str]:
    settings = [f"{k}={v}" for k, v in NODE_SYSCTLS.items()]
    return netns_exec_argv(netns, ["sysctl", "-q", "-w", *settings])


def create(net: ClusterNet) -> None:
    """Lays the cluster's LAN, its nodes and its outside host. Idempotent; on failure removes
    what it made and raises NetworkError."""
    try:
        _run_parallel([(_batch_argv(None), "\n".join(_host_batch(net)) + "\n", "host")])
        jobs = []
        for node in net.nodes:
            lines = _lan_end_batch(node.ip, net.prefixlen, gateway=net.host_ip)
            jobs.append((_batch_argv(node.netns), "\n".join(lines) + "\n", node.name))
            jobs.append((_sysctl_argv(node.netns), "", f"{node.name} sysctls"))
        # The outside host gets only its connected route: it reaches the LAN and nothing else.
        lines = _lan_end_batch(net.outside_ip, net.prefixlen, gateway=None)
        jobs.append((_batch_argv(net.outside_netns), "\n".join(lines) + "\n", "outside"))
        _run_parallel(jobs)
    except BaseException:
        destroy(net)
        raise


def add_host_addresses(net: ClusterNet, ips: list[str]) -> None:
    """More addresses of the host on the LAN bridge (more API servers); they go with it."""
    lines = [f"addr replace {ip}/{net.prefixlen} dev {net.bridge}" for ip in ips]
    _finish(_start(_batch_argv(None), "\n".join(lines) + "\n"), "host addresses")


def leftovers(net: ClusterNet) -> list[str]:
    """What of the cluster's network still exists on the host (empty after destroy)."""
    left = [f"netns {n}" for n in _netns_names() if owns_netns(net.cluster, n)]
    links = _host_links()
    left += [f"link {name}" for name in [net.bridge] + [h for h, _ in _veths(net)]
             if name in links]
    routes = subprocess.run(["ip", "-j", "-4", "route", "show", "type", "blackhole"],
                            capture_output=True, text=True, check=True).stdout
    left += [f"route blackhole {net.lan_cidr}" for r in json.loads(routes or "[]")
             if r.get("dst") == net.lan_cidr and r.get("metric") == BLACKHOLE_METRIC]
    return left


def destroy(net: ClusterNet) -> None:
    """Removes everything create made, and every namespace the cluster's agents made for pods.
    Tolerates partial state; raises NetworkError if something could not be removed."""
    # Host links first: deleting a veth end removes its peer at once, while a deleted namespace
    # is freed (with its links) later, and only when no process is left in it. The whole group
    # goes in one step; the names follow for links that were never put in the group.
    links = _host_links()
    ours = [name for name in [h for h, _ in _veths(net)] + [net.bridge] if name in links]
    lines = [f"link del group {link_group(net.index)}"] if ours else []
    lines += [f"link del dev {name}" for name in ours]
    lines += [f"netns del {n}" for n in _netns_names() if owns_netns(net.cluster, n)]
    lines.append(f"route del blackhole {net.lan_cidr} metric {BLACKHOLE_METRIC}")
    # -force: a line that fails (the route was already gone) must not stop the others.
    _finish(_start(_batch_argv(None, force=True), "\n".join(lines) + "\n"), "destroy",
            check=False)
    left = leftovers(net)
    if left:
        raise NetworkError(f"could not remove {', '.join(left)}")
