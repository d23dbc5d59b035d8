"""Nodes (core/v1, cluster-scoped)."""
from __future__ import annotations

from typing import Any

from nanokube.api import errors as E
from nanokube.api.errors import FieldError
from nanokube.api.tables import since
from nanokube.registry import validation as V
from nanokube.registry.base import AGE_COLUMN, NAME_COLUMN, Column, Strategy

TAINT_EFFECTS = ["NoExecute", "NoSchedule", "PreferNoSchedule"]
ROLE_LABEL_PREFIX = "node-role.kubernetes.io/"
ROLE_LABEL = "kubernetes.io/role"


def node_roles(obj: dict) -> list[str]:
    """findNodeRoles: node-role.kubernetes.io/<role> labels and kubernetes.io/role."""
    roles = set()
    for key, value in ((obj.get("metadata") or {}).get("labels") or {}).items():
        if key.startswith(ROLE_LABEL_PREFIX) and key[len(ROLE_LABEL_PREFIX):]:
            roles.add(key[len(ROLE_LABEL_PREFIX):])
        elif key == ROLE_LABEL and value:
            roles.add(value)
    return sorted(roles)


def node_status_cell(obj: dict) -> str:
    status = []
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            status = ["Ready" if cond.get("status") == "True" else "NotReady"]
    if not status:
        status = ["Unknown"]
    if (obj.get("spec") or {}).get("unschedulable"):
        status.append("SchedulingDisabled")
    return ",".join(status)


def _address(obj: dict, kind: str) -> str:
    for addr in (obj.get("status") or {}).get("addresses") or []:
        if addr.get("type") == kind:
            return addr.get("address") or ""
    return "<none>"


class NodeStrategy(Strategy):
    kind = "Node"
    plural = "nodes"
    singular = "node"
    short_names = ("no",)
    namespaced = False
    has_status = True
    columns = [
        NAME_COLUMN,
        Column("Status", description="The status of the node"),
        Column("Roles", description="The roles of the node"),
        AGE_COLUMN,
        Column("Version", description="Kubelet Version reported by the node."),
        Column("Internal-IP", priority=1, description="List of addresses reachable to the "
               "node. Queried from cloud provider, if available."),
        Column("External-IP", priority=1, description="List of addresses reachable to the "
               "node. Queried from cloud provider, if available."),
        Column("OS-Image", priority=1, description="OS Image reported by the node from "
               "/etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."),
        Column("Kernel-Version", priority=1, description="Kernel Version reported by the node "
               "from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),
        Column("Container-Runtime", priority=1, description="ContainerRuntime Version reported "
               "by the node through runtime remote API (e.g. containerd://1.4.2)."),
    ]

    def default(self, obj: dict) -> None:
        """SetDefaults_NodeStatus: allocatable defaults to capacity."""
        status = obj.get("status")
        if isinstance(status, dict) and status.get("capacity") and \
                status.get("allocatable") is None:
            status["allocatable"] = dict(status["capacity"])

    def prepare_create(self, obj: dict) -> None:
        """The kubelet registers its Node with a status: unlike most kinds, it is kept."""

    def validate(self, obj: dict) -> list[FieldError]:
        errs = V.validate_object_meta(obj.get("metadata") or {}, False)
        spec = obj.get("spec") or {}
        if spec.get("podCIDR"):
            errs += V.is_valid_cidr("spec.podCIDR", spec["podCIDR"])
        cidrs = spec.get("podCIDRs") or []
        for i, cidr in enumerate(cidrs):
            errs += V.is_valid_cidr(f"spec.podCIDRs[{i}]", cidr)
        if cidrs and spec.get("podCIDR") and cidrs[0] != spec["podCIDR"]:
            errs.append(E.invalid("spec.podCIDRs", cidrs, "must match first element of "
                                                          "podCIDRs"))
        for i, taint in enumerate(spec.get("taints") or []):
            key = taint.get("key") or ""
            errs += [E.invalid(f"spec.taints[{i}].key", key, m) for m in V.is_qualified_name(key)]
            effect = taint.get("effect") or ""
            if not effect:
                errs.append(E.required(f"spec.taints[{i}].effect"))
            elif effect not in TAINT_EFFECTS:
                errs.append(E.not_supported(f"spec.taints[{i}].effect", effect, TAINT_EFFECTS))
        return errs

    def validate_update(self, new: dict, old: dict) -> list[FieldError]:
        errs = V.validate_object_meta_update(new.get("metadata") or {}, old.get("metadata") or {})
        errs += self.validate(new)
        old_cidrs = (old.get("spec") or {}).get("podCIDRs")
        new_cidrs = (new.get("spec") or {}).get("podCIDRs")
        if old_cidrs and new_cidrs != old_cidrs:
            errs.append(E.forbidden("spec.podCIDRs", "node updates may not change podCIDR "
                                                     "except from \"\" to valid"))
        return errs

    def table_row(self, obj: dict) -> list[Any]:
        info = (obj.get("status") or {}).get("nodeInfo") or {}
        return [obj["metadata"]["name"], node_status_cell(obj),
                ",".join(node_roles(obj)) or "<none>",
                since(obj["metadata"].get("creationTimestamp")), info.get("kubeletVersion") or "",
                _address(obj, "InternalIP"), _address(obj, "ExternalIP"),
                info.get("osImage") or "<unknown>", info.get("kernelVersion") or "<unknown>",
                info.get("containerRuntimeVersion") or "<unknown>"]

    def field_labels(self, obj: dict) -> dict[str, str]:
        return {"spec.unschedulable":
                "true" if (obj.get("spec") or {}).get("unschedulable") else "false"}
