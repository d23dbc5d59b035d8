"""EndpointSlices (discovery.k8s.io/v1)."""
from __future__ import annotations

from typing import Any

from nanokube.api import errors as E
from nanokube.api.errors import FieldError
from nanokube.api.tables import since
from nanokube.registry import validation as V
from nanokube.registry.base import AGE_COLUMN, NAME_COLUMN, Column, Strategy
from nanokube.registry.endpoints import endpoint_ip_errors
from nanokube.registry.pod import PROTOCOLS, dns_label_errors, dns_subdomain_errors

ADDRESS_TYPES = ["FQDN", "IPv4", "IPv6"]
MAX_ENDPOINTS = 1000
MAX_ADDRESSES = 100
MAX_PORTS = 20000


def _fqdn_errors(value: str, field: str) -> list[FieldError]:
    """IsFullyQualifiedDomainName."""
    name = value[:-1] if value.endswith(".") else value
    errs = [E.invalid(field, value, m) for m in V.is_dns1123_subdomain(name)]
    if not errs and "." not in name:
        errs.append(E.invalid(field, value, "should be a domain with at least two segments "
                                            "separated by dots"))
    return errs


def _address_errors(address: str, address_type: str, field: str) -> list[FieldError]:
    if address_type in ("IPv4", "IPv6"):
        ip = V.parse_ip(address)
        if ip is None or ip.version != (4 if address_type == "IPv4" else 6):
            return [E.invalid(field, address, f"must be a valid {address_type} address")]
        return endpoint_ip_errors(address, field)
    if address_type == "FQDN":
        return _fqdn_errors(address, field)
    return []


def _list_with_more(items: list[str], count: int) -> str:
    """listWithMoreString: at most three, `<unset>` when empty."""
    text = ",".join(items[:3])
    if count > 3:
        return f"{text} + {count - 3} more..."
    return text or "<unset>"


class EndpointSliceStrategy(Strategy):
    group = "discovery.k8s.io"
    kind = "EndpointSlice"
    plural = "endpointslices"
    singular = "endpointslice"
    columns = [
        NAME_COLUMN,
        Column("AddressType", description="addressType specifies the type of address carried "
               "by this EndpointSlice. All addresses in this slice must be the same type. This "
               "field is immutable after creation. The following address types are currently "
               "supported: * IPv4: Represents an IPv4 Address. * IPv6: Represents an IPv6 "
               "Address. * FQDN: Represents a Fully Qualified Domain Name."),
        Column("Ports", description="ports specifies the list of network ports exposed by each "
               "endpoint in this slice. Each port must have a unique name. When ports is empty, "
               "it indicates that there are no defined ports. When a port is defined with a nil "
               "port value, it indicates \"all ports\". Each slice may include a maximum of 100 "
               "ports."),
        Column("Endpoints", description="endpoints is a list of unique endpoints in this "
               "slice. Each slice may include a maximum of 1000 endpoints."),
        AGE_COLUMN,
    ]

    def default(self, obj: dict) -> None:
        """SetDefaults_EndpointPort: name "" and protocol TCP (kubectl needs both)."""
        for port in obj.get("ports") or []:
            if isinstance(port, dict):
                if port.get("name") is None:
                    port["name"] = ""
                if port.get("protocol") is None:
                    port["protocol"] = "TCP"

    def validate(self, obj: dict) -> list[FieldError]:
        errs = V.validate_object_meta(obj.get("metadata") or {}, True)
        address_type = obj.get("addressType") or ""
        if not address_type:
            errs.append(E.required("addressType"))
        elif address_type not in ADDRESS_TYPES:
            errs.append(E.not_supported("addressType", address_type, ADDRESS_TYPES))
        errs += self._validate_endpoints(obj.get("endpoints") or [], address_type)
        errs += self._validate_ports(obj.get("ports") or [])
        return errs

    @staticmethod
    def _validate_endpoints(endpoints: list, address_type: str) -> list[FieldError]:
        if len(endpoints) > MAX_ENDPOINTS:
            return [E.too_many("endpoints", len(endpoints), MAX_ENDPOINTS)]
        errs: list[FieldError] = []
        for i, ep in enumerate(endpoints):
            path = f"endpoints[{i}]"
            addresses = ep.get("addresses") or []
            if not addresses:
                errs.append(E.required(f"{path}.addresses", "must contain at least 1 address"))
            elif len(addresses) > MAX_ADDRESSES:
                errs.append(E.too_many(f"{path}.addresses", len(addresses), MAX_ADDRESSES))
            for j, address in enumerate(addresses):
                errs += _address_errors(address, address_type, f"{path}.addresses[{j}]")
            if ep.get("nodeName") is not None:
                errs += dns_subdomain_errors(ep["nodeName"], f"{path}.nodeName")
            if ep.get("hostname") is not None:
                errs += dns_label_errors(ep["hostname"], f"{path}.hostname")
        return errs

    @staticmethod
    def _validate_ports(ports: list) -> list[FieldError]:
        if len(ports) > MAX_PORTS:
            return [E.too_many("ports", len(ports), MAX_PORTS)]
        errs: list[FieldError] = []
        names: set[str] = set()
        for i, port in enumerate(ports):
            path = f"ports[{i}]"
            name = port.get("name") or ""
            if name:
                errs += dns_label_errors(name, f"{path}.name")
            if name in names:
                errs.append(E.duplicate(f"{path}.name", name))
            names.add(name)
            proto = port.get("protocol")
            if proto is None:
                errs.append(E.required(f"{path}.protocol"))
            elif proto not in PROTOCOLS:
                errs.append(E.not_supported(f"{path}.protocol", proto, PROTOCOLS))
            if port.get("appProtocol") is not None:
                errs += [E.invalid(f"{path}.appProtocol", port["appProtocol"], m)
                         for m in V.is_qualified_name(port["appProtocol"])]
        return errs

    def validate_update(self, new: dict, old: dict) -> list[FieldError]:
        errs = V.validate_object_meta_update(new.get("metadata") or {}, old.get("metadata") or {})
        errs += self.validate(new)
        if new.get("addressType") != old.get("addressType"):
            errs.append(E.invalid("addressType", new.get("addressType") or "",
                                  "field is immutable"))
        return errs

    def table_row(self, obj: dict) -> list[Any]:
        ports = []
        for port in obj.get("ports") or []:
            if port.get("port") is not None:
                ports.append(str(port["port"]))
            elif port.get("name") is not None:
                ports.append(port["name"])
            else:
                ports.append("*")
        addresses = [a for ep in obj.get("endpoints") or [] for a in ep.get("addresses") or []]
        return [obj["metadata"]["name"], obj.get("addressType") or "",
                _list_with_more(ports, len(ports)), _list_with_more(addresses, len(addresses)),
                since(obj["metadata"].get("creationTimestamp"))]
