"""Rules from the model: what one Service port needs in the nanokube table.

Layout (see reference/nftables-scale.md): the count of kernel objects does not grow with Services
or endpoints in the common case.

- `service-ips` (VIP . proto . port -> verdict) and `service-nodeports` (proto . port -> verdict)
  dispatch every Service from one rule each in the `services` chain, as kube-proxy does.
- A plain Service (no affinity, both traffic policies Cluster) points at a *shared* chain picked
  by its endpoint count k: `cluster-n<k>`, `external-n<k>` or `nodeport-n<k>`. That chain does
  `dnat ... to <daddr . proto . dport> . numgen random mod k map @backends`, and the Service's
  endpoints are elements `VIP . proto . port . i : podIP . targetPort` of the one `backends` map
  (NodePorts: `nodeport-backends`, keyed proto . nodePort . i). Chains = distinct endpoint counts.
- Services that use ClientIP affinity or a Local traffic policy get their own few chains, as in
  kube-proxy (`service-`, `external-`, `cluster-`, `local-`), with an inline numgen map.
  Affinity: the policy chain sets a ct mark and first tries `dnat to ip saddr map @affinity-<chain>`
  (a dynamic map with the Service's timeout); after DNAT, a filter chain sees the mark and records
  `client ip -> chosen endpoint` in that map (a NAT statement ends the chain, so the choice can
  only be recorded after it).
- No usable endpoints: `no-endpoint-services`/`no-endpoint-nodeports` in filter chains before
  DNAT: reject (TCP reset, ICMP port unreachable) or, for a Local policy with no local endpoint, drop.
- Hairpin: a set of `podIP . podIP` pairs, masqueraded in postrouting when DNATed.
"""
from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field

from .model import Endpoint, ServicePort

MASQUERADE_MARK = "0x4000"  # kube-proxy's default masquerade bit (14)

SERVICE_IPS = "service-ips"
SERVICE_NODEPORTS = "service-nodeports"
NO_ENDPOINT_SERVICES = "no-endpoint-services"
NO_ENDPOINT_NODEPORTS = "no-endpoint-nodeports"
FIREWALL_IPS = "firewall-ips"
CLUSTER_IPS = "cluster-ips"
HAIRPIN = "hairpin"
BACKENDS = "backends"
NODEPORT_BACKENDS = "nodeport-backends"
AFFINITY_UPDATES = "affinity-updates"
NODEPORT_IPS = "nodeport-ips"
L4PROTOS = "l4protos"

REJECT = "goto reject-chain"
DROP = "drop"

# name -> (kind, spec)
STATIC_MAPS: dict[str, tuple[str, str]] = {
    L4PROTOS: ("set", "type inet_proto"),
    SERVICE_IPS: ("map", "type ipv4_addr . inet_proto . inet_service : verdict"),
    SERVICE_NODEPORTS: ("map", "type inet_proto . inet_service : verdict"),
    NO_ENDPOINT_SERVICES: ("map", "type ipv4_addr . inet_proto . inet_service : verdict"),
    NO_ENDPOINT_NODEPORTS: ("map", "type inet_proto . inet_service : verdict"),
    FIREWALL_IPS: ("map", "type ipv4_addr . inet_proto . inet_service : verdict"),
    CLUSTER_IPS: ("set", "type ipv4_addr"),
    HAIRPIN: ("set", "type ipv4_addr . ipv4_addr"),
    BACKENDS: ("map", "typeof ip daddr . meta l4proto . th dport . numgen random mod 16 "
                      ": ip daddr . th dport"),
    NODEPORT_BACKENDS: ("map", "typeof meta l4proto . th dport . numgen random mod 16 "
                               ": ip daddr . th dport"),
    AFFINITY_UPDATES: ("map", "type mark : verdict"),
    NODEPORT_IPS: ("set", "type ipv4_addr"),
}

PROTOCOLS = ("tcp", "udp", "sctp")

# nft 1.0.6 refuses the symbolic `dstnat` priority on the output hook: numbers everywhere.
BASE_CHAINS: dict[str, str] = {
    "filter-prerouting": "type filter hook prerouting priority -110",
    "filter-prerouting-post-dnat": "type filter hook prerouting priority -90",
    "filter-input": "type filter hook input priority -110",
    "filter-forward": "type filter hook forward priority -110",
    "filter-output": "type filter hook output priority -110",
    "filter-output-post-dnat": "type filter hook output priority -90",
    "nat-prerouting": "type nat hook prerouting priority -100",
    "nat-output": "type nat hook output priority -100",
    "nat-postrouting": "type nat hook postrouting priority 100",
}

NODEPORT_DADDR = "fib daddr type local ip daddr != 127.0.0.0/8"


def nodeport_match(addresses: str) -> str:
    """Which destinations accept NodePorts, as kube-proxy's --nodeport-addresses: "primary"
    (the nftables default) the node's own IPs, in the `nodeport-ips` set; "all" every local
    address but loopback (iptables mode's default); else a comma list of CIDRs, the local
    addresses within them. Raises ValueError for anything else."""
    if addresses == "primary":
        return f"ip daddr @{NODEPORT_IPS}"
    if addresses == "all":
        return NODEPORT_DADDR
    import ipaddress
    try:
        cidrs = [str(ipaddress.ip_network(c.strip(), strict=False))
                 for c in addresses.split(",") if c.strip()]
    except ValueError:
        cidrs = []
    if not cidrs or any(":" in c for c in cidrs):
        raise ValueError(f"invalid --nodeport-addresses {addresses!r}: want primary, all, "
                         "or IPv4 CIDRs separated by commas")
    return f"fib daddr type local ip daddr {{ {', '.join(cidrs)} }}"


def static_chains(cluster_cidr: str, service_cidr: str,
                  nodeports: str = NODEPORT_DADDR) -> dict[str, list[str]]:
    """The fixed chains and their rules (base chains first)."""
    return {
        "filter-prerouting": ["ct state new jump firewall-check"],
        "filter-prerouting-post-dnat": [f"ct state new ct mark vmap @{AFFINITY_UPDATES}"],
        "filter-input": ["ct state new jump nodeport-endpoints-check",
                         "ct state new jump service-endpoints-check"],
        "filter-forward": ["ct state new jump service-endpoints-check",
                           "ct state new jump cluster-ips-check"],
        "filter-output": ["ct state new jump service-endpoints-check",
                          "ct state new jump firewall-check"],
        "filter-output-post-dnat": [f"ct state new ct mark vmap @{AFFINITY_UPDATES}",
                                    "ct state new jump cluster-ips-check"],
        "nat-prerouting": ["jump services"],
        "nat-output": ["jump services"],
        "nat-postrouting": ["jump masquerading"],
        "services": [f"ip daddr . meta l4proto . th dport vmap @{SERVICE_IPS}",
                     f"{nodeports} meta l4proto . th dport vmap @{SERVICE_NODEPORTS}"],
        "service-endpoints-check": [f"ip daddr . meta l4proto . th dport vmap @{NO_ENDPOINT_SERVICES}"],
        "nodeport-endpoints-check": [
            f"{nodeports} meta l4proto . th dport vmap @{NO_ENDPOINT_NODEPORTS}"],
        "firewall-check": [f"ip daddr . meta l4proto . th dport vmap @{FIREWALL_IPS}"],
        # after DNAT: what still goes to a service IP is a wrong port or an unallocated IP
        "cluster-ips-check": [f"ip daddr @{CLUSTER_IPS} reject", f"ip daddr {service_cidr} drop"],
        "mark-for-masquerade": [f"meta mark set meta mark | {MASQUERADE_MARK}"],
        # Plain `masquerade`, where kube-proxy writes `masquerade fully-random`: measured here
        # (bench/dataplane.py), fully-random cost a quarter of the new-connection rate through
        # a NodePort (0.86 -> 1.16-1.20 of pod->pod). It guards against two CPUs picking the
        # same source port at once; should that show (`conntrack -S` insert_failed in a node),
        # this is the line to change back.
        "masquerading": [f"ct status dnat ip saddr . ip daddr @{HAIRPIN} masquerade",
                         f"meta mark & {MASQUERADE_MARK} == 0 return",
                         f"meta mark set meta mark ^ {MASQUERADE_MARK}",
                         "masquerade"],
        "reject-chain": ["meta l4proto tcp reject with tcp reset", "reject"],
    }


def shared_chain_rules(name: str, cluster_cidr: str) -> list[str]:
    """Rules of a shared endpoint-count chain: `cluster-n3`, `external-n3`, `nodeport-n3`."""
    kind, _, count = name.rpartition("-n")
    k = int(count)
    if kind == "cluster":
        return [f"ip saddr != {cluster_cidr} jump mark-for-masquerade",
                f"meta l4proto @{L4PROTOS} dnat ip addr . port to ip daddr . meta l4proto . th dport"
                f" . numgen random mod {k} map @{BACKENDS}"]
    if kind == "external":
        return ["jump mark-for-masquerade",
                f"meta l4proto @{L4PROTOS} dnat ip addr . port to ip daddr . meta l4proto . th dport"
                f" . numgen random mod {k} map @{BACKENDS}"]
    if kind == "nodeport":
        return ["jump mark-for-masquerade",
                f"meta l4proto @{L4PROTOS} dnat ip addr . port to meta l4proto . th dport"
                f" . numgen random mod {k} map @{NODEPORT_BACKENDS}"]
    raise ValueError(f"not a shared chain: {name}")


def short_hash(text: str) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:8]


def chain_name(prefix: str, sp: ServicePort) -> str:
    """kube-proxy's naming: `<prefix>-<hash>-ns/svc/proto/portname`."""
    return f"{prefix}-{short_hash(sp.id)}-{sp.id}"


def affinity_mark(chain: str) -> int:
    """The ct mark naming a policy chain's affinity map (non-zero, 31 bits, stable)."""
    h = int.from_bytes(hashlib.sha256(chain.encode()).digest()[:4], "big")
    return h % 0x7FFFFFFE + 1


@dataclass
class ServiceRules:
    """Everything one Service contributes; the proxier diffs two of these."""

    # (map or set name, key) -> value (None for set elements)
    elements: dict[tuple[str, str], str | None] = field(default_factory=dict)
    chains: dict[str, list[str]] = field(default_factory=dict)  # chains owned by the Service
    maps: dict[str, str] = field(default_factory=dict)  # maps owned by the Service: name -> spec
    shared: set[str] = field(default_factory=set)  # shared chains it points at
    # affinity map -> the endpoints its entries may point at (to flush it when one goes)
    affinity_endpoints: dict[str, frozenset[tuple[str, int]]] = field(default_factory=dict)

    def merge(self, other: "ServiceRules") -> None:
        self.elements.update(other.elements)
        self.chains.update(other.chains)
        self.maps.update(other.maps)
        self.shared |= other.shared
        self.affinity_endpoints.update(other.affinity_endpoints)


def render_service(ports: list[ServicePort], cluster_cidr: str) -> ServiceRules:
    rules = ServiceRules()
    for sp in ports:
        if sp.protocol in PROTOCOLS:
            rules.merge(render_port(sp, cluster_cidr))
    return rules


def render_port(sp: ServicePort, cluster_cidr: str) -> ServiceRules:
    r = ServiceRules()
    el = r.elements
    proto = sp.protocol
    cluster = sp.cluster_endpoints()
    local = sp.local_endpoints()

    def vip(ip: str) -> str:
        return f"{ip} . {proto} . {sp.port}"

    nodeport = f"{proto} . {sp.node_port}" if sp.node_port else None
    externals = sp.external_vips

    el[(CLUSTER_IPS, sp.cluster_ip)] = None
    for e in cluster + local:
        if e.is_local:  # only a pod on this node can reach itself through our DNAT
            el[(HAIRPIN, f"{e.ip} . {e.ip}")] = None

    if sp.load_balancer_source_ranges and sp.load_balancer_ips:
        fw = chain_name("firewall", sp)
        r.chains[fw] = [f"ip saddr != {{ {', '.join(sp.load_balancer_source_ranges)} }} drop"]
        for ip in sp.load_balancer_ips:
            el[(FIREWALL_IPS, vip(ip))] = f"goto {fw}"

    if not cluster:  # no ready (nor serving+terminating) endpoint anywhere: refuse at once
        for ip in (sp.cluster_ip, *externals):
            el[(NO_ENDPOINT_SERVICES, vip(ip))] = REJECT
        if nodeport:
            el[(NO_ENDPOINT_NODEPORTS, nodeport)] = REJECT
        return r

    internal = local if sp.internal_policy_local else cluster
    external = local if sp.external_policy_local else cluster

    if not (sp.affinity_timeout or sp.internal_policy_local or sp.external_policy_local):
        _render_shared(r, sp, cluster, vip, nodeport, externals)
        return r

    def policy(kind: str, eps: tuple[Endpoint, ...]) -> str:
        name = chain_name(kind, sp)
        if name not in r.chains:
            r.chains[name] = _policy_rules(r, name, eps, sp.affinity_timeout, sp.protocol)
        return name

    if internal:
        svc_chain = chain_name("service", sp)
        target = policy("local", local) if sp.internal_policy_local else policy("cluster", cluster)
        r.chains[svc_chain] = [f"ip saddr != {cluster_cidr} jump mark-for-masquerade", f"goto {target}"]
        el[(SERVICE_IPS, vip(sp.cluster_ip))] = f"goto {svc_chain}"
    else:  # internalTrafficPolicy Local and no endpoint on this node
        el[(NO_ENDPOINT_SERVICES, vip(sp.cluster_ip))] = DROP

    if not (externals or nodeport):
        return r
    if not external:  # externalTrafficPolicy Local and no endpoint on this node
        for ip in externals:
            el[(NO_ENDPOINT_SERVICES, vip(ip))] = DROP
        if nodeport:
            el[(NO_ENDPOINT_NODEPORTS, nodeport)] = DROP
        return r
    ext_chain = chain_name("external", sp)
    to_cluster = policy("cluster", cluster)
    if sp.external_policy_local:
        r.chains[ext_chain] = [
            # pods reaching an external address act as if they went out and came back
            f"ip saddr {cluster_cidr} goto {to_cluster}",
            # the node itself: masquerade so replies come back through us
            "fib saddr type local jump mark-for-masquerade",
            f"fib saddr type local goto {to_cluster}",
            # everybody else: local endpoints only, source IP preserved
            f"goto {policy('local', local)}",
        ]
    else:
        r.chains[ext_chain] = ["jump mark-for-masquerade", f"goto {to_cluster}"]
    for ip in externals:
        el[(SERVICE_IPS, vip(ip))] = f"goto {ext_chain}"
    if nodeport:
        el[(SERVICE_NODEPORTS, nodeport)] = f"goto {ext_chain}"
    return r


def _render_shared(r: ServiceRules, sp: ServicePort, eps: tuple[Endpoint, ...], vip, nodeport,
                   externals) -> None:
    k = len(eps)
    proto = sp.protocol
    r.shared.add(f"cluster-n{k}")
    r.elements[(SERVICE_IPS, vip(sp.cluster_ip))] = f"goto cluster-n{k}"
    for i, e in enumerate(eps):
        r.elements[(BACKENDS, f"{vip(sp.cluster_ip)} . {i}")] = f"{e.ip} . {e.port}"
    if externals:
        r.shared.add(f"external-n{k}")
        for ip in externals:
            r.elements[(SERVICE_IPS, vip(ip))] = f"goto external-n{k}"
            for i, e in enumerate(eps):
                r.elements[(BACKENDS, f"{vip(ip)} . {i}")] = f"{e.ip} . {e.port}"
    if nodeport:
        r.shared.add(f"nodeport-n{k}")
        r.elements[(SERVICE_NODEPORTS, nodeport)] = f"goto nodeport-n{k}"
        for i, e in enumerate(eps):
            r.elements[(NODEPORT_BACKENDS, f"{proto} . {sp.node_port} . {i}")] = f"{e.ip} . {e.port}"


def _policy_rules(r: ServiceRules, chain: str, eps: tuple[Endpoint, ...], affinity: int,
                  proto: str) -> list[str]:
    """A per-Service endpoint chain: affinity lookup (if any), then a fair random choice."""
    rules = []
    if affinity:
        amap = f"affinity-{affinity}s-{chain}"  # a new timeout is a new map
        update = f"affinity-update-{chain}"
        mark = affinity_mark(chain)
        r.maps[amap] = (f"type ipv4_addr : ipv4_addr . inet_service ; flags dynamic,timeout ; "
                        f"timeout {affinity}s ; size 65535")
        r.chains[update] = [f"update @{amap} {{ ip saddr : ip daddr . th dport }}"]
        r.elements[(AFFINITY_UPDATES, f"{mark:#x}")] = f"goto {update}"
        r.affinity_endpoints[amap] = frozenset((e.ip, e.port) for e in eps)
        rules.append(f"ct mark set {mark:#x}")
        rules.append(f"meta l4proto {proto} dnat ip addr . port to ip saddr map @{amap}")
    choices = ", ".join(f"{i} : {e.ip} . {e.port}" for i, e in enumerate(eps))
    rules.append(f"meta l4proto {proto} dnat ip addr . port to numgen random mod {len(eps)} "
                 f"map {{ {choices} }}")
    return rules
