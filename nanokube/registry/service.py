"""The Service kind: SetDefaults_Service, ValidateService(Update), the service strategy's
PrepareFor* hooks, warnings, table columns, and the allocation hooks (nanokube/allocators).

Kubernetes allocates (BeginCreate/BeginUpdate) *before* it validates, so an allocation error
(a taken nodePort, an IP outside the range) is reported alone. The generic machinery here
validates first, so validate()/validate_update() run the allocation as a dry run on a copy:
its errors are returned alone, and the rest of the validation sees the values that the real
allocation in begin_create()/begin_update() will fill in.
"""
from __future__ import annotations

import copy
import ipaddress
from typing import Any

from nanokube.allocators.service import (
    CLUSTER_IP, EXTERNAL_NAME, LOAD_BALANCER, NODE_PORT, NONE,
    InternalAllocation, InvalidAllocation, ServiceAllocators, externally_accessible, go_families,
    go_strings, is_headless, needs_cluster_ip, needs_health_check, needs_node_port,
    same_cluster_ips, same_ip_families)
from nanokube.api import errors as E
from nanokube.api.errors import FieldError, GoLiteral
from nanokube.api.tables import age
from nanokube.registry import validation as V
from nanokube.registry.base import AGE_COLUMN, NAME_COLUMN, Column, ServerConfig, Strategy, Txn

DEFAULT_CLIENT_IP_TIMEOUT = 10800       # DefaultClientIPServiceAffinitySeconds
MAX_CLIENT_IP_TIMEOUT = 86400           # MaxClientIPServiceAffinitySeconds
TOPOLOGY_HINTS = "service.kubernetes.io/topology-aware-hints"
TOPOLOGY_MODE = "service.kubernetes.io/topology-mode"
LB_SOURCE_RANGES = "service.beta.kubernetes.io/load-balancer-source-ranges"

SERVICE_TYPES = [CLUSTER_IP, EXTERNAL_NAME, LOAD_BALANCER, NODE_PORT]
PROTOCOLS = ["SCTP", "TCP", "UDP"]
AFFINITIES = ["ClientIP", "None"]
TRAFFIC_POLICIES = ["Cluster", "Local"]
IP_FAMILIES = ["IPv4", "IPv6"]
IP_FAMILY_POLICIES = ["PreferDualStack", "RequireDualStack", "SingleStack"]


# ---- defaulting (SetDefaults_Service) -----------------------------------------------------

def set_defaults_service(svc: dict) -> None:
    spec = svc.setdefault("spec", {})
    if not spec.get("sessionAffinity"):
        spec["sessionAffinity"] = "None"
    if spec["sessionAffinity"] == "None":
        spec.pop("sessionAffinityConfig", None)
    elif spec["sessionAffinity"] == "ClientIP":
        cfg = spec.get("sessionAffinityConfig") or {}
        if (cfg.get("clientIP") or {}).get("timeoutSeconds") is None:
            spec["sessionAffinityConfig"] = {
                "clientIP": {"timeoutSeconds": DEFAULT_CLIENT_IP_TIMEOUT}}
    if not spec.get("type"):
        spec["type"] = CLUSTER_IP
    for port in spec.get("ports") or []:
        if not port.get("protocol"):
            port["protocol"] = "TCP"
        if port.get("targetPort") in (None, 0, ""):
            port["targetPort"] = port.get("port", 0)
    if externally_accessible(svc) and not spec.get("externalTrafficPolicy"):
        spec["externalTrafficPolicy"] = "Cluster"
    if spec.get("internalTrafficPolicy") is None and spec["type"] in (
            NODE_PORT, LOAD_BALANCER, CLUSTER_IP):
        spec["internalTrafficPolicy"] = "Cluster"
    if spec["type"] == LOAD_BALANCER:
        if spec.get("allocateLoadBalancerNodePorts") is None:
            spec["allocateLoadBalancerNodePorts"] = True
        for ing in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
            if ing.get("ip") and ing.get("ipMode") is None:
                ing["ipMode"] = "VIP"


# ---- update preparation (storage.go / strategy.go) ------------------------------------------

def normalize_cluster_ips(new: dict, old: dict | None) -> None:
    """Keep clusterIP and clusterIPs in sync for clients that only know clusterIP."""
    spec = new.setdefault("spec", {})
    ip, ips = spec.get("clusterIP") or "", spec.get("clusterIPs") or []
    if old is None:
        if ip and not ips:
            spec["clusterIPs"] = [ip]
        return
    old_spec = old.get("spec") or {}
    old_ip, old_ips = old_spec.get("clusterIP") or "", old_spec.get("clusterIPs") or []
    if old_ips and not ips and old_ip == ip:
        spec["clusterIPs"] = list(old_ips)
    if old_ip != ip:
        if old_ip and not ip:
            if same_cluster_ips(old, new):
                spec.pop("clusterIPs", None)
        elif same_cluster_ips(old, new):
            spec["clusterIPs"] = [ip]


def patch_allocated_values(new: dict, old: dict) -> None:
    """Fill what the server allocated and the client left out, so a PUT of the original
    manifest keeps the clusterIP, nodePorts and healthCheckNodePort."""
    spec, old_spec = new.setdefault("spec", {}), old.get("spec") or {}
    if needs_cluster_ip(old) and needs_cluster_ip(new):
        if not spec.get("clusterIP") and old_spec.get("clusterIP"):
            spec["clusterIP"] = old_spec["clusterIP"]
        if not spec.get("clusterIPs") and old_spec.get("clusterIPs"):
            spec["clusterIPs"] = list(old_spec["clusterIPs"])
    if needs_node_port(old) and needs_node_port(new):
        def used(s: dict) -> set[int]:
            return {p["nodePort"] for p in (s.get("spec") or {}).get("ports") or []
                    if p.get("nodePort")}
        taken = used(old) & used(new)
        by_name = {p.get("name", ""): p.get("nodePort") or 0
                   for p in old_spec.get("ports") or []}
        for p in spec.get("ports") or []:
            if not p.get("nodePort"):
                value = by_name.get(p.get("name", ""), 0)
                if value and value not in taken:
                    p["nodePort"] = value
    if needs_health_check(old) and needs_health_check(new):
        if not spec.get("healthCheckNodePort") and old_spec.get("healthCheckNodePort"):
            spec["healthCheckNodePort"] = old_spec["healthCheckNodePort"]


def drop_type_dependent_fields(new: dict, old: dict) -> None:
    """Wipe fields the new type does not use, if the server may have set them and the client
    did not change them (they are released by the allocation)."""
    spec, old_spec = new.setdefault("spec", {}), old.get("spec") or {}
    if needs_cluster_ip(old) and not needs_cluster_ip(new):
        if same_cluster_ips(old, new):
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
        if spec.get("ipFamilyPolicy") == old_spec.get("ipFamilyPolicy"):
            spec.pop("ipFamilyPolicy", None)
        if same_ip_families(old, new):
            spec.pop("ipFamilies", None)
    if needs_node_port(old) and not needs_node_port(new):
        old_ports = {p.get("nodePort") for p in old_spec.get("ports") or [] if p.get("nodePort")}
        new_ports = {p.get("nodePort") for p in spec.get("ports") or [] if p.get("nodePort")}
        if new_ports <= old_ports:  # no net-new nodePorts asked for
            for p in spec.get("ports") or []:
                p.pop("nodePort", None)
    if needs_health_check(old) and not needs_health_check(new):
        if (spec.get("healthCheckNodePort") or 0) == (old_spec.get("healthCheckNodePort") or 0):
            spec.pop("healthCheckNodePort", None)
    if old_spec.get("type") == LOAD_BALANCER and spec.get("type") != LOAD_BALANCER:
        alloc_new, alloc_old = (spec.get("allocateLoadBalancerNodePorts"),
                                old_spec.get("allocateLoadBalancerNodePorts"))
        if alloc_new is not None and alloc_old is not None and alloc_new == alloc_old:
            spec.pop("allocateLoadBalancerNodePorts", None)
        if spec.get("loadBalancerClass") == old_spec.get("loadBalancerClass"):
            spec.pop("loadBalancerClass", None)
    if externally_accessible(old) and not externally_accessible(new):
        if spec.get("externalTrafficPolicy", "") == old_spec.get("externalTrafficPolicy", ""):
            spec.pop("externalTrafficPolicy", None)
    if spec.get("type") != LOAD_BALANCER:
        new.setdefault("status", {})["loadBalancer"] = {}


# ---- validation (ValidateService, ValidateServiceUpdate) ----------------------------------

def _service_port_literal(protocol: str, port: int) -> GoLiteral:
    """%#v of the core.ServicePort{Protocol, Port} key used by the duplicate-port check."""
    return GoLiteral(
        f'core.ServicePort{{Name:"", Protocol:{E.go_quote(protocol)}, '
        f'AppProtocol:(*string)(nil), Port:{port}, '
        f'TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:""}}, NodePort:0}}')


def _invalid_each(field: str, value: Any, msgs: list[str]) -> list[FieldError]:
    return [E.invalid(field, value, m) for m in msgs]


def _is_ipv6(ip: str) -> bool:
    parsed = V.parse_ip(ip)
    return parsed is not None and parsed.version == 6 and parsed.ipv4_mapped is None


def validate_service_port(sp: dict, require_name: bool, names: set[str],
                          path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    name = sp.get("name") or ""
    if require_name and not name:
        errs.append(E.required(f"{path}.name"))
    elif name:
        errs += _invalid_each(f"{path}.name", name, V.is_dns1123_label(name))
        if name in names:
            errs.append(E.duplicate(f"{path}.name", name))
        else:
            names.add(name)
    port = sp.get("port", 0)
    errs += _invalid_each(f"{path}.port", port, V.is_valid_port_num(port))
    protocol = sp.get("protocol") or ""
    if not protocol:
        errs.append(E.required(f"{path}.protocol"))
    elif protocol not in PROTOCOLS:
        errs.append(E.not_supported(f"{path}.protocol", protocol, PROTOCOLS))
    target = sp.get("targetPort", 0)
    if isinstance(target, str):
        errs += _invalid_each(f"{path}.targetPort", target, V.is_valid_port_name(target))
    else:
        errs += _invalid_each(f"{path}.targetPort", target, V.is_valid_port_num(target))
    if sp.get("appProtocol") is not None:
        app = sp["appProtocol"]
        errs += _invalid_each(f"{path}.appProtocol", app, V.is_qualified_name(app))
    return errs


def _validate_client_ip_affinity(cfg: dict | None, path: str) -> list[FieldError]:
    detail = "when session affinity type is ClientIP"
    if cfg is None:
        return [E.required(path, detail)]
    if cfg.get("clientIP") is None:
        return [E.required(f"{path}.clientIP", detail)]
    timeout = cfg["clientIP"].get("timeoutSeconds")
    if timeout is None:
        return [E.required(f"{path}.clientIP.timeoutSeconds", detail)]
    if timeout <= 0 or timeout > MAX_CLIENT_IP_TIMEOUT:
        return [E.invalid(f"{path}.clientIP.timeoutSeconds", timeout,
                          f"must be greater than 0 and less than {MAX_CLIENT_IP_TIMEOUT}")]
    return []


def validate_cluster_ips_related_fields(svc: dict) -> list[FieldError]:
    """ValidateServiceClusterIPsRelatedFields (also run before allocation)."""
    spec = svc.get("spec") or {}
    if spec.get("type") == EXTERNAL_NAME:
        return []
    errs: list[FieldError] = []
    ip, ips = spec.get("clusterIP") or "", spec.get("clusterIPs")
    if ip:
        if not ips:
            errs.append(E.required("spec.clusterIPs"))
        elif ips[0] != ip:
            errs.append(E.invalid("spec.clusterIPs", go_strings(ips),
                                  "first value must match `clusterIP`"))
    elif ips:
        errs.append(E.invalid("spec.clusterIPs", go_strings(ips),
                              "must be empty when `clusterIP` is not specified"))
    seen: set[str] = set()
    for i, fam in enumerate(spec.get("ipFamilies") or []):
        if fam not in IP_FAMILIES:
            errs.append(E.not_supported(f"spec.ipFamilies[{i}]", fam, IP_FAMILIES))
        if fam in seen:
            errs.append(E.duplicate(f"spec.ipFamilies[{i}]", fam))
        seen.add(fam)
    policy = spec.get("ipFamilyPolicy")
    if policy is not None and policy not in IP_FAMILY_POLICIES:
        errs.append(E.not_supported("spec.ipFamilyPolicy", policy, IP_FAMILY_POLICIES))
    ips = ips or []
    bad_ips = False
    for i, value in enumerate(ips):
        if i == 0 and value == NONE:
            if len(ips) > 1:
                bad_ips = True
                errs.append(E.invalid("spec.clusterIPs", go_strings(ips),
                                      "'None' must be the first and only value"))
            continue
        ip_errs = V.is_valid_ip(f"spec.clusterIPs[{i}]", value)
        bad_ips = bad_ips or bool(ip_errs)
        errs += ip_errs
    if len(ips) > 2:
        errs.append(E.invalid("spec.clusterIPs", go_strings(ips), "may only hold up to 2 values"))
    if bad_ips:
        return errs
    if len(ips) > 1:
        fams = {_is_ipv6(v) for v in ips}
        if len(fams) < 2:
            errs.append(E.invalid("spec.clusterIPs", go_strings(ips),
                                  "may specify no more than one IP for each IP family"))
    families = spec.get("ipFamilies") or []
    if not is_headless(svc) and ips and families:
        for i, value in enumerate(ips[:len(families)]):
            if families[i] == "IPv4" and _is_ipv6(value):
                errs.append(E.invalid(f"spec.clusterIPs[{i}]", value,
                                      f"expected an IPv4 value as indicated by `ipFamilies[{i}]`"))
            if families[i] == "IPv6" and not _is_ipv6(value):
                errs.append(E.invalid(f"spec.clusterIPs[{i}]", value,
                                      f"expected an IPv6 value as indicated by `ipFamilies[{i}]`"))
    return errs


def validate_non_special_ip(ip: str, path: str) -> list[FieldError]:
    parsed = V.parse_ip(ip)
    if parsed is None:
        return [E.invalid(path, ip, "must be a valid IP address")]
    if getattr(parsed, "ipv4_mapped", None):
        parsed = parsed.ipv4_mapped
    errs = []
    if parsed.is_unspecified:
        errs.append(E.invalid(path, ip, f"may not be unspecified ({ip})"))
    if parsed.is_loopback:
        errs.append(E.invalid(path, ip, "may not be in the loopback range (127.0.0.0/8, ::1/128)"))
    if parsed.is_link_local:
        errs.append(E.invalid(path, ip,
                              "may not be in the link-local range (169.254.0.0/16, fe80::/10)"))
    if _is_link_local_multicast(parsed):
        errs.append(E.invalid(path, ip, "may not be in the link-local multicast range "
                                        "(224.0.0.0/24, ff02::/10)"))
    return errs


def _is_link_local_multicast(ip) -> bool:
    if ip.version == 4:
        return ip in ipaddress.ip_network("224.0.0.0/24")
    packed = ip.packed
    return packed[0] == 0xFF and packed[1] & 0x0F == 0x02


def _validate_load_balancer_class(old: dict | None, svc: dict) -> list[FieldError]:
    spec = svc.get("spec") or {}
    cls = spec.get("loadBalancerClass")
    errs: list[FieldError] = []
    if old is not None:
        old_spec = old.get("spec") or {}
        if (old_spec.get("type") == LOAD_BALANCER and spec.get("type") == LOAD_BALANCER
                and old_spec.get("loadBalancerClass") != cls):
            errs.append(E.invalid("spec.loadBalancerClass", cls, "may not change once set"))
    if spec.get("type") == LOAD_BALANCER:
        if cls is not None:
            errs += _invalid_each("spec.loadBalancerClass", cls, V.is_qualified_name(cls))
    elif cls is not None:
        errs.append(E.forbidden("spec.loadBalancerClass",
                                "may only be used when `type` is 'LoadBalancer'"))
    return errs


def _validate_traffic_policies(svc: dict) -> list[FieldError]:
    spec = svc.get("spec") or {}
    errs: list[FieldError] = []
    etp = spec.get("externalTrafficPolicy") or ""
    if not externally_accessible(svc):
        if etp:
            errs.append(E.invalid("spec.externalTrafficPolicy", etp,
                                  "may only be set for externally-accessible services"))
    elif not etp:
        errs.append(E.required("spec.externalTrafficPolicy"))
    elif etp not in TRAFFIC_POLICIES:
        errs.append(E.not_supported("spec.externalTrafficPolicy", etp, TRAFFIC_POLICIES))
    hcnp = spec.get("healthCheckNodePort") or 0
    if not needs_health_check(svc):
        if hcnp:
            errs.append(E.invalid("spec.healthCheckNodePort", hcnp,
                                  "may only be set when `type` is 'LoadBalancer' and "
                                  "`externalTrafficPolicy` is 'Local'"))
    elif not hcnp:
        errs.append(E.required("spec.healthCheckNodePort"))
    else:
        errs += _invalid_each("spec.healthCheckNodePort", hcnp, V.is_valid_port_num(hcnp))
    itp = spec.get("internalTrafficPolicy")
    if itp is None and spec.get("type") in (NODE_PORT, LOAD_BALANCER, CLUSTER_IP):
        errs.append(E.required("spec.internalTrafficPolicy"))
    if itp is not None and itp not in TRAFFIC_POLICIES:
        errs.append(E.not_supported("spec.internalTrafficPolicy", itp, TRAFFIC_POLICIES))
    td = spec.get("trafficDistribution")
    if td is not None and td != "PreferClose":
        errs.append(E.not_supported("spec.trafficDistribution", td, ["PreferClose"]))
    return errs


def validate_service(svc: dict) -> list[FieldError]:
    meta = svc.get("metadata") or {}
    errs = V.validate_object_meta(meta, True, name_validator=V.is_dns1035_label)
    annotations = meta.get("annotations") or {}
    if (TOPOLOGY_MODE in annotations and TOPOLOGY_HINTS in annotations
            and annotations[TOPOLOGY_MODE] != annotations[TOPOLOGY_HINTS]):
        errs.append(E.invalid(f"metadata.annotations[{TOPOLOGY_MODE}]",
                              annotations[TOPOLOGY_MODE],
                              f"must match annotations[{TOPOLOGY_HINTS}] when both are "
                              "specified"))
    spec = svc.get("spec") or {}
    stype = spec.get("type") or ""
    ports = spec.get("ports") or []
    headless = is_headless(svc)
    if not ports and not headless and stype != EXTERNAL_NAME:
        errs.append(E.required("spec.ports"))
    if stype in (LOAD_BALANCER, NODE_PORT) and headless:
        errs.append(E.invalid("spec.clusterIPs[0]", NONE,
                              f"may not be set to 'None' for {stype} services"))
    elif stype == EXTERNAL_NAME:
        for key in ("clusterIPs", "ipFamilies"):
            if spec.get(key):
                errs.append(E.forbidden(f"spec.{key}", "may not be set for ExternalName services"))
        if spec.get("ipFamilyPolicy") is not None:
            errs.append(E.forbidden("spec.ipFamilyPolicy",
                                    "may not be set for ExternalName services"))
        cname = spec.get("externalName") or ""
        cname = cname[:-1] if cname.endswith(".") else cname
        if cname:
            errs += _invalid_each("spec.externalName", cname, V.is_dns1123_subdomain(cname))
        else:
            errs.append(E.required("spec.externalName"))

    names: set[str] = set()
    for i, sp in enumerate(ports):
        errs += validate_service_port(sp, len(ports) > 1, names, f"spec.ports[{i}]")

    if spec.get("selector") is not None:
        errs += V.validate_labels(spec["selector"], "spec.selector")
    affinity = spec.get("sessionAffinity") or ""
    if not affinity:
        errs.append(E.required("spec.sessionAffinity"))
    elif affinity not in AFFINITIES:
        errs.append(E.not_supported("spec.sessionAffinity", affinity, AFFINITIES))
    if affinity == "ClientIP":
        errs += _validate_client_ip_affinity(spec.get("sessionAffinityConfig"),
                                             "spec.sessionAffinityConfig")
    elif affinity == "None" and spec.get("sessionAffinityConfig") is not None:
        errs.append(E.forbidden("spec.sessionAffinityConfig",
                                "must not be set when session affinity is None"))

    errs += validate_cluster_ips_related_fields(svc)

    for i, ip in enumerate(spec.get("externalIPs") or []):
        path = f"spec.externalIPs[{i}]"
        errs += V.is_valid_ip(path, ip) or validate_non_special_ip(ip, path)

    if not stype:
        errs.append(E.required("spec.type"))
    elif stype not in SERVICE_TYPES:
        errs.append(E.not_supported("spec.type", stype, SERVICE_TYPES))
    if stype == CLUSTER_IP:
        for i, sp in enumerate(ports):
            if sp.get("nodePort"):
                errs.append(E.forbidden(f"spec.ports[{i}].nodePort",
                                        "may not be used when `type` is 'ClusterIP'"))
    node_ports: set[tuple] = set()
    for i, sp in enumerate(ports):
        if not sp.get("nodePort"):
            continue
        key = (sp.get("protocol", ""), sp["nodePort"])
        if key in node_ports:
            errs.append(E.duplicate(f"spec.ports[{i}].nodePort", sp["nodePort"]))
        node_ports.add(key)
    port_keys: set[tuple] = set()
    for i, sp in enumerate(ports):
        key = (sp.get("protocol", ""), sp.get("port", 0))
        if key in port_keys:
            errs.append(E.duplicate(f"spec.ports[{i}]", _service_port_literal(*key)))
        port_keys.add(key)

    errs += _validate_source_ranges(svc, annotations)
    if spec.get("allocateLoadBalancerNodePorts") is not None and stype != LOAD_BALANCER:
        errs.append(E.forbidden("spec.allocateLoadBalancerNodePorts",
                                "may only be used when `type` is 'LoadBalancer'"))
    if stype == LOAD_BALANCER and spec.get("allocateLoadBalancerNodePorts") is None:
        errs.append(E.required("allocateLoadBalancerNodePorts"))  # sic: no "spec."
    errs += _validate_load_balancer_class(None, svc)
    errs += _validate_traffic_policies(svc)
    return errs


def _validate_source_ranges(svc: dict, annotations: dict) -> list[FieldError]:
    spec = svc.get("spec") or {}
    errs: list[FieldError] = []
    is_lb = spec.get("type") == LOAD_BALANCER
    forbidden = "may only be used when `type` is 'LoadBalancer'"
    if spec.get("loadBalancerSourceRanges"):
        path = "spec.LoadBalancerSourceRanges"  # sic: capital L, as upstream reports it
        if not is_lb:
            errs.append(E.forbidden(path, forbidden))
        for i, value in enumerate(spec["loadBalancerSourceRanges"]):
            errs += V.is_valid_cidr(f"{path}[{i}]", value.strip())
    elif LB_SOURCE_RANGES in annotations:
        path = f"metadata.annotations[{LB_SOURCE_RANGES}]"
        if not is_lb:
            errs.append(E.forbidden(path, forbidden))
        value = (annotations[LB_SOURCE_RANGES] or "").strip()
        if value:
            for cidr in value.split(","):
                errs += V.is_valid_cidr(path, cidr.strip())
    return errs


def _validate_upgrade_downgrade_cluster_ips(old: dict, new: dict) -> list[FieldError]:
    spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
    if EXTERNAL_NAME in (spec.get("type"), old_spec.get("type")):
        return []
    if is_headless(old) and is_headless(new):
        return []
    ips, old_ips = spec.get("clusterIPs") or [], old_spec.get("clusterIPs") or []
    value = go_strings(spec.get("clusterIPs"))
    errs: list[FieldError] = []
    if len(old_ips) == len(ips):
        for i, ip in enumerate(old_ips):
            if ip != ips[i]:
                errs.append(E.invalid(f"spec.clusterIPs[{i}]", value, "may not change once set"))
    elif len(old_ips) > len(ips):
        if not ips:
            errs.append(E.invalid("spec.clusterIPs[0]", value,
                                  "primary clusterIP can not be unset"))
        if old_ips and ips and ips[0] != old_ips[0]:
            errs.append(E.invalid("spec.clusterIPs[0]", value, "may not change once set"))
        if len(ips) == 1 and spec.get("ipFamilyPolicy") != "SingleStack":
            errs.append(E.invalid("spec.ipFamilyPolicy", spec.get("ipFamilyPolicy"),
                                  "must be set to 'SingleStack' when releasing the secondary "
                                  "clusterIP"))
    elif old_ips and ips[0] != old_ips[0]:
        errs.append(E.invalid("spec.clusterIPs[0]", value, "may not change once set"))
    return errs


def _validate_upgrade_downgrade_ip_families(old: dict, new: dict) -> list[FieldError]:
    spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
    if EXTERNAL_NAME in (spec.get("type"), old_spec.get("type")):
        return []
    if is_headless(old) or is_headless(new):
        return []
    fams, old_fams = spec.get("ipFamilies") or [], old_spec.get("ipFamilies") or []
    fams_value = go_families(spec.get("ipFamilies"))
    ips_value = go_strings(spec.get("clusterIPs"))
    errs: list[FieldError] = []
    if len(old_fams) == len(fams):
        for i, fam in enumerate(old_fams):
            if fam != fams[i]:
                errs.append(E.invalid("spec.ipFamilies[0]", fams_value, "may not change once set"))
    elif len(old_fams) > len(fams):
        if not spec.get("clusterIPs"):
            errs.append(E.invalid("spec.ipFamilies[0]", fams_value,
                                  "primary ipFamily can not be unset"))
        if fams and fams[0] != old_fams[0]:
            errs.append(E.invalid("spec.ipFamilies[0]", ips_value, "may not change once set"))
        if len(fams) == 1 and spec.get("ipFamilyPolicy") != "SingleStack":
            errs.append(E.invalid("spec.ipFamilyPolicy", spec.get("ipFamilyPolicy"),
                                  "must be set to 'SingleStack' when releasing the secondary "
                                  "ipFamily"))
    elif old_fams and fams and fams[0] != old_fams[0]:
        errs.append(E.invalid("spec.ipFamilies[0]", ips_value, "may not change once set"))
    return errs


def validate_service_update(new: dict, old: dict) -> list[FieldError]:
    errs = V.validate_object_meta_update(new.get("metadata") or {}, old.get("metadata") or {})
    errs += _validate_upgrade_downgrade_cluster_ips(old, new)
    errs += _validate_upgrade_downgrade_ip_families(old, new)
    errs += _validate_load_balancer_class(old, new)
    if needs_health_check(old) and needs_health_check(new):
        if (new.get("spec") or {}).get("healthCheckNodePort") != \
                (old.get("spec") or {}).get("healthCheckNodePort"):
            errs.append(E.forbidden("spec.healthCheckNodePort", "field is immutable"))
    return errs + validate_service(new)


# ---- warnings (pkg/api/service/warnings.go, 1.32) -------------------------------------------

def _ip_warnings(path: str, value: str) -> list[str]:
    parsed = V.parse_ip(value)
    if parsed is not None and parsed.version == 6 and parsed.ipv4_mapped is not None:
        return [f"{path}: non-standard IP address {E.go_quote(value)} will be considered "
                f"invalid in a future Kubernetes release: use "
                f"{E.go_quote(str(parsed.ipv4_mapped))}"]
    return []


def _cidr_warnings(path: str, value: str) -> list[str]:
    try:
        net = ipaddress.ip_network(value, strict=False)
        addr = ipaddress.ip_address(value.split("/")[0])
    except ValueError:
        return []
    if addr != net.network_address:
        return [f"{path}: CIDR value {E.go_quote(value)} is ambiguous in this context "
                f"(should be {E.go_quote(str(net))} or "
                f"{E.go_quote(f'{addr}/{net.max_prefixlen}')}?)"]
    return []


def service_warnings(svc: dict) -> list[str]:
    meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
    out: list[str] = []
    if TOPOLOGY_HINTS in (meta.get("annotations") or {}):
        out.append(f"annotation {TOPOLOGY_HINTS} is deprecated, please use {TOPOLOGY_MODE} "
                   "instead")
    if spec.get("clusterIP") not in (None, "", NONE):
        for i, ip in enumerate(spec.get("clusterIPs") or []):
            out += _ip_warnings(f"spec.clusterIPs[{i}]", ip)
    for i, ip in enumerate(spec.get("externalIPs") or []):
        out += _ip_warnings(f"spec.externalIPs[{i}]", ip)
    if spec.get("loadBalancerIP"):
        out += _ip_warnings("spec.loadBalancerIP", spec["loadBalancerIP"])
    for i, cidr in enumerate(spec.get("loadBalancerSourceRanges") or []):
        out += _cidr_warnings(f"spec.loadBalancerSourceRanges[{i}]", cidr)
    if spec.get("type") == EXTERNAL_NAME and spec.get("externalIPs"):
        out.append('spec.externalIPs is ignored when spec.type is "ExternalName"')
    if spec.get("type") != EXTERNAL_NAME and spec.get("externalName"):
        out.append('spec.externalName is ignored when spec.type is not "ExternalName"')
    return out


# ---- table (printers.go printService) ----------------------------------------------------

SERVICE_COLUMNS = [
    NAME_COLUMN,
    Column("Type", description="type determines how the Service is exposed. Defaults to "
           "ClusterIP. Valid options are ExternalName, ClusterIP, NodePort, and LoadBalancer."),
    Column("Cluster-IP", description="clusterIP is the IP address of the service and is "
           "usually assigned randomly."),
    Column("External-IP", description="externalIPs is a list of IP addresses for which nodes "
           "in the cluster will also accept traffic for this service."),
    Column("Port(s)", description="The list of ports that are exposed by this service."),
    AGE_COLUMN,
    Column("Selector", priority=1, description="Route service traffic to pods with label keys "
           "and values matching this selector."),
]


def _load_balancer_addresses(svc: dict) -> list[str]:
    found = set()
    for ing in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
        if ing.get("ip"):
            found.add(ing["ip"])
        elif ing.get("hostname"):
            found.add(ing["hostname"])
    return sorted(found)


def external_ip_cell(svc: dict) -> str:
    # Server-side tables are generated "wide", so addresses are never truncated here.
    spec = svc.get("spec") or {}
    external = spec.get("externalIPs") or []
    stype = spec.get("type")
    if stype in (CLUSTER_IP, NODE_PORT):
        return ",".join(external) if external else "<none>"
    if stype == LOAD_BALANCER:
        addresses = _load_balancer_addresses(svc) + list(external)
        return ",".join(addresses) if addresses else "<pending>"
    if stype == EXTERNAL_NAME:
        return spec.get("externalName") or ""
    return "<unknown>"


def ports_cell(svc: dict) -> str:
    pieces = []
    for p in (svc.get("spec") or {}).get("ports") or []:
        if p.get("nodePort"):
            pieces.append(f"{p.get('port', 0)}:{p['nodePort']}/{p.get('protocol', '')}")
        else:
            pieces.append(f"{p.get('port', 0)}/{p.get('protocol', '')}")
    return ",".join(pieces) or "<none>"


def selector_cell(svc: dict) -> str:
    selector = (svc.get("spec") or {}).get("selector") or {}
    return ",".join(f"{k}={selector[k]}" for k in sorted(selector)) or "<none>"


# ---- the `kubernetes` Service -------------------------------------------------------------

def service_ip(config: ServerConfig, index: int) -> str:
    """GetIndexedIP of the primary Service CIDR: 1 is the API server, 10 the cluster DNS."""
    cidr = (config.service_cluster_ip_range or "10.0.0.0/24").split(",")[0].strip()
    net = ipaddress.ip_network(cidr, strict=False)
    return str(net.network_address + index)


def kubernetes_service(config: ServerConfig, secure_port: int = 6443) -> dict:
    ip = service_ip(config, 1)
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"type": CLUSTER_IP, "clusterIP": ip, "clusterIPs": [ip],
                 "sessionAffinity": "None",
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                            "targetPort": secure_port}]},
    }


# ---- the strategy -------------------------------------------------------------------------

class ServiceStrategy(Strategy):
    group = ""
    kind = "Service"
    plural = "services"
    singular = "service"
    short_names = ("svc",)
    categories = ("all",)
    has_status = True
    return_deleted_object = True
    columns = SERVICE_COLUMNS

    def __init__(self, config: ServerConfig | None = None):
        super().__init__(config)
        self.allocators = ServiceAllocators(self.config.service_cluster_ip_range,
                                            self.config.service_node_port_range,
                                            validate_cluster_ips_related_fields)
        self.shared = None   # SharedAllocations when several API servers share the store

    def default(self, obj: dict) -> None:
        set_defaults_service(obj)

    def prepare_create(self, obj: dict) -> None:
        obj["status"] = {"loadBalancer": {}}
        normalize_cluster_ips(obj, None)

    def prepare_update(self, new: dict, old: dict) -> None:
        new["status"] = copy.deepcopy(old.get("status") or {"loadBalancer": {}})
        patch_allocated_values(new, old)
        normalize_cluster_ips(new, old)
        drop_type_dependent_fields(new, old)

    def validate(self, obj: dict) -> list[FieldError]:
        trial = copy.deepcopy(obj)
        try:
            self.allocators.allocate_create(trial, dry_run=True)
        except InvalidAllocation as err:
            return err.errs
        except InternalAllocation as err:
            raise E.internal_error(err.message)
        return validate_service(trial)

    def validate_update(self, new: dict, old: dict) -> list[FieldError]:
        trial = copy.deepcopy(new)
        try:
            self.allocators.allocate_update(trial, old, dry_run=True)
        except InvalidAllocation as err:
            return err.errs
        except InternalAllocation as err:
            raise E.internal_error(err.message)
        return validate_service_update(trial, old)

    def warnings(self, obj: dict, old: dict | None = None) -> list[str]:
        return service_warnings(obj)

    def _run(self, obj: dict, allocate) -> Txn:
        try:
            return allocate()
        except InvalidAllocation as err:
            name = (obj.get("metadata") or {}).get("name", "")
            raise E.invalid_error("Service", "", name, err.errs)
        except InternalAllocation as err:
            raise E.internal_error(err.message)

    def begin_create(self, obj: dict) -> Txn:
        return self._run(obj, lambda: self.allocators.allocate_create(obj))

    def begin_update(self, new: dict, old: dict) -> Txn:
        return self._run(new, lambda: self.allocators.allocate_update(new, old))

    def begin_delete(self, obj: dict) -> Txn:
        txn = self.allocators.release_all(obj)
        return self.shared.release_all(txn, obj) if self.shared else txn

    async def allocate_create(self, obj: dict, dry_run: bool = False) -> Txn:
        if self.shared is None or dry_run:
            return self.begin_create(obj)
        return await self.shared.allocate(obj, None, lambda: self.begin_create(obj))

    async def allocate_update(self, new: dict, old: dict, dry_run: bool = False) -> Txn:
        if self.shared is None or dry_run:
            return self.begin_update(new, old)
        return await self.shared.allocate(new, old, lambda: self.begin_update(new, old))

    async def share_allocations(self, store) -> None:
        from nanokube.allocators.claims import SharedAllocations
        self.shared = SharedAllocations(store, self.allocators)
        await self.shared.start()

    async def stop_sharing(self) -> None:
        if self.shared is not None:
            await self.shared.stop()

    def restore(self, objects: list[dict]) -> None:
        self.allocators.restore(objects)

    def table_row(self, obj: dict) -> list[Any]:
        spec = obj.get("spec") or {}
        ips = spec.get("clusterIPs") or []
        return [obj["metadata"]["name"], spec.get("type", ""), ips[0] if ips else "<none>",
                external_ip_cell(obj), ports_cell(obj), age(obj), selector_cell(obj)]

    def field_labels(self, obj: dict) -> dict[str, str]:
        spec = obj.get("spec") or {}
        return {"spec.clusterIP": spec.get("clusterIP") or "", "spec.type": spec.get("type") or ""}
