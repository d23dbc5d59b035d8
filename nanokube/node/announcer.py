"""LoadBalancer address announcement on the LAN: MetalLB's L2 mode, in the node agent.

For every LoadBalancer Service with IPv4 addresses in status.loadBalancer.ingress, exactly one
node answers ARP for each address, so the LAN sends the address's traffic to that node, whose
proxier rules DNAT it to the Service's endpoints (every node's proxier accepts it). There is no
coordination: every agent computes the same owner from its watch caches, and only the owner
answers.

The election is MetalLB's: the candidate nodes are sorted by sha256(node name + "#" + ip) and
the first wins. Candidates are the nodes that are alive (see below); with externalTrafficPolicy
Local only those with a ready endpoint of the Service on them (EndpointSlices' nodeName); and, as
MetalLB's speaker does, nobody announces a Service without any ready endpoint.

A node is alive when its Node is Ready (condition True) and not being deleted, and its Lease in
kube-node-lease was renewed recently. MetalLB detects dead speakers in about a second with
memberlist; we have no gossip, so we read the Leases directly rather than wait for the node
lifecycle controller to mark the Node Unknown (about 8 s after the last renewal): a node whose
Lease is older than max(LEASE_GRACE, 1.5 renew intervals) (renew interval =
leaseDurationSeconds / 4, the kubelet's pace) is out. That is 3.75 s with the default 10 s lease,
so an address moves within about 4 s of its announcer's agent dying. If every Lease looks stale
the API server (or our watch) is the problem, not the nodes, so the Lease check is then skipped
rather than withdrawing every address.

ARP is answered from userspace, on an AF_PACKET socket bound to eth0, as MetalLB's speaker does:
the address is never a local address of the node (so its kernel never answers for it), and when
the agent dies the node stops answering at once. Taking an address over sends gratuitous ARP
(request and reply, 3 rounds about 1.1 s apart) so that the LAN's ARP caches move at once.

An agent restart resyncs from scratch: after its caches are listed it announces what it owns
and sends gratuitous ARP for it.
"""
from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import socket
import struct
import time
from dataclasses import dataclass
from typing import Iterable

from nanokube.api.selectors import from_label_selector_object
from nanokube.apitime import parse_time
from nanokube.cloudprovider import is_our_class
from nanokube.controllers.informer import Informer

log = logging.getLogger("nanokube.node.announcer")

ETH_P_ARP = 0x0806
ETH_P_IP = 0x0800
ARP_REQUEST, ARP_REPLY = 1, 2
BROADCAST = b"\xff" * 6
ZERO_MAC = b"\x00" * 6
PACKET_OUTGOING = 4            # sll_pkttype of frames this host sent

LEASE_GRACE = 3.0              # seconds a Lease may go unrenewed before its node is out
GRATUITOUS_ROUNDS = 3
GRATUITOUS_INTERVAL = 1.1
RECHECK_EVERY = 0.25           # Leases age without events: re-elect on a timer too
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


# ---- ARP frames ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Arp:
    op: int
    sender_mac: bytes
    sender_ip: str
    target_mac: bytes
    target_ip: str
    eth_src: bytes = ZERO_MAC
    eth_dst: bytes = BROADCAST


_ARP = struct.Struct("!6s6sHHHBBH6s4s6s4s")    # Ethernet header + ARP for IPv4 over Ethernet


def build_arp(arp: Arp) -> bytes:
    """An Ethernet frame carrying `arp` (padded to the 60-byte Ethernet minimum)."""
    frame = _ARP.pack(arp.eth_dst, arp.eth_src, ETH_P_ARP, 1, ETH_P_IP, 6, 4, arp.op,
                      arp.sender_mac, socket.inet_aton(arp.sender_ip),
                      arp.target_mac, socket.inet_aton(arp.target_ip))
    return frame.ljust(60, b"\0")


def parse_arp(frame: bytes) -> Arp | None:
    """The ARP packet in an Ethernet frame, or None for anything but IPv4-over-Ethernet ARP."""
    if len(frame) < _ARP.size:
        return None
    (dst, src, ethertype, htype, ptype, hlen, plen, op, sha, spa, tha, tpa) = \
        _ARP.unpack_from(frame)
    if ethertype != ETH_P_ARP or htype != 1 or ptype != ETH_P_IP or hlen != 6 or plen != 4:
        return None
    return Arp(op, sha, socket.inet_ntoa(spa), tha, socket.inet_ntoa(tpa), src, dst)


def arp_reply(request: Arp, mac: bytes) -> Arp:
    """`mac` has request.target_ip: the answer, unicast to whoever asked."""
    return Arp(ARP_REPLY, mac, request.target_ip, request.sender_mac, request.sender_ip,
               eth_src=mac, eth_dst=request.sender_mac)


def gratuitous(ip: str, mac: bytes) -> list[Arp]:
    """Both forms MetalLB sends: a broadcast request and a broadcast reply, sender = target = ip
    (Linux updates an existing neighbour entry from either, regardless of its locktime)."""
    return [Arp(ARP_REQUEST, mac, ip, ZERO_MAC, ip, eth_src=mac),
            Arp(ARP_REPLY, mac, ip, BROADCAST, ip, eth_src=mac)]


def format_mac(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


# ---- the election ------------------------------------------------------------------------------

def elect(candidates: Iterable[str], ip: str) -> str | None:
    """MetalLB's L2 rule: sort by sha256(node + "#" + ip); the first announces."""
    ordered = sorted(candidates, key=lambda n: hashlib.sha256(f"{n}#{ip}".encode()).digest())
    return ordered[0] if ordered else None


def lease_fresh(lease: dict, now: float, grace: float = LEASE_GRACE) -> bool:
    spec = lease.get("spec") or {}
    renewed = parse_time(spec.get("renewTime"))
    if renewed is None:
        return False
    duration = float(spec.get("leaseDurationSeconds") or 40)
    return now - renewed <= max(grace, 1.5 * duration / 4)


def node_alive(node: dict) -> bool:
    if (node.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


def live_nodes(nodes: Iterable[dict], leases: dict[str, dict], now: float,
               grace: float = LEASE_GRACE) -> set[str]:
    """Ready nodes, less those whose Lease is stale (unless every Lease is: see the module)."""
    ready = {n["metadata"]["name"] for n in nodes if node_alive(n)}
    fresh = {name for name in ready
             if name not in leases or lease_fresh(leases[name], now, grace)}
    return fresh if fresh or not ready else ready


def announced_ips(service: dict) -> list[str]:
    """The IPv4 addresses a Service asks us to announce."""
    spec = service.get("spec") or {}
    if spec.get("type") != "LoadBalancer" or not is_our_class(service):
        return []       # another load balancer implementation's Service
    out = []
    for ingress in ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
        try:
            if ipaddress.ip_address(ingress.get("ip") or "").version == 4:
                out.append(ingress["ip"])
        except ValueError:
            continue
    return out


def ready_endpoint_nodes(slices: Iterable[dict]) -> tuple[bool, set[str]]:
    """(any ready endpoint at all, the nodes having one). A missing ready condition means ready,
    as the EndpointSlice API says."""
    any_ready, nodes = False, set()
    for s in slices:
        for ep in s.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready") is False:
                continue
            any_ready = True
            if ep.get("nodeName"):
                nodes.add(ep["nodeName"])
    return any_ready, nodes


POOL_ANNOTATION = "metallb.io/ip-allocated-from-pool"


def _selected(selectors: list[dict] | None, labels: dict) -> bool:
    """Any of MetalLB's selector lists matches (an empty list selects everything)."""
    if not selectors:
        return True
    return any(from_label_selector_object(sel).matches(labels or {}) for sel in selectors)


def advertised_nodes(svc: dict, pools: list[dict], advertisements: list[dict],
                     nodes: list[dict]) -> set[str] | None:
    """The nodes allowed to announce the Service's address by the L2Advertisements of its
    pool (their nodeSelectors); None: any node (an address no pool allocated). As in MetalLB,
    a pool that no L2Advertisement covers is not announced at all."""
    pool_name = ((svc.get("metadata") or {}).get("annotations") or {}).get(POOL_ANNOTATION)
    pool = next((p for p in pools if p["metadata"]["name"] == pool_name), None)
    if pool is None:
        return None
    allowed: set[str] = set()
    for ad in advertisements:
        spec = ad.get("spec") or {}
        names = spec.get("ipAddressPools") or []
        pool_selectors = spec.get("ipAddressPoolSelectors") or []
        if names or pool_selectors:
            covers = pool_name in names or (pool_selectors and _selected(
                pool_selectors, pool["metadata"].get("labels") or {}))
            if not covers:
                continue
        allowed |= {n["metadata"]["name"] for n in nodes
                    if _selected(spec.get("nodeSelectors"), n["metadata"].get("labels") or {})}
    return allowed


def owners(services: Iterable[dict], slices_of, alive: set[str],
           allowed_for=lambda svc: None) -> dict[str, str]:
    """ip -> announcing node, for every announceable address. `slices_of(namespace, name)` gives
    the Service's EndpointSlices; `allowed_for(svc)` the nodes its advertisements allow."""
    result: dict[str, str] = {}
    for svc in services:
        ips = announced_ips(svc)
        if not ips:
            continue
        meta = svc["metadata"]
        any_ready, local = ready_endpoint_nodes(slices_of(meta.get("namespace"), meta["name"]))
        if not any_ready:
            continue
        candidates = alive
        allowed = allowed_for(svc)
        if allowed is not None:
            candidates = candidates & allowed
        if (svc.get("spec") or {}).get("externalTrafficPolicy") == "Local":
            candidates = alive & local
        for ip in ips:
            owner = elect(candidates, ip)
            # Services sharing an IP (allow-shared-ip) elect the same owner for Cluster policy;
            # keep the first answer so one address never has two announcers.
            if owner is not None and ip not in result:
                result[ip] = owner
    return result


# ---- the announcer -------------------------------------------------------------------------------

class Announcer:
    """Answers ARP on `interface` for the addresses this node wins."""

    def __init__(self, client, node_name: str, nodes: Informer, services: Informer,
                 slices: Informer, interface: str = "eth0", lease_grace: float = LEASE_GRACE):
        self.node_name = node_name
        self.nodes = nodes
        self.services = services
        self.slices = slices
        self.leases = Informer(client, "coordination.k8s.io", "v1", "leases", "kube-node-lease")
        self.pools = Informer(client, "metallb.io", "v1beta1", "ipaddresspools")
        self.advertisements = Informer(client, "metallb.io", "v1beta1", "l2advertisements")
        self.interface = interface
        self.lease_grace = lease_grace
        self.mac = ZERO_MAC
        self.announcing: set[str] = set()
        self._sock: socket.socket | None = None
        self._changed = asyncio.Event()
        self._gratuitous: dict[str, asyncio.Task] = {}
        self._own = (self.leases, self.pools, self.advertisements)   # run by the announcer
        for informer in (nodes, services, slices, *self._own):
            informer.add_handler(self._on_change)

    def _on_change(self, old: dict | None, new: dict | None) -> None:
        self._changed.set()

    def _slices_of(self, namespace: str | None, name: str) -> list[dict]:
        return [s for s in self.slices.list(namespace)
                if ((s.get("metadata") or {}).get("labels") or {}).get(SERVICE_NAME_LABEL)
                == name]

    def desired(self, now: float | None = None) -> set[str]:
        """The addresses this node should answer for, from the caches."""
        leases = {l["metadata"]["name"]: l for l in self.leases.list()}
        alive = live_nodes(self.nodes.list(), leases, time.time() if now is None else now,
                           self.lease_grace)
        pools, ads, nodes = self.pools.list(), self.advertisements.list(), self.nodes.list()
        return {ip for ip, node in owners(
            self.services.list(), self._slices_of, alive,
            lambda svc: advertised_nodes(svc, pools, ads, nodes)).items()
            if node == self.node_name}

    # ---- life ----------------------------------------------------------------------------
    async def run(self) -> None:
        """Runs the Lease and MetalLB informers (the agent runs the others); until cancelled."""
        watches = [asyncio.create_task(i.run(), name=f"{i.plural}-informer") for i in self._own]
        try:
            await self._open_until_done()
            for informer in (self.nodes, self.services, self.slices, *self._own):
                await informer.synced.wait()
            while True:
                self.sync()
                try:
                    await asyncio.wait_for(self._changed.wait(), RECHECK_EVERY)
                except asyncio.TimeoutError:
                    pass
                self._changed.clear()
        finally:
            for task in (*watches, *self._gratuitous.values()):
                task.cancel()
            await asyncio.gather(*watches, *self._gratuitous.values(), return_exceptions=True)
            self._close()

    async def _open_until_done(self) -> None:
        """A missing interface or privilege must not stop the rest of the agent: retry."""
        while True:
            try:
                self._open()
                break
            except OSError as e:
                log.error("announcer: cannot open ARP socket on %s: %s", self.interface, e)
                await asyncio.sleep(5)
        asyncio.get_running_loop().add_reader(self._sock.fileno(), self._on_readable)

    def _open(self) -> None:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
        sock.bind((self.interface, ETH_P_ARP))
        sock.setblocking(False)
        self.mac = sock.getsockname()[4][:6]
        self._sock = sock
        log.info("announcer: answering ARP on %s (%s)", self.interface, format_mac(self.mac))

    def _close(self) -> None:
        if self._sock is not None:
            try:
                asyncio.get_running_loop().remove_reader(self._sock.fileno())
            except (RuntimeError, ValueError):
                pass
            self._sock.close()
            self._sock = None

    def sync(self) -> None:
        want = self.desired()
        for ip in sorted(want - self.announcing):
            log.info("announcer: announcing %s from %s", ip, self.node_name)
            self._gratuitous[ip] = asyncio.create_task(self._send_gratuitous(ip))
        for ip in sorted(self.announcing - want):
            log.info("announcer: withdrawing %s", ip)
            task = self._gratuitous.pop(ip, None)
            if task is not None:
                task.cancel()
        self.announcing = want

    # ---- the wire ---------------------------------------------------------------------------
    def _send(self, arp: Arp) -> None:
        try:
            self._sock.send(build_arp(arp))
        except (OSError, AttributeError) as e:
            log.warning("announcer: sending ARP for %s: %s", arp.sender_ip, e)

    async def _send_gratuitous(self, ip: str) -> None:
        try:
            for round_ in range(GRATUITOUS_ROUNDS):
                if round_:
                    await asyncio.sleep(GRATUITOUS_INTERVAL)
                if ip not in self.announcing and round_:
                    return
                for arp in gratuitous(ip, self.mac):
                    self._send(arp)
        finally:
            if self._gratuitous.get(ip) is asyncio.current_task():
                del self._gratuitous[ip]

    def _on_readable(self) -> None:
        while self._sock is not None:
            try:
                frame, address = self._sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                log.warning("announcer: reading %s: %s", self.interface, e)
                return
            if address[2] == PACKET_OUTGOING:
                continue
            arp = parse_arp(frame)
            if arp is None or arp.op != ARP_REQUEST or arp.sender_mac == self.mac:
                continue
            if arp.target_ip in self.announcing:
                self._send(arp_reply(arp, self.mac))
