"""The Kubernetes DNS schema built from Service and EndpointSlice dicts (no network)."""
from nanokube.addons.dns.records import (A, AAAA, CNAME, PTR, SRV, Record, RecordIndex,
                                         pod_address, reverse_name, service_records)

ZONE = "cluster.local."


def svc(name="web", ns="default", **spec):
    spec.setdefault("clusterIP", "10.96.0.5")
    return {"metadata": {"name": name, "namespace": ns}, "spec": spec}


def eps(service="db", ns="default", endpoints=(), ports=(), address_type="IPv4", name=None):
    return {"metadata": {"name": name or f"{service}-x", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": address_type, "endpoints": list(endpoints), "ports": list(ports)}


def ep(ip, ready=True, hostname=None):
    e = {"addresses": [ip], "conditions": {"ready": ready}}
    if hostname:
        e["hostname"] = hostname
    return e


def test_cluster_ip_service_gets_a_ptr_and_srv_for_named_ports_only():
    s = svc(clusterIPs=["10.96.0.5"], ports=[{"name": "http", "port": 80, "protocol": "TCP"},
                                             {"name": "DNS", "port": 53, "protocol": "UDP"},
                                             {"port": 81, "protocol": "TCP"}])
    got = set(service_records(s, [], ZONE))
    base = "web.default.svc.cluster.local."
    assert got == {
        Record(base, A, "10.96.0.5"),
        Record("5.0.96.10.in-addr.arpa.", PTR, base),
        Record("_http._tcp." + base, SRV, f"0 100 80 {base}"),
        Record("_dns._udp." + base, SRV, f"0 100 53 {base}"),
    }


def test_dual_stack_cluster_ips_get_a_and_aaaa():
    s = svc(clusterIPs=["10.96.0.5", "fd00::5"])
    types = {(r.rdtype, r.rdata) for r in service_records(s, [], ZONE) if r.rdtype in (A, AAAA)}
    assert types == {(A, "10.96.0.5"), (AAAA, "fd00::5")}


def test_service_without_cluster_ip_yet_has_no_records():
    assert service_records(svc(clusterIP=""), [], ZONE) == []


def test_headless_service_publishes_ready_endpoints_with_hostnames():
    s = svc("db", clusterIP="None")
    slices = [eps(endpoints=[ep("10.244.1.5", hostname="db-0"), ep("10.244.2.6"),
                             ep("10.244.2.7", ready=False)],
                  ports=[{"name": "pg", "port": 5432, "protocol": "TCP"}, {"port": 9}])]
    got = set(service_records(s, slices, ZONE))
    base = "db.default.svc.cluster.local."
    assert got == {
        Record(base, A, "10.244.1.5"), Record(base, A, "10.244.2.6"),
        Record("db-0." + base, A, "10.244.1.5"), Record("10-244-2-6." + base, A, "10.244.2.6"),
        Record("5.1.244.10.in-addr.arpa.", PTR, "db-0." + base),
        Record("6.2.244.10.in-addr.arpa.", PTR, "10-244-2-6." + base),
        Record("_pg._tcp." + base, SRV, f"0 100 5432 db-0.{base}"),
        Record("_pg._tcp." + base, SRV, f"0 100 5432 10-244-2-6.{base}"),
    }


def test_headless_missing_ready_condition_counts_as_ready_and_publish_not_ready():
    e = {"addresses": ["10.244.1.9"], "conditions": {}}
    assert service_records(svc("db", clusterIP="None"), [eps(endpoints=[e])], ZONE)
    s = svc("db", clusterIP="None", publishNotReadyAddresses=True)
    got = service_records(s, [eps(endpoints=[ep("10.244.1.8", ready=False)])], ZONE)
    assert Record("db.default.svc.cluster.local.", A, "10.244.1.8") in got


def test_headless_without_ready_endpoints_has_no_records_and_fqdn_slices_are_ignored():
    s = svc("db", clusterIP="None")
    assert service_records(s, [eps(endpoints=[ep("10.244.1.5", ready=False)])], ZONE) == []
    fqdn = eps(endpoints=[{"addresses": ["example.com"]}], address_type="FQDN")
    assert service_records(s, [fqdn], ZONE) == []


def test_external_name_is_a_cname():
    s = svc("ext", type="ExternalName", externalName="Example.COM", clusterIP=None)
    assert service_records(s, [], ZONE) == [
        Record("ext.default.svc.cluster.local.", CNAME, "Example.COM.")]


def test_pod_address_from_the_name_alone():
    assert pod_address("10-244-1-5.default.pod.cluster.local.", ZONE) == "10.244.1.5"
    assert pod_address("10-244-1-500.default.pod.cluster.local.", ZONE) is None
    assert pod_address("10-244-1.default.pod.cluster.local.", ZONE) is None
    assert pod_address("x.10-244-1-5.default.pod.cluster.local.", ZONE) is None
    assert pod_address("10-244-1-5.default.svc.cluster.local.", ZONE) is None


def test_reverse_name():
    assert reverse_name("10.96.0.10") == "10.0.96.10.in-addr.arpa."
    assert reverse_name("fd00::1").endswith(".ip6.arpa.")


def test_index_tracks_rrsets_existence_and_changes():
    idx = RecordIndex([ZONE, "in-addr.arpa."])
    base = "web.default.svc.cluster.local."
    changed = idx.set_source("svc/default/web", [Record(base, A, "10.96.0.5")])
    assert changed == {(base, A)}
    assert idx.rrset(base, A) == ["10.96.0.5"]
    # ancestors exist (empty non-terminals), siblings do not
    assert idx.exists("default.svc.cluster.local.") and idx.exists("svc.cluster.local.")
    assert not idx.exists("other.default.svc.cluster.local.")
    # two sources share the same RRset (e.g. an endpoint IP in two headless Services)
    idx.set_source("svc/default/b", [Record("9.1.244.10.in-addr.arpa.", PTR, "x.b.")])
    idx.set_source("svc/default/c", [Record("9.1.244.10.in-addr.arpa.", PTR, "x.c.")])
    assert idx.rrset("9.1.244.10.in-addr.arpa.", PTR) == ["x.b.", "x.c."]
    assert idx.set_source("svc/default/web", [Record(base, A, "10.96.0.5")]) == set()
    assert idx.set_source("svc/default/web", []) == {(base, A)}
    assert idx.rrset(base, A) == [] and not idx.exists("default.svc.cluster.local.")
    assert idx.zone_of("5.0.96.10.in-addr.arpa.") == "in-addr.arpa."
    assert idx.zone_of("example.com.") is None
