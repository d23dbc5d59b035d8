"""L2Advertisements (metallb.io/v1beta1, namespaced): which pools are announced by ARP, from
which nodes and interfaces. Without ipAddressPools and ipAddressPoolSelectors every pool is
announced (MetalLB's rule); the announcing side lives in the node agent."""
from __future__ import annotations

from typing import Any

from nanokube.api import errors as E
from nanokube.api.errors import FieldError
from nanokube.api.tables import since
from nanokube.registry import validation as V
from nanokube.registry.base import AGE_COLUMN, NAME_COLUMN, Column, Strategy
from nanokube.registry.ipaddresspool import GROUP, VERSION, _cell, _validate_selectors


def _string_list(value: Any, field: str, check=None) -> list[FieldError]:
    if value is None:
        return []
    if not isinstance(value, list):
        return [E.invalid(field, value, "must be a list of strings")]
    errs = []
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item:
            errs.append(E.invalid(f"{field}[{i}]", item, "must be a non-empty string"))
        elif check:
            errs += [E.invalid(f"{field}[{i}]", item, m) for m in check(item)]
    return errs


class L2AdvertisementStrategy(Strategy):
    group = GROUP
    version = VERSION
    served_versions = (VERSION,)
    kind = "L2Advertisement"
    plural = "l2advertisements"
    singular = "l2advertisement"
    columns = [
        NAME_COLUMN,
        Column("IPAddressPools"),
        Column("IPAddressPool Selectors"),
        Column("Interfaces"),
        Column("Node Selectors", priority=10),
        AGE_COLUMN,
    ]

    def validate(self, obj: dict) -> list[FieldError]:
        errs = V.validate_object_meta(obj.get("metadata") or {}, True)
        spec = obj.get("spec") or {}
        errs += _string_list(spec.get("ipAddressPools"), "spec.ipAddressPools",
                             V.is_dns1123_subdomain)
        errs += _string_list(spec.get("interfaces"), "spec.interfaces")
        errs += _validate_selectors(spec.get("ipAddressPoolSelectors"),
                                    "spec.ipAddressPoolSelectors")
        errs += _validate_selectors(spec.get("nodeSelectors"), "spec.nodeSelectors")
        return errs

    def validate_update(self, new: dict, old: dict) -> list[FieldError]:
        errs = V.validate_object_meta_update(new.get("metadata") or {}, old.get("metadata") or {})
        return errs + self.validate(new)

    def table_row(self, obj: dict) -> list[Any]:
        spec = obj.get("spec") or {}
        return [obj["metadata"]["name"], _cell(spec.get("ipAddressPools")),
                _cell(spec.get("ipAddressPoolSelectors")), _cell(spec.get("interfaces")),
                _cell(spec.get("nodeSelectors")),
                since(obj["metadata"].get("creationTimestamp"))]
