"""Endpoints (core/v1), and the endpoint-IP rules EndpointSlices share."""
from __future__ import annotations

import ipaddress
from typing import Any

from nanokube.api import errors as E
from nanokube.api.errors import FieldError
from nanokube.api.tables import since
from nanokube.registry import validation as V
from nanokube.registry.base import AGE_COLUMN, NAME_COLUMN, Column, Strategy
from nanokube.registry.pod import PROTOCOLS, dns_label_errors, dns_subdomain_errors


def endpoint_ip_errors(value: str, field: str) -> list[FieldError]:
    """ValidateEndpointIP (formerly ValidateNonSpecialIP)."""
    ip = V.parse_ip(value)
    if ip is None:
        return [E.invalid(field, value, "must be a valid IP address")]
    errs = []
    if ip.is_unspecified:
        errs.append(E.invalid(field, value, f"may not be unspecified ({value})"))
    if ip.is_loopback:
        errs.append(E.invalid(field, value, "may not be in the loopback range (127.0.0.0/8, "
                                            "::1/128)"))
    if ip in ipaddress.ip_network("169.254.0.0/16") or ip in ipaddress.ip_network("fe80::/10"):
        errs.append(E.invalid(field, value, "may not be in the link-local range "
                                            "(169.254.0.0/16, fe80::/10)"))
    if ip in ipaddress.ip_network("224.0.0.0/24") or ip in ipaddress.ip_network("ff02::/16"):
        errs.append(E.invalid(field, value, "may not be in the link-local multicast range "
                                            "(224.0.0.0/24, ff02::/10)"))
    return errs


def _validate_address(addr: dict, field: str) -> list[FieldError]:
    ip = addr.get("ip") or ""
    errs = V.is_valid_ip(f"{field}.ip", ip)
    if addr.get("hostname"):
        errs += dns_label_errors(addr["hostname"], f"{field}.hostname")
    if addr.get("nodeName") is not None:
        errs += dns_subdomain_errors(addr["nodeName"], f"{field}.nodeName")
    return errs + endpoint_ip_errors(ip, f"{field}.ip")


def _validate_port(port: dict, require_name: bool, field: str) -> list[FieldError]:
    errs: list[FieldError] = []
    name = port.get("name") or ""
    if require_name and not name:
        errs.append(E.required(f"{field}.name"))
    elif name:
        errs += dns_label_errors(name, f"{field}.name")
    number = port.get("port") or 0
    errs += [E.invalid(f"{field}.port", number, m) for m in V.is_valid_port_num(number)]
    proto = port.get("protocol") or ""
    if not proto:
        errs.append(E.required(f"{field}.protocol"))
    elif proto not in PROTOCOLS:
        errs.append(E.not_supported(f"{field}.protocol", proto, PROTOCOLS))
    if port.get("appProtocol") is not None:
        errs += [E.invalid(f"{field}.appProtocol", port["appProtocol"], m)
                 for m in V.is_qualified_name(port["appProtocol"])]
    return errs


def format_endpoints(obj: dict) -> str:
    """formatEndpoints: up to three ip:port, then `+ N more...`; `<none>` without subsets."""
    subsets = obj.get("subsets") or []
    if not subsets:
        return "<none>"
    shown: list[str] = []
    count = 0
    more = False
    for subset in subsets:
        addresses = subset.get("addresses") or []
        ports = subset.get("ports") or []
        targets = [None] if not ports else [p.get("port") for p in ports]
        for port in targets:
            count += len(addresses)
            for addr in addresses:
                if len(shown) == 3:
                    more = True
                    break
                ip = addr.get("ip") or ""
                if port is None:
                    shown.append(ip)
                else:
                    shown.append(f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}")
    text = ",".join(shown)
    return f"{text} + {count - 3} more..." if more else text


class EndpointsStrategy(Strategy):
    kind = "Endpoints"
    plural = "endpoints"
    singular = "endpoints"
    short_names = ("ep",)
    columns = [
        NAME_COLUMN,
        Column("Endpoints", description="Endpoints of the service"),
        AGE_COLUMN,
    ]

    def default(self, obj: dict) -> None:
        for subset in obj.get("subsets") or []:
            for port in subset.get("ports") or []:
                if not port.get("protocol"):
                    port["protocol"] = "TCP"

    def validate(self, obj: dict) -> list[FieldError]:
        errs = V.validate_object_meta(obj.get("metadata") or {}, True)
        for i, subset in enumerate(obj.get("subsets") or []):
            path = f"subsets[{i}]"
            addresses = subset.get("addresses") or []
            not_ready = subset.get("notReadyAddresses") or []
            if not addresses and not not_ready:
                errs.append(E.required(path, "must specify `addresses` or `notReadyAddresses`"))
            for j, addr in enumerate(addresses):
                errs += _validate_address(addr, f"{path}.addresses[{j}]")
            for j, addr in enumerate(not_ready):
                errs += _validate_address(addr, f"{path}.notReadyAddresses[{j}]")
            ports = subset.get("ports") or []
            for j, port in enumerate(ports):
                errs += _validate_port(port, len(ports) > 1, f"{path}.ports[{j}]")
        return errs

    def validate_update(self, new: dict, old: dict) -> list[FieldError]:
        errs = V.validate_object_meta_update(new.get("metadata") or {}, old.get("metadata") or {})
        return errs + self.validate(new)

    def table_row(self, obj: dict) -> list[Any]:
        return [obj["metadata"]["name"], format_endpoints(obj),
                since(obj["metadata"].get("creationTimestamp"))]
