"""ServiceAllocators: ClusterIPs, NodePorts and healthCheckNodePorts of Services
(registry/core/service/storage/alloc.go).

Works on Service objects as JSON dicts and fills the allocated fields in place. Failures raise
InvalidAllocation (a 422 with field errors) or InternalAllocation (a 500). The returned
AllocationTxn is committed after the store write (deferred releases take effect) or rolled back
when the write fails (new allocations are given back). The allocators live in memory only:
`restore` rebuilds them from the stored Services, so a crash can neither leak nor double-book.
"""
from __future__ import annotations

import logging
from typing import Callable

from nanokube.allocators.clusterip import AllocationError, ClusterIPAllocator, family_of
from nanokube.allocators.nodeport import NodePortAllocator, PortAllocationOperation
from nanokube.api import errors as E
from nanokube.api.errors import FieldError, GoLiteral
from nanokube.registry.base import Txn

log = logging.getLogger(__name__)

CLUSTER_IP, NODE_PORT, LOAD_BALANCER, EXTERNAL_NAME = (
    "ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
NONE = "None"
IPV4, IPV6 = "IPv4", "IPv6"
SINGLE_STACK, PREFER_DUAL_STACK, REQUIRE_DUAL_STACK = (
    "SingleStack", "PreferDualStack", "RequireDualStack")


class InvalidAllocation(Exception):
    def __init__(self, errs: list[FieldError]):
        super().__init__(E.aggregate(errs))
        self.errs = errs


class InternalAllocation(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class AllocationTxn(Txn):
    def __init__(self):
        self._on_commit: list[Callable[[], None]] = []
        self._on_rollback: list[Callable[[], None]] = []

    def add(self, on_commit=None, on_rollback=None) -> None:
        if on_commit:
            self._on_commit.append(on_commit)
        if on_rollback:
            self._on_rollback.append(on_rollback)

    def commit(self) -> None:
        todo, self._on_commit, self._on_rollback = self._on_commit, [], []
        for fn in todo:
            fn()

    def rollback(self) -> None:
        todo, self._on_commit, self._on_rollback = self._on_rollback, [], []
        for fn in reversed(todo):
            fn()


# ---- Go-rendered values -------------------------------------------------------------------

def go_strings(values) -> GoLiteral | list:
    """A []string as %#v prints it, nil included."""
    return GoLiteral("[]string(nil)") if values is None else list(values)


def go_families(values) -> GoLiteral:
    if values is None:
        return GoLiteral("[]core.IPFamily(nil)")
    return GoLiteral("[]core.IPFamily{" + ", ".join(E.go_quote(v) for v in values) + "}")


# ---- Service predicates (pkg/api/service/util.go and alloc.go helpers) ------------------

def spec_of(svc: dict) -> dict:
    return svc.setdefault("spec", {})


def is_headless(svc: dict) -> bool:
    ips = (svc.get("spec") or {}).get("clusterIPs") or []
    return len(ips) == 1 and ips[0] == NONE


def externally_accessible(svc: dict) -> bool:
    spec = svc.get("spec") or {}
    t = spec.get("type")
    return t in (LOAD_BALANCER, NODE_PORT) or (t == CLUSTER_IP and bool(spec.get("externalIPs")))


def needs_health_check(svc: dict) -> bool:
    spec = svc.get("spec") or {}
    return spec.get("type") == LOAD_BALANCER and spec.get("externalTrafficPolicy") == "Local"


def needs_cluster_ip(svc: dict) -> bool:
    return (svc.get("spec") or {}).get("type") != EXTERNAL_NAME


def needs_node_port(svc: dict) -> bool:
    return (svc.get("spec") or {}).get("type") in (NODE_PORT, LOAD_BALANCER)


def should_allocate_node_ports(svc: dict) -> bool:
    spec = svc.get("spec") or {}
    if spec.get("type") == NODE_PORT:
        return True
    if spec.get("type") == LOAD_BALANCER:
        return spec.get("allocateLoadBalancerNodePorts") is not False
    return False


def node_ports_of(svc: dict) -> list[int]:
    return [p["nodePort"] for p in (svc.get("spec") or {}).get("ports") or []
            if p.get("nodePort")]


def _same(a: dict, b: dict, key: str) -> bool:
    return ((a.get("spec") or {}).get(key) or []) == ((b.get("spec") or {}).get(key) or [])


def same_cluster_ips(a: dict, b: dict) -> bool:
    return _same(a, b, "clusterIPs")


def same_ip_families(a: dict, b: dict) -> bool:
    return _same(a, b, "ipFamilies")


class ServiceAllocators:
    """The allocators of one API server, and the Service-level logic around them."""

    def __init__(self, cluster_ip_range: str, node_port_range: str,
                 validate_ip_fields: Callable[[dict], list[FieldError]] | None = None):
        self.cluster_ip_range = cluster_ip_range
        self.node_port_range = node_port_range
        self.validate_ip_fields = validate_ip_fields or (lambda svc: [])
        self._reset()

    def _reset(self) -> None:
        cidrs = [c.strip() for c in (self.cluster_ip_range or "").split(",") if c.strip()]
        self.ip_allocators: dict[str, ClusterIPAllocator] = {}
        for cidr in cidrs or ["10.0.0.0/24"]:
            allocator = ClusterIPAllocator(cidr)
            self.ip_allocators.setdefault(allocator.family, allocator)
        self.default_family = ClusterIPAllocator((cidrs or ["10.0.0.0/24"])[0]).family
        self.node_ports = NodePortAllocator(self.node_port_range)

    @property
    def primary(self) -> ClusterIPAllocator:
        return self.ip_allocators[self.default_family]

    # ---- create / update / delete -------------------------------------------------------
    def allocate_create(self, svc: dict, dry_run: bool = False) -> AllocationTxn:
        txn = AllocationTxn()
        try:
            self.init_ip_family_fields(svc, None)
            allocated = self._alloc_cluster_ips(svc, dry_run)
            txn.add(on_rollback=lambda: self._release_ips(allocated, dry_run))
            op = self._node_port_op(txn, dry_run)
            if needs_node_port(svc):
                self._init_node_ports(svc, op)
            if needs_health_check(svc):
                self._alloc_health_check_node_port(svc, op)
        except Exception:
            txn.rollback()
            raise
        return txn

    def allocate_update(self, new: dict, old: dict, dry_run: bool = False) -> AllocationTxn:
        txn = AllocationTxn()
        try:
            self.init_ip_family_fields(new, old)
            allocated, to_release = self._update_cluster_ips(new, old, dry_run)
            txn.add(on_commit=lambda: self._release_ips(to_release, dry_run),
                    on_rollback=lambda: self._release_ips(allocated, dry_run))
            op = self._node_port_op(txn, dry_run)
            if needs_node_port(old) and not needs_node_port(new):
                for port in node_ports_of(old):
                    op.release_deferred(port)
            if needs_node_port(new):
                self._update_node_ports(new, old, op)
            self._update_health_check_node_port(new, old, op)
        except Exception:
            txn.rollback()
            raise
        return txn

    def release_all(self, svc: dict) -> AllocationTxn:
        """releaseAllocatedResources, applied when the delete is committed."""
        txn = AllocationTxn()
        txn.add(on_commit=lambda: self._release_everything(svc))
        return txn

    def _release_everything(self, svc: dict) -> None:
        spec = svc.get("spec") or {}
        if needs_cluster_ip(svc) and not is_headless(svc):
            for ip in spec.get("clusterIPs") or []:
                allocator = self.ip_allocators.get(family_of(ip))
                if allocator:
                    allocator.release(ip)
        for port in node_ports_of(svc):
            self.node_ports.release(port)
        if needs_health_check(svc) and spec.get("healthCheckNodePort"):
            self.node_ports.release(spec["healthCheckNodePort"])

    def restore(self, services: list[dict]) -> list[str]:
        """Rebuild every allocation from the stored Services; returns the conflicts found."""
        self._reset()
        conflicts: list[str] = []
        for svc in services:
            spec = svc.get("spec") or {}
            name = "{}/{}".format((svc.get("metadata") or {}).get("namespace", ""),
                                  (svc.get("metadata") or {}).get("name", ""))
            if needs_cluster_ip(svc) and not is_headless(svc):
                for ip in spec.get("clusterIPs") or []:
                    allocator = self.ip_allocators.get(family_of(ip))
                    try:
                        if allocator is None:
                            raise AllocationError("family not configured")
                        allocator.allocate(ip)
                    except AllocationError as err:
                        conflicts.append(f"service {name} clusterIP {ip}: {err}")
            ports = set(node_ports_of(svc))   # 53/TCP and 53/UDP share one nodePort
            if needs_health_check(svc) and spec.get("healthCheckNodePort"):
                ports.add(spec["healthCheckNodePort"])
            for port in sorted(ports):
                try:
                    self.node_ports.allocate(port)
                except AllocationError as err:
                    conflicts.append(f"service {name} nodePort {port}: {err}")
        for c in conflicts:
            log.warning("restoring service allocations: %s", c)
        return conflicts

    # ---- IP families (initIPFamilyFields) -------------------------------------------------
    def init_ip_family_fields(self, svc: dict, old: dict | None) -> None:
        spec = spec_of(svc)
        if spec.get("type") == EXTERNAL_NAME:
            return
        if _matching_prefer_dual_stack(svc, old):
            return
        if spec.get("ipFamilyPolicy") is None:
            old_policy = ((old or {}).get("spec") or {}).get("ipFamilyPolicy")
            if old is not None and old_policy is not None:
                spec["ipFamilyPolicy"] = old_policy
            elif spec.get("clusterIP") == NONE and not spec.get("selector"):
                spec["ipFamilyPolicy"] = REQUIRE_DUAL_STACK  # headless + selectorless
            else:
                spec["ipFamilyPolicy"] = SINGLE_STACK

        errs = self.validate_ip_fields(svc)
        if errs:
            raise InvalidAllocation(errs)

        errs = []
        policy = spec["ipFamilyPolicy"]
        if old is not None:
            old_spec = old.get("spec") or {}
            if policy == SINGLE_STACK:
                # Setting SingleStack on an unchanged dual-stack service releases the secondary.
                if same_cluster_ips(old, svc) and len(spec.get("clusterIPs") or []) > 1:
                    spec["clusterIPs"] = spec["clusterIPs"][:1]
                if same_ip_families(old, svc) and len(spec.get("ipFamilies") or []) > 1:
                    spec["ipFamilies"] = spec["ipFamilies"][:1]
            else:
                if 0 < len(spec.get("clusterIPs") or []) < len(old_spec.get("clusterIPs") or []):
                    errs.append(E.invalid("spec.ipFamilyPolicy", policy,
                                          "must be 'SingleStack' to release the secondary "
                                          "cluster IP"))
                if 0 < len(spec.get("ipFamilies") or []) < len(old_spec.get("ipFamilies") or []):
                    errs.append(E.invalid("spec.ipFamilyPolicy", policy,
                                          "must be 'SingleStack' to release the secondary IP "
                                          "family"))
        if policy == SINGLE_STACK:
            if len(spec.get("clusterIPs") or []) == 2:
                errs.append(E.invalid("spec.ipFamilyPolicy", policy,
                                      "must be 'RequireDualStack' or 'PreferDualStack' when "
                                      "multiple cluster IPs are specified"))
            if len(spec.get("ipFamilies") or []) == 2:
                errs.append(E.invalid("spec.ipFamilyPolicy", policy,
                                      "must be 'RequireDualStack' or 'PreferDualStack' when "
                                      "multiple IP families are specified"))

        # Infer ipFamilies from the clusterIPs the user gave.
        families = list(spec.get("ipFamilies") or [])
        for i, ip in enumerate(spec.get("clusterIPs") or []):
            if ip == NONE:
                break
            fam = family_of(ip)
            if i >= len(families):
                if fam not in self.ip_allocators:
                    errs.append(E.invalid(f"spec.clusterIPs[{i}]", go_strings(spec["clusterIPs"]),
                                          f"{fam} is not configured on this cluster"))
                else:
                    families.append(fam)
        if families:
            spec["ipFamilies"] = families
        if errs:
            raise InvalidAllocation(errs)

        if spec.get("clusterIP") == NONE and not spec.get("selector"):
            # Headless and selectorless may name families this cluster does not serve.
            if not families:
                families = [self.default_family]
            if len(families) < 2 and policy != SINGLE_STACK:
                families.append(IPV6 if families[0] == IPV4 else IPV4)
            spec["ipFamilies"] = families
            return

        if policy == REQUIRE_DUAL_STACK and len(self.ip_allocators) < 2:
            errs.append(E.invalid("spec.ipFamilyPolicy", policy,
                                  "this cluster is not configured for dual-stack services"))
        for i, fam in enumerate(families):
            if fam not in self.ip_allocators:
                errs.append(E.invalid(f"spec.ipFamilies[{i}]", fam,
                                      "not configured on this cluster"))
        if errs:
            raise InvalidAllocation(errs)
        if not families:
            families = [self.default_family]
        if policy != SINGLE_STACK and len(families) == 1 and len(self.ip_allocators) == 2:
            families.append(IPV6 if families[0] == IPV4 else IPV4)
        spec["ipFamilies"] = families

    # ---- ClusterIPs ---------------------------------------------------------------------
    def _alloc_cluster_ips(self, svc: dict, dry_run: bool) -> dict[str, str]:
        spec = spec_of(svc)
        if spec.get("type") == EXTERNAL_NAME:
            return {}
        ips = list(spec.get("clusterIPs") or [])
        if ips and ips[0] == NONE:
            return {}
        families = spec.get("ipFamilies") or []
        while len(ips) < len(families):
            ips.append("")  # a marker: allocate one for this family
        spec["clusterIPs"] = ips
        wanted = {fam: ips[i] for i, fam in enumerate(families)}
        allocated = self._alloc_ips(svc, wanted, dry_run)
        for i, fam in enumerate(families):
            if fam in allocated:
                ips[i] = allocated[fam]
                if i == 0:
                    spec["clusterIP"] = allocated[fam]
        return allocated

    def _alloc_ips(self, svc: dict, wanted: dict[str, str], dry_run: bool) -> dict[str, str]:
        allocated: dict[str, str] = {}
        try:
            for fam, ip in wanted.items():
                allocator = self.ip_allocators[fam]
                if ip == "":
                    try:
                        allocated[fam] = allocator.allocate_next(dry_run)
                    except AllocationError as err:
                        raise InternalAllocation(f"failed to allocate a serviceIP: {err}")
                else:
                    try:
                        allocator.allocate(ip, dry_run)
                    except AllocationError as err:
                        raise InvalidAllocation([E.invalid(
                            "spec.clusterIPs", go_strings(spec_of(svc).get("clusterIPs")),
                            f"failed to allocate IP {ip}: {err}")])
                    allocated[fam] = ip
        except Exception:
            self._release_ips(allocated, dry_run)
            raise
        return allocated

    def _release_ips(self, ips: dict[str, str] | None, dry_run: bool = False) -> None:
        if dry_run or not ips:
            return
        for fam, ip in ips.items():
            allocator = self.ip_allocators.get(fam)
            if allocator:
                allocator.release(ip)

    def _update_cluster_ips(self, new: dict, old: dict, dry_run: bool):
        """updateClusterIPs: returns (allocated, to_release) by family."""
        if _matching_prefer_dual_stack(new, old):
            return {}, {}
        spec, old_spec = spec_of(new), old.get("spec") or {}
        old_type, new_type = old_spec.get("type"), spec.get("type")
        if old_type == EXTERNAL_NAME and new_type != EXTERNAL_NAME:
            return self._alloc_cluster_ips(new, dry_run), {}
        if is_headless(old):
            return {}, {}
        if old_type != EXTERNAL_NAME and new_type == EXTERNAL_NAME:
            old_ips = old_spec.get("clusterIPs") or []
            return {}, {fam: old_ips[i] for i, fam in enumerate(old_spec.get("ipFamilies") or [])
                        if i < len(old_ips)}
        old_fams, new_fams = old_spec.get("ipFamilies") or [], spec.get("ipFamilies") or []
        if len(old_fams) == 1 and len(new_fams) == 2:  # upgrade to dual-stack
            ips = list(spec.get("clusterIPs") or [])
            if len(ips) < 2:
                ips.append("")
            spec["clusterIPs"] = ips
            allocated = self._alloc_ips(new, {new_fams[1]: ips[1]}, dry_run)
            ips[1] = allocated[new_fams[1]]
            return allocated, {}
        if len(old_fams) == 2 and len(new_fams) == 1:  # downgrade
            return {}, {old_fams[1]: (old_spec.get("clusterIPs") or ["", ""])[1]}
        return {}, {}

    # ---- NodePorts ----------------------------------------------------------------------
    def _node_port_op(self, txn: AllocationTxn, dry_run: bool) -> PortAllocationOperation:
        op = PortAllocationOperation(self.node_ports, dry_run)
        txn.add(on_commit=lambda: (op.commit(), op.finish()), on_rollback=op.finish)
        return op

    @staticmethod
    def _port_error(i: int, port: int, err: AllocationError) -> InvalidAllocation:
        return InvalidAllocation([E.invalid(f"spec.ports[{i}].nodePort", port, str(err))])

    def _init_node_ports(self, svc: dict, op: PortAllocationOperation) -> None:
        """initNodePorts: ports with the same number share one nodePort (53/TCP + 53/UDP)."""
        ports = spec_of(svc).get("ports") or []
        by_port: dict[int, int] = {}
        for i, sp in enumerate(ports):
            node_port = sp.get("nodePort") or 0
            if node_port == 0 and not should_allocate_node_ports(svc):
                continue  # keep explicit requests only
            number = sp.get("port")
            shared = by_port.get(number, 0)
            if shared == 0:
                requested = next((p.get("nodePort") for p in ports
                                  if p.get("port") == number and p.get("nodePort")), 0)
                if requested:
                    try:
                        op.allocate(requested)
                    except AllocationError as err:
                        raise self._port_error(i, requested, err)
                    sp["nodePort"] = requested
                    by_port[number] = requested
                else:
                    try:
                        sp["nodePort"] = by_port[number] = op.allocate_next()
                    except AllocationError as err:
                        raise InternalAllocation(f"failed to allocate a nodePort: {err}")
            elif node_port != shared:
                if node_port == 0:
                    sp["nodePort"] = shared
                else:
                    try:
                        op.allocate(node_port)
                    except AllocationError as err:
                        raise self._port_error(i, node_port, err)

    def _update_node_ports(self, new: dict, old: dict, op: PortAllocationOperation) -> None:
        old_ports = node_ports_of(old)
        seen: list[tuple[str, int]] = []
        taken_here: set[int] = set()
        for i, sp in enumerate(spec_of(new).get("ports") or []):
            node_port = sp.get("nodePort") or 0
            if node_port == 0 and not should_allocate_node_ports(new):
                continue
            if node_port:
                if node_port not in old_ports and node_port not in taken_here:
                    try:
                        op.allocate(node_port)
                    except AllocationError as err:
                        raise self._port_error(i, node_port, err)
                    taken_here.add(node_port)
            else:
                try:
                    node_port = sp["nodePort"] = op.allocate_next()
                except AllocationError as err:
                    raise InternalAllocation(f"failed to allocate a nodePort: {err}")
            key = (sp.get("protocol", ""), node_port)
            if key in seen:
                raise InternalAllocation(f"duplicate nodePort: {{{key[0]} {key[1]}}}")
            seen.append(key)
        new_ports = node_ports_of(new)
        for port in old_ports:
            if port not in new_ports:
                op.release_deferred(port)

    def _alloc_health_check_node_port(self, svc: dict, op: PortAllocationOperation) -> None:
        spec = spec_of(svc)
        requested = spec.get("healthCheckNodePort") or 0
        if requested:
            try:
                op.allocate(requested)
            except AllocationError as err:
                raise InternalAllocation(
                    f"failed to allocate requested HealthCheck NodePort {requested}: {err}")
        else:
            try:
                spec["healthCheckNodePort"] = op.allocate_next()
            except AllocationError as err:
                raise InternalAllocation(f"failed to allocate a HealthCheck NodePort 0: {err}")

    def _update_health_check_node_port(self, new: dict, old: dict,
                                       op: PortAllocationOperation) -> None:
        needed, needs = needs_health_check(old), needs_health_check(new)
        if not needed and needs:
            self._alloc_health_check_node_port(new, op)
        elif needed and not needs:
            op.release_deferred((old.get("spec") or {}).get("healthCheckNodePort") or 0)


def _matching_prefer_dual_stack(new: dict, old: dict | None) -> bool:
    """isMatchingPreferDualStackClusterIPFields: leave such services alone on update."""
    if old is None:
        return False
    spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
    if spec.get("ipFamilyPolicy") is None or spec.get("type") != old_spec.get("type"):
        return False
    if spec.get("type") not in (CLUSTER_IP, NODE_PORT, LOAD_BALANCER):
        return False
    if spec.get("ipFamilyPolicy") != PREFER_DUAL_STACK:
        return False
    if old_spec.get("ipFamilyPolicy") not in (None, PREFER_DUAL_STACK):
        return False
    return same_cluster_ips(old, new) and same_ip_families(old, new)
