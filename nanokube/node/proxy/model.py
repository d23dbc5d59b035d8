"""In-memory model of the Services and EndpointSlices one node's proxier programs.

The model turns API objects (JSON-shaped dicts, as on the wire) into `ServicePort`s: one per
(Service, port), with the addresses it is reachable on and its endpoints already categorised as
kube-proxy does (pkg/proxy/topology.go CategorizeEndpoints). Only IPv4 is handled: the table is
`ip` family, as kube-proxy keeps one table per family.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
DEFAULT_AFFINITY_TIMEOUT = 10800  # seconds, Kubernetes' default for ClientIP affinity

ServiceKey = tuple[str, str]  # (namespace, name)


@dataclass(frozen=True, order=True)
class Endpoint:
    ip: str
    port: int
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    is_local: bool = False


@dataclass(frozen=True)
class ServicePort:
    namespace: str
    name: str
    port_name: str
    protocol: str  # "tcp" | "udp" | "sctp" (nft spelling)
    cluster_ip: str
    port: int
    node_port: int = 0
    external_ips: tuple[str, ...] = ()
    load_balancer_ips: tuple[str, ...] = ()
    load_balancer_source_ranges: tuple[str, ...] = ()
    affinity_timeout: int = 0  # 0 = no ClientIP affinity
    external_policy_local: bool = False
    internal_policy_local: bool = False
    health_check_node_port: int = 0
    endpoints: tuple[Endpoint, ...] = ()

    @property
    def id(self) -> str:
        """kube-proxy's ServicePortName spelling, used in chain names and comments."""
        return f"{self.namespace}/{self.name}/{self.protocol}/{self.port_name}"

    @property
    def external_vips(self) -> tuple[str, ...]:
        """ExternalIPs and LoadBalancer ingress IPs: both take the `external` path."""
        seen: list[str] = []
        for ip in self.external_ips + self.load_balancer_ips:
            if ip not in seen and ip != self.cluster_ip:
                seen.append(ip)
        return tuple(seen)

    def cluster_endpoints(self) -> tuple[Endpoint, ...]:
        """Ready endpoints; if there are none, the serving+terminating ones (KEP-1669)."""
        return _usable(self.endpoints)

    def local_endpoints(self) -> tuple[Endpoint, ...]:
        return _usable(tuple(e for e in self.endpoints if e.is_local))

    def ready_local_count(self) -> int:
        return sum(1 for e in self.endpoints if e.is_local and e.ready)


def _usable(eps: tuple[Endpoint, ...]) -> tuple[Endpoint, ...]:
    ready = tuple(e for e in eps if e.ready)
    if ready:
        return ready
    return tuple(e for e in eps if e.serving and e.terminating)


def _is_ipv4(ip: str | None) -> bool:
    if not ip:
        return False
    try:
        return ipaddress.ip_address(ip).version == 4
    except ValueError:
        return False


def _meta_key(obj: dict) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "default", meta.get("name") or ""


def slice_service_key(eps: dict) -> ServiceKey | None:
    meta = eps.get("metadata") or {}
    name = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    if not name:
        return None
    return meta.get("namespace") or "default", name


@dataclass
class ProxyModel:
    """Services and EndpointSlices as last seen, indexed for one node."""

    node_name: str
    pod_cidr: str | None = None
    services: dict[ServiceKey, dict] = field(default_factory=dict)
    # service key -> slice name -> slice
    slices: dict[ServiceKey, dict[str, dict]] = field(default_factory=dict)
    # (namespace, slice name) -> service key, to notice a slice changing its service label
    _slice_owner: dict[tuple[str, str], ServiceKey] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._pod_net = ipaddress.ip_network(self.pod_cidr) if self.pod_cidr else None

    # --- updates: each returns the service keys whose rules may have changed
    def update_service(self, event_type: str, svc: dict) -> set[ServiceKey]:
        key = _meta_key(svc)
        if event_type == "DELETED":
            self.services.pop(key, None)
        else:
            self.services[key] = svc
        return {key}

    def update_endpointslice(self, event_type: str, eps: dict) -> set[ServiceKey]:
        ns, slice_name = _meta_key(eps)
        changed: set[ServiceKey] = set()
        old_owner = self._slice_owner.pop((ns, slice_name), None)
        if old_owner is not None:
            self.slices.get(old_owner, {}).pop(slice_name, None)
            if not self.slices.get(old_owner, True):
                del self.slices[old_owner]
            changed.add(old_owner)
        owner = slice_service_key(eps)
        if event_type != "DELETED" and owner is not None:
            self.slices.setdefault(owner, {})[slice_name] = eps
            self._slice_owner[(ns, slice_name)] = owner
            changed.add(owner)
        return changed

    # --- queries
    def service_ports(self, key: ServiceKey) -> list[ServicePort]:
        svc = self.services.get(key)
        if svc is None:
            return []
        spec = svc.get("spec") or {}
        svc_type = spec.get("type") or "ClusterIP"
        cluster_ip = spec.get("clusterIP")
        if svc_type == "ExternalName" or not _is_ipv4(cluster_ip):
            return []  # headless, ExternalName or IPv6-only: nothing to program in an ip table
        lb_ips: tuple[str, ...] = ()
        if svc_type == "LoadBalancer":
            ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
            # ipMode Proxy means the load balancer does not keep the VIP: do not program it
            lb_ips = tuple(i["ip"] for i in ingress
                           if _is_ipv4(i.get("ip")) and i.get("ipMode", "VIP") != "Proxy")
        affinity = 0
        if spec.get("sessionAffinity") == "ClientIP":
            cfg = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
            affinity = int(cfg.get("timeoutSeconds") or DEFAULT_AFFINITY_TIMEOUT)
        external_local = (spec.get("externalTrafficPolicy") == "Local"
                          and (svc_type in ("NodePort", "LoadBalancer") or bool(spec.get("externalIPs"))))
        ports = []
        for p in spec.get("ports") or []:
            protocol = (p.get("protocol") or "TCP").lower()
            port_name = p.get("name") or ""
            ports.append(ServicePort(
                namespace=key[0], name=key[1], port_name=port_name, protocol=protocol,
                cluster_ip=cluster_ip, port=int(p["port"]),
                node_port=int(p.get("nodePort") or 0) if svc_type in ("NodePort", "LoadBalancer") else 0,
                external_ips=tuple(ip for ip in spec.get("externalIPs") or [] if _is_ipv4(ip)),
                load_balancer_ips=lb_ips,
                load_balancer_source_ranges=tuple(spec.get("loadBalancerSourceRanges") or ())
                if svc_type == "LoadBalancer" else (),
                affinity_timeout=affinity,
                external_policy_local=external_local,
                internal_policy_local=spec.get("internalTrafficPolicy") == "Local",
                health_check_node_port=int(spec.get("healthCheckNodePort") or 0)
                if external_local and svc_type == "LoadBalancer" else 0,
                endpoints=self._endpoints_for(key, port_name, protocol),
            ))
        return ports

    def _endpoints_for(self, key: ServiceKey, port_name: str, protocol: str) -> tuple[Endpoint, ...]:
        found: dict[tuple[str, int], Endpoint] = {}
        for eps in self.slices.get(key, {}).values():
            if eps.get("addressType", "IPv4") != "IPv4":
                continue
            port = None
            for sp in eps.get("ports") or []:
                if (sp.get("name") or "") == port_name and (sp.get("protocol") or "TCP").lower() == protocol:
                    port = sp.get("port")
                    break
            if port is None:
                continue
            for ep in eps.get("endpoints") or []:
                cond = ep.get("conditions") or {}
                ready = cond.get("ready") is not False  # nil means ready
                serving = cond.get("serving") if cond.get("serving") is not None else ready
                terminating = bool(cond.get("terminating"))
                for ip in ep.get("addresses") or []:
                    if not _is_ipv4(ip):
                        continue
                    e = Endpoint(ip=ip, port=int(port), ready=ready, serving=bool(serving),
                                 terminating=terminating, is_local=self._is_local(ep, ip))
                    # an address listed by two slices (during a rollover) counts once; ready wins
                    if (ip, int(port)) not in found or e.ready:
                        found[(ip, int(port))] = e
        return tuple(sorted(found.values()))

    def _is_local(self, ep: dict, ip: str) -> bool:
        node = ep.get("nodeName")
        if node:
            return node == self.node_name
        return self._pod_net is not None and ipaddress.ip_address(ip) in self._pod_net
