"""The Kubernetes DNS schema (kubernetes/dns specification 1.0.1) as plain records.

`service_records` turns one Service and its EndpointSlices into the records the specification
gives them; `RecordIndex` keeps every source's records, knows which names exist (for NODATA
versus NXDOMAIN, RFC 8020: a name with descendants exists) and says which RRsets changed, so that
the answers built from them are rebuilt incrementally. Names are lower-case, absolute, with the
trailing dot; rdata is in presentation format, to be built by dnspython.
"""
from __future__ import annotations

import ipaddress
from typing import Iterable, NamedTuple

SCHEMA_VERSION = "1.0.1"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"

A, NS, CNAME, SOA, PTR, TXT, AAAA, SRV = 1, 2, 5, 6, 12, 16, 28, 33
REVERSE_ZONES = ("in-addr.arpa.", "ip6.arpa.")


class Record(NamedTuple):
    name: str       # "web.default.svc.cluster.local."
    rdtype: int
    rdata: str      # presentation format: "10.96.0.5", "0 100 80 web.default.svc.cluster.local."


def absolute(zone: str) -> str:
    zone = zone.strip().lower().rstrip(".")
    return zone + "." if zone else "."


def address_record(name: str, ip: str) -> Record:
    return Record(name, AAAA if ":" in ip else A, ip)


def reverse_name(ip: str) -> str:
    """"10.96.0.5" -> "5.0.96.10.in-addr.arpa."."""
    return ipaddress.ip_address(ip).reverse_pointer + "."


def dashed(ip: str) -> str:
    """The system-chosen endpoint hostname when an endpoint has none (CoreDNS's form)."""
    return ip.replace(".", "-").replace(":", "-")


def zone_records(zone: str, ttl_minimum: int = 5, serial: int = 1) -> list[Record]:
    """The apex of an authoritative zone: SOA, NS and, for the cluster zone, the schema version."""
    soa = f"ns.dns.{zone} hostmaster.{zone} {serial} 7200 1800 86400 {ttl_minimum}"
    records = [Record(zone, SOA, soa), Record(zone, NS, f"ns.dns.{zone}")]
    if zone not in REVERSE_ZONES:
        records.append(Record(f"dns-version.{zone}", TXT, f'"{SCHEMA_VERSION}"'))
    return records


def _named_ports(ports: Iterable[dict]) -> list[tuple[str, str, int]]:
    """(name, protocol, port) of ports that have a name: unnamed ports get no SRV record."""
    out = []
    for p in ports or ():
        if p.get("name") and p.get("port") is not None:
            out.append((p["name"].lower(), (p.get("protocol") or "TCP").lower(), int(p["port"])))
    return out


def _srv(port_name: str, proto: str, base: str, port: int, target: str) -> Record:
    return Record(f"_{port_name}._{proto}.{base}", SRV, f"0 100 {port} {target}")


def ready_endpoints(service: dict, slices: Iterable[dict]) -> list[tuple[str, str, list]]:
    """(ip, hostname, named ports) of every endpoint DNS publishes: ready ones (a missing
    `ready` condition means ready), or all of them when the Service publishes not-ready
    addresses. FQDN slices carry no IPs and are skipped."""
    publish_all = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    seen: set[str] = set()
    out = []
    for eps in slices:
        if eps.get("addressType") not in ("IPv4", "IPv6"):
            continue
        ports = _named_ports(eps.get("ports") or ())
        for ep in eps.get("endpoints") or ():
            ready = (ep.get("conditions") or {}).get("ready")
            if ready is False and not publish_all:
                continue
            for ip in ep.get("addresses") or ():
                if ip in seen:
                    continue
                seen.add(ip)
                hostname = (ep.get("hostname") or dashed(ip)).lower()
                out.append((ip, hostname, ports))
    return out


def service_records(service: dict, slices: Iterable[dict], zone: str) -> list[Record]:
    """The records of one Service: ClusterIP -> A/AAAA, SRV per named port, PTR; headless ->
    A/AAAA per ready endpoint plus `<hostname>.<svc>` records, SRV per endpoint and named port,
    PTR per endpoint; ExternalName -> CNAME."""
    meta, spec = service.get("metadata") or {}, service.get("spec") or {}
    base = f"{meta.get('name', '')}.{meta.get('namespace', 'default')}.svc.{zone}".lower()
    if spec.get("type") == "ExternalName":
        target = (spec.get("externalName") or "").rstrip(".")
        return [Record(base, CNAME, target + ".")] if target else []
    cluster_ips = [ip for ip in (spec.get("clusterIPs") or [spec.get("clusterIP")])
                   if ip and ip != "None"]
    if spec.get("clusterIP") == "None":
        return _headless_records(service, slices, base)
    if not cluster_ips:
        return []                       # not allocated yet
    records = [address_record(base, ip) for ip in cluster_ips]
    records += [Record(reverse_name(ip), PTR, base) for ip in cluster_ips]
    records += [_srv(name, proto, base, port, base)
                for name, proto, port in _named_ports(spec.get("ports") or ())]
    return records


def _headless_records(service: dict, slices: Iterable[dict], base: str) -> list[Record]:
    records = []
    for ip, hostname, ports in ready_endpoints(service, slices):
        host = f"{hostname}.{base}"
        records.append(address_record(base, ip))
        records.append(address_record(host, ip))
        records.append(Record(reverse_name(ip), PTR, host))
        records += [_srv(name, proto, base, port, host) for name, proto, port in ports]
    return records


def pod_address(name: str, zone: str) -> str | None:
    """`1-2-3-4.<ns>.pod.<zone>` -> "1.2.3.4", computed from the name alone, as CoreDNS's
    `pods insecure` (the default Corefile's) does; None for any other name."""
    if not name.endswith(".pod." + zone):
        return None
    labels = name[: -len(".pod." + zone)].split(".")
    if len(labels) != 2 or not labels[1]:
        return None
    parts = labels[0].split("-")
    if len(parts) != 4:
        return None
    try:
        return str(ipaddress.IPv4Address(".".join(parts)))
    except ValueError:
        return None


class RecordIndex:
    """Every source's records, the RRsets they make and the names that exist."""

    def __init__(self, zones: Iterable[str]):
        self.zones = [absolute(z) for z in zones]
        self._sources: dict[str, list[Record]] = {}
        self._rrsets: dict[tuple[str, int], dict[str, list[str]]] = {}
        self._names: dict[str, int] = {}       # name -> how many records at or below it

    # ---- changes ----------------------------------------------------------------------------
    def set_source(self, source: str, records: list[Record]) -> set[tuple[str, int]]:
        """Replace what `source` (e.g. "svc/default/web") contributes; the changed RRsets."""
        old = self._sources.pop(source, [])
        if records:
            self._sources[source] = list(records)
        if old == records:
            return set()
        changed = set()
        for rec in old:
            self._count(rec.name, -1)
            rrset = self._rrsets.get((rec.name, rec.rdtype))
            if rrset is not None:
                rrset.pop(source, None)
                if not rrset:
                    del self._rrsets[(rec.name, rec.rdtype)]
            changed.add((rec.name, rec.rdtype))
        for rec in records:
            self._count(rec.name, +1)
            values = self._rrsets.setdefault((rec.name, rec.rdtype), {}).setdefault(source, [])
            if rec.rdata not in values:
                values.append(rec.rdata)
            changed.add((rec.name, rec.rdtype))
        return changed

    def _count(self, name: str, delta: int) -> None:
        zone = self.zone_of(name)
        while True:
            n = self._names.get(name, 0) + delta
            if n > 0:
                self._names[name] = n
            else:
                self._names.pop(name, None)
            if name == zone or zone is None or name in (".", ""):
                return
            name = name.split(".", 1)[1]

    # ---- reading ------------------------------------------------------------------------------
    def zone_of(self, name: str) -> str | None:
        """The most specific of our zones that holds `name`, or None (not ours)."""
        best = None
        for zone in self.zones:
            if (name == zone or name.endswith("." + zone)) and (best is None or
                                                                 len(zone) > len(best)):
                best = zone
        return best

    def rrset(self, name: str, rdtype: int) -> list[str]:
        """All rdata at (name, type), each once, in a stable order."""
        values: list[str] = []
        for _source, rdatas in sorted(self._rrsets.get((name, rdtype), {}).items()):
            values += [r for r in rdatas if r not in values]
        return values

    def types_at(self, name: str) -> list[int]:
        return sorted(t for (n, t) in self._rrsets if n == name)

    def exists(self, name: str) -> bool:
        return name in self._names

    def keys(self) -> list[tuple[str, int]]:
        return list(self._rrsets)
