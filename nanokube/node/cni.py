"""The pod network of one node, as the CNI bridge + host-local plugins and a host-gw route
keeper would make it (docs/cluster.md).

Runs inside the node's network namespace (in the node agent). The node's pods hang on the bridge
`cni0`, whose address (the first of the node's pod CIDR) is their gateway; each pod is a network
namespace `nk-<cluster>-<uid 12 hex>` joined to `cni0` by a veth `vp<uid 8 hex>`. Other nodes' pod
CIDRs are routed via their node IPs over the LAN.

Every change is one `ip -batch` process per namespace touched.
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import socket
from pathlib import Path

BRIDGE = "cni0"
NETNS_DIR = "/run/netns"
# The routes sync_routes keeps carry their own protocol number, so that it finds and replaces
# exactly its own and never touches a route someone else made (connected, default, ...).
ROUTE_PROTO = 200
LAST_RESERVED = "last_reserved_ip.0"   # the name host-local gives it


class CNIError(RuntimeError):
    pass


async def _ip_batch(lines: list[str], netns: str | None = None) -> None:
    if not lines:
        return
    argv = ["ip"] + (["-n", netns] if netns else []) + ["-batch", "-"]
    proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate(("\n".join(lines) + "\n").encode())
    if proc.returncode != 0:
        raise CNIError(f"{' '.join(argv)} failed: {err.decode().strip()}")


async def _ip_json(args: list[str]) -> list[dict]:
    proc = await asyncio.create_subprocess_exec("ip", "-j", *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise CNIError(f"ip -j {' '.join(args)} failed: {err.decode().strip()}")
    return json.loads(out or b"[]")


def _link_exists(name: str) -> bool:
    """In this process's network namespace (an ioctl: no process, and unlike /sys/class/net
    right whatever mount namespace the agent runs in)."""
    try:
        socket.if_nametoindex(name)
        return True
    except OSError:
        return False


def _netns_exists(name: str) -> bool:
    return os.path.exists(os.path.join(NETNS_DIR, name))


def _mac(ip: str) -> str:
    """A fixed bridge MAC (otherwise the bridge takes its lowest port MAC, which changes as pods
    come and go and stales the pods' ARP caches)."""
    return "0a:58:" + ":".join(f"{b:02x}" for b in ipaddress.ip_address(ip).packed)


def _uid_hex(pod_uid: str) -> str:
    return pod_uid.replace("-", "").lower()


def veth_name(pod_uid: str) -> str:
    return f"vp{_uid_hex(pod_uid)[:8]}"


class HostLocalIPAM:
    """IP leases as files `<ip>` holding the pod uid, as CNI host-local keeps them, so that they
    survive agent restarts. Allocation goes round-robin from the last reserved IP, so a freed IP
    is not handed out again at once (a stale Endpoint or conntrack entry would reach a new pod)."""

    def __init__(self, directory: Path):
        self.dir = directory

    def leases(self) -> dict[str, str]:
        """uid -> IP."""
        out = {}
        if not self.dir.is_dir():
            return out
        for path in self.dir.iterdir():
            if _is_ip(path.name):
                out[path.read_text().strip()] = path.name
        return out

    def lease_of(self, uid: str) -> str | None:
        return self.leases().get(uid)

    def allocate(self, uid: str, cidr: str) -> str:
        """The IP of `uid`: its lease if it has one, else the next free one. No await in here,
        so concurrent allocations in one agent cannot interleave; O_EXCL guards against others."""
        net = ipaddress.ip_network(cidr)
        if (ip := self.lease_of(uid)) is not None:
            if ipaddress.ip_address(ip) in net:
                return ip
            self.release(uid)                    # a lease from the node's former pod CIDR
        hosts = list(net.hosts())[1:]            # the first host address is the gateway
        last = self._last_reserved()
        start = hosts.index(last) + 1 if last in hosts else 0
        self.dir.mkdir(parents=True, exist_ok=True)
        for ip in hosts[start:] + hosts[:start]:
            try:
                fd = os.open(self.dir / str(ip), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                continue
            with os.fdopen(fd, "w") as f:
                f.write(uid)
            (self.dir / LAST_RESERVED).write_text(str(ip))
            return str(ip)
        raise CNIError(f"no IP addresses available in range set: {hosts[0]}-{hosts[-1]}")

    def release(self, uid: str) -> None:
        for u, ip in self.leases().items():
            if u == uid:
                (self.dir / ip).unlink(missing_ok=True)

    def _last_reserved(self):
        try:
            return ipaddress.ip_address((self.dir / LAST_RESERVED).read_text().strip())
        except (FileNotFoundError, ValueError):
            return None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


MASQ_TABLE = "nanokube-cni"


_libnft = None      # one libnftables context for the agent's CNI (proxy/libnft.py says why)


async def _nft(script: str) -> None:
    """One nft script in the caller's network namespace (the node's: the agent runs there),
    through libnftables: no process per pod, and no wait on exit after a deleted element."""
    global _libnft
    from nanokube.node.proxy.libnft import LibNft
    from nanokube.node.proxy.nft import NftError
    if _libnft is None:
        _libnft = LibNft()
    try:
        await _libnft.run_script(script)
    except NftError as e:
        raise CNIError(f"nft: {e}") from None


class PodNetwork:
    def __init__(self, cluster: str, state_dir: str, cluster_cidr: str = "10.244.0.0/16"):
        self.cluster = cluster
        self.cluster_cidr = str(ipaddress.ip_network(cluster_cidr))
        self.ipam = HostLocalIPAM(Path(state_dir) / "ipam")
        self.pod_cidr: str | None = None
        self._locks: dict[str, asyncio.Lock] = {}   # one per pod: add and remove never overlap
        self._live: set[str] = set()                  # the IPs in the `pods` set of MASQ_TABLE

    # ---- names and addresses ---------------------------------------------------------------

    def netns_name(self, pod_uid: str) -> str:
        return f"nk-{self.cluster}-{_uid_hex(pod_uid)[:12]}"

    @property
    def gateway(self) -> str:
        return str(next(ipaddress.ip_network(self._cidr()).hosts()))

    def _cidr(self) -> str:
        if self.pod_cidr is None:
            raise CNIError("the node's pod CIDR is not known yet (setup_node first)")
        return self.pod_cidr

    def _lock(self, pod_uid: str) -> asyncio.Lock:
        return self._locks.setdefault(pod_uid, asyncio.Lock())

    # ---- node ------------------------------------------------------------------------------

    async def setup_node(self, pod_cidr: str) -> None:
        """The pod bridge with the gateway address, up. Idempotent."""
        net = ipaddress.ip_network(pod_cidr)
        self.pod_cidr = str(net)
        gateway = self.gateway
        lines = []
        if not _link_exists(BRIDGE):
            lines.append(f"link add name {BRIDGE} address {_mac(gateway)} type bridge")
        lines += [f"addr replace {gateway}/{net.prefixlen} dev {BRIDGE}",
                  f"link set dev {BRIDGE} up"]
        await _ip_batch(lines)
        self._live = {ip for ip in self.ipam.leases().values()
                      if ipaddress.ip_address(ip) in net}
        await self._node_table(str(net), gateway)

    async def _node_table(self, pod_cidr: str, gateway: str) -> None:
        """The node's own nft table (rebuilt whole at every start):
        - pods talking to anything outside the cluster CIDR (the API server, the LAN) leave
          with the node's address, as the bridge CNI plugin's ipMasq does: the host and the
          LAN have no route back to pod addresses, and no pod address may ever leave the node;
        - an address of this node's pod CIDR that no pod holds (`pods`: the live ones) is
          refused at once: a TCP reset, else ICMP host unreachable. Without it a packet to a pod
          that just went away waits for ARP to fail or for the sender's connect timeout (5 s
          in NGINX), in the moment before its endpoint leaves every proxy's list; with it a
          proxy retries another endpoint at once (NGINX's proxy_next_upstream). A reset,
          because the kernel rate-limits the ICMP errors a route would send."""
        live = ", ".join(sorted(self._live))
        refuse = f"ip daddr {pod_cidr} ip daddr != {gateway} ip daddr != @pods"
        table = f"""table ip {MASQ_TABLE}
delete table ip {MASQ_TABLE}
table ip {MASQ_TABLE} {{
  set pods {{
    type ipv4_addr;{f" elements = {{ {live} }};" if live else ""}
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat + 10; policy accept;
    ip saddr {pod_cidr} ip daddr != {self.cluster_cidr} masquerade
  }}
  chain refuse {{
    meta l4proto tcp reject with tcp reset
    reject with icmp type host-unreachable
  }}
  chain forward {{
    type filter hook forward priority filter; policy accept;
    {refuse} goto refuse
  }}
  chain output {{
    type filter hook output priority filter; policy accept;
    {refuse} goto refuse
  }}
}}
"""
        await _nft(table)

    async def _set_live(self, ip: str, live: bool) -> None:
        if (ip in self._live) == live:
            return
        await _nft(f"{'add' if live else 'delete'} element ip {MASQ_TABLE} pods {{ {ip} }}\n")
        (self._live.add if live else self._live.discard)(ip)

    async def sync_routes(self, peers: dict[str, str]) -> None:
        """Makes the host-gw routes exactly `peers` ({other node's pod CIDR: its node IP})."""
        own = self.pod_cidr
        wanted = {str(ipaddress.ip_network(cidr)): ip for cidr, ip in peers.items()
                  if str(ipaddress.ip_network(cidr)) != own}
        current = {r["dst"]: r.get("gateway")
                   for r in await _ip_json(["-4", "route", "show", "proto", str(ROUTE_PROTO)])}
        lines = [f"route replace {cidr} via {ip} proto {ROUTE_PROTO}"
                 for cidr, ip in wanted.items() if current.get(cidr) != ip]
        lines += [f"route del {cidr} proto {ROUTE_PROTO}" for cidr in current if cidr not in wanted]
        await _ip_batch(lines)

    # ---- pods ------------------------------------------------------------------------------

    async def add_pod(self, pod_uid: str) -> str:
        """Wires pod `pod_uid` into the node and returns its IP. Idempotent: the same uid keeps
        its IP and its veth. On failure removes what it made and raises CNIError."""
        async with self._lock(pod_uid):
            ip = self.ipam.allocate(pod_uid, self._cidr())
            try:
                await self._set_live(ip, True)
                await self._wire(pod_uid, ip)
            except BaseException:
                await self._unwire(pod_uid)
                await self._set_live(ip, False)
                self.ipam.release(pod_uid)
                raise
            return ip

    async def _wire(self, pod_uid: str, ip: str) -> None:
        netns, veth = self.netns_name(pod_uid), veth_name(pod_uid)
        node = []
        if not _netns_exists(netns):
            node.append(f"netns add {netns}")
            if _link_exists(veth):        # left from an earlier namespace of this uid
                node.append(f"link del dev {veth}")
            node.append(f"link add name {veth} type veth peer name eth0 netns {netns}")
        elif not _link_exists(veth):
            node.append(f"link add name {veth} type veth peer name eth0 netns {netns}")
        node += [f"link set dev {veth} master {BRIDGE} up",
                 # hairpin: a pod that reaches a Service may be sent back to itself
                 f"link set dev {veth} type bridge_slave hairpin on"]
        await _ip_batch(node)
        prefixlen = ipaddress.ip_network(self._cidr()).prefixlen
        await _ip_batch(["link set dev lo up",
                         f"addr replace {ip}/{prefixlen} dev eth0",
                         "link set dev eth0 up",
                         f"route replace default via {self.gateway}"], netns=netns)

    async def remove_pod(self, pod_uid: str) -> None:
        """Removes the pod's namespace, veth and IP lease. Idempotent."""
        async with self._lock(pod_uid):
            ip = self.ipam.lease_of(pod_uid)
            await self._unwire(pod_uid)
            if ip:
                await self._set_live(ip, False)
            self.ipam.release(pod_uid)

    async def _unwire(self, pod_uid: str) -> None:
        netns, veth = self.netns_name(pod_uid), veth_name(pod_uid)
        lines = []
        # The veth first: that removes its peer at once, while a namespace is freed later.
        if _link_exists(veth):
            lines.append(f"link del dev {veth}")
        if _netns_exists(netns):
            lines.append(f"netns del {netns}")
        await _ip_batch(lines)

    async def pod_ips(self) -> dict[str, str]:
        """uid -> IP of every pod that holds a lease (what survives an agent restart)."""
        return self.ipam.leases()
