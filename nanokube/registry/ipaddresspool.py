"""IPAddressPools (metallb.io/v1beta1, namespaced): the addresses LoadBalancer Services get.

Served as a built-in kind so that MetalLB configurations apply as they are. `spec.addresses`
holds IPv4 CIDRs ("192.168.10.0/24") and ranges ("192.168.9.1-192.168.9.5"). Two pools may not
share an address: the strategy keeps an index of every pool's ranges (rebuilt by `restore`) and
rejects a create or update that overlaps another pool, naming that pool.
"""
from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any

from nanokube.api import errors as E
from nanokube.api.errors import FieldError
from nanokube.api.tables import since
from nanokube.registry import validation as V
from nanokube.registry.base import AGE_COLUMN, NAME_COLUMN, Column, Strategy, Txn

GROUP = "metallb.io"
VERSION = "v1beta1"


@dataclass(frozen=True, order=True)
class AddressRange:
    """An inclusive range of IPv4 addresses, as integers."""
    first: int
    last: int

    def __contains__(self, ip: int) -> bool:
        return self.first <= ip <= self.last

    def overlaps(self, other: "AddressRange") -> bool:
        return self.first <= other.last and other.first <= self.last

    def __str__(self) -> str:
        return f"{ipaddress.IPv4Address(self.first)}-{ipaddress.IPv4Address(self.last)}"


def parse_address(text: str) -> AddressRange:
    """One entry of spec.addresses; raises ValueError with the reason."""
    text = text.strip()
    if "-" in text:
        start, _, end = text.partition("-")
        try:
            first = ipaddress.ip_address(start.strip())
            last = ipaddress.ip_address(end.strip())
        except ValueError:
            raise ValueError("invalid IP range: both ends must be IP addresses") from None
        if first.version != 4 or last.version != 4:
            raise ValueError("only IPv4 addresses are supported")
        if int(last) < int(first):
            raise ValueError("invalid IP range: the first address is after the last")
        return AddressRange(int(first), int(last))
    if "/" not in text:
        raise ValueError("must be a CIDR (e.g. 192.168.10.0/24) or a range "
                         "(e.g. 192.168.9.1-192.168.9.5)")
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError("invalid CIDR") from None
    if net.version != 4:
        raise ValueError("only IPv4 addresses are supported")
    return AddressRange(int(net.network_address), int(net.broadcast_address))


def pool_ranges(pool: dict) -> list[AddressRange]:
    """The valid ranges of a stored pool (invalid entries cannot be stored; skipped anyway)."""
    out = []
    for text in ((pool.get("spec") or {}).get("addresses") or []):
        try:
            out.append(parse_address(str(text)))
        except ValueError:
            continue
    return out


def _validate_selectors(value: Any, field: str) -> list[FieldError]:
    if value is None:
        return []
    if not isinstance(value, list):
        return [E.invalid(field, value, "must be a list of label selectors")]
    errs = []
    for i, sel in enumerate(value):
        if not isinstance(sel, dict):
            errs.append(E.invalid(f"{field}[{i}]", sel, "must be a label selector"))
            continue
        errs += V.validate_labels(sel.get("matchLabels") or {}, f"{field}[{i}].matchLabels")
        for j, expr in enumerate(sel.get("matchExpressions") or []):
            op = (expr or {}).get("operator")
            if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
                errs.append(E.not_supported(f"{field}[{i}].matchExpressions[{j}].operator", op,
                                            ["DoesNotExist", "Exists", "In", "NotIn"]))
    return errs


def validate_spec(spec: dict) -> list[FieldError]:
    errs: list[FieldError] = []
    addresses = spec.get("addresses")
    if not addresses:
        errs.append(E.required("spec.addresses"))
    ranges: list[tuple[int, AddressRange]] = []
    for i, text in enumerate(addresses or []):
        field = f"spec.addresses[{i}]"
        if not isinstance(text, str):
            errs.append(E.invalid(field, text, "must be a string"))
            continue
        try:
            r = parse_address(text)
        except ValueError as e:
            errs.append(E.invalid(field, text, str(e)))
            continue
        for j, other in ranges:
            if r.overlaps(other):
                errs.append(E.invalid(field, text, f"overlaps with spec.addresses[{j}]"))
        ranges.append((i, r))
    for name in ("autoAssign", "avoidBuggyIPs"):
        if name in spec and not isinstance(spec[name], bool):
            errs.append(E.invalid(f"spec.{name}", spec[name], "must be a boolean"))
    alloc = spec.get("serviceAllocation")
    if alloc is not None:
        priority = alloc.get("priority")
        if priority is not None and (not isinstance(priority, int) or priority < 0):
            errs.append(E.invalid("spec.serviceAllocation.priority", priority,
                                  "must be a non-negative integer"))
        for i, ns in enumerate(alloc.get("namespaces") or []):
            errs += [E.invalid(f"spec.serviceAllocation.namespaces[{i}]", ns, m)
                     for m in V.is_dns1123_label(str(ns))]
        for name in ("namespaceSelectors", "serviceSelectors"):
            errs += _validate_selectors(alloc.get(name), f"spec.serviceAllocation.{name}")
    return errs


class _IndexTxn(Txn):
    """Undo a reservation in the overlap index if the store write fails."""

    def __init__(self, index: dict, key: str, previous: list | None):
        self.index, self.key, self.previous = index, key, previous

    def rollback(self) -> None:
        if self.previous is None:
            self.index.pop(self.key, None)
        else:
            self.index[self.key] = self.previous


def _key(obj: dict) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def _cell(value: Any) -> Any:
    """A CRD printer column of type string renders lists and objects as JSON."""
    if value is None:
        return None
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return value


class IPAddressPoolStrategy(Strategy):
    group = GROUP
    version = VERSION
    served_versions = (VERSION,)
    kind = "IPAddressPool"
    plural = "ipaddresspools"
    singular = "ipaddresspool"
    columns = [
        NAME_COLUMN,
        Column("Auto Assign", type="boolean"),
        Column("Avoid Buggy IPs", type="boolean"),
        Column("Addresses"),
        AGE_COLUMN,
    ]

    def __init__(self, config=None):
        super().__init__(config)
        self._ranges: dict[str, list[AddressRange]] = {}   # "ns/name" -> ranges

    def default(self, obj: dict) -> None:
        spec = obj.setdefault("spec", {})
        if isinstance(spec, dict):
            spec.setdefault("autoAssign", True)
            spec.setdefault("avoidBuggyIPs", False)

    def validate(self, obj: dict) -> list[FieldError]:
        errs = V.validate_object_meta(obj.get("metadata") or {}, True)
        return errs + validate_spec(obj.get("spec") or {})

    def validate_update(self, new: dict, old: dict) -> list[FieldError]:
        errs = V.validate_object_meta_update(new.get("metadata") or {}, old.get("metadata") or {})
        return errs + self.validate(new)

    # ---- the overlap index ----------------------------------------------------------------
    def _reserve(self, obj: dict) -> Txn:
        key = _key(obj)
        ranges = pool_ranges(obj)
        for other_key, other_ranges in self._ranges.items():
            if other_key == key:
                continue
            for r in ranges:
                clash = next((o for o in other_ranges if r.overlaps(o)), None)
                if clash is not None:
                    raise E.invalid_error(self.kind, GROUP, obj["metadata"]["name"], [
                        E.invalid("spec.addresses", str(r), f"overlaps with IPAddressPool "
                                  f"{other_key} ({clash})")])
        previous = self._ranges.get(key)
        self._ranges[key] = ranges
        return _IndexTxn(self._ranges, key, previous)

    def begin_create(self, obj: dict) -> Txn:
        return self._reserve(obj)

    def begin_update(self, new: dict, old: dict) -> Txn:
        return self._reserve(new)

    def begin_delete(self, obj: dict) -> Txn:
        self._ranges.pop(_key(obj), None)
        return Txn()

    def restore(self, objects: list[dict]) -> None:
        self._ranges = {_key(o): pool_ranges(o) for o in objects}

    def table_row(self, obj: dict) -> list[Any]:
        spec = obj.get("spec") or {}
        return [obj["metadata"]["name"], _cell(spec.get("autoAssign")),
                _cell(spec.get("avoidBuggyIPs")), _cell(spec.get("addresses")),
                since(obj["metadata"].get("creationTimestamp"))]
