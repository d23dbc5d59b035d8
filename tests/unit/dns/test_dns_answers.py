"""The prepared wire-format answers and the hot path, queried with dnspython (no network)."""
import struct
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
import yaml

from nanokube.addons.dns.controller import ClusterDNS

ROOT = Path(__file__).resolve().parents[3]
BASE = "web.default.svc.cluster.local."


def service(name="web", ns="default", **spec):
    spec.setdefault("clusterIP", "10.96.0.5")
    return {"metadata": {"name": name, "namespace": ns, "resourceVersion": "1"}, "spec": spec}


def slice_(service, ips, ns="default", name=None, hostnames=None):
    hostnames = hostnames or {}
    return {"metadata": {"name": name or f"{service}-abc", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4",
            "endpoints": [dict({"addresses": [ip], "conditions": {"ready": True}},
                               **({"hostname": hostnames[ip]} if ip in hostnames else {}))
                          for ip in ips],
            "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]}


@pytest.fixture
def cluster():
    d = ClusterDNS("cluster.local")
    d.on_service(None, service(ports=[{"name": "http", "port": 80, "protocol": "TCP"}]))
    d.on_service(None, service("db", clusterIP="None"))
    d.on_endpointslice(None, slice_("db", ["10.244.1.5", "10.244.2.6"],
                                    hostnames={"10.244.1.5": "db-0"}))
    d.on_service(None, service("ext", type="ExternalName", externalName="example.com"))
    return d


def ask(d, name, rdtype="A", tcp=False, **kwargs):
    q = dns.message.make_query(name, rdtype, **kwargs)
    wire = d.answers.respond(q.to_wire(), tcp=tcp)
    r = dns.message.from_wire(wire)
    assert r.id == q.id and r.flags & dns.flags.QR
    return r


def values(r, rdtype=None):
    return sorted(rd.to_text() for rrset in r.answer for rd in rrset
                  if rdtype is None or rrset.rdtype == dns.rdatatype.from_text(rdtype))


def test_a_record_echoes_id_case_and_rd(cluster):
    r = ask(cluster, "Web.Default.SVC.cluster.local.")
    assert values(r) == ["10.96.0.5"]
    assert r.question[0].name.to_text() == "Web.Default.SVC.cluster.local."
    assert r.answer[0].name.to_text() == "Web.Default.SVC.cluster.local."
    assert r.flags & dns.flags.AA and r.flags & dns.flags.RD and r.answer[0].ttl == 5
    q = dns.message.make_query(BASE, "A")
    q.flags &= ~dns.flags.RD
    r = dns.message.from_wire(cluster.answers.respond(q.to_wire()))
    assert not r.flags & dns.flags.RD and values(r) == ["10.96.0.5"]


def test_edns_query_gets_an_opt_record_and_plain_query_none(cluster):
    assert ask(cluster, BASE, use_edns=0, payload=4096).edns == 0
    assert ask(cluster, BASE).edns == -1
    # EDNS options (a cookie) do not stop the hot path from answering
    cookie = dns.edns.GenericOption(dns.edns.OptionType.COOKIE, b"12345678")
    r = ask(cluster, BASE, use_edns=0, options=[cookie])
    assert r.edns == 0 and values(r) == ["10.96.0.5"]


def test_srv_with_target_address_in_additional(cluster):
    r = ask(cluster, "_http._tcp." + BASE, "SRV")
    assert values(r) == [f"0 100 80 {BASE}"]
    assert [rd.to_text() for rr in r.additional for rd in rr] == ["10.96.0.5"]


def test_headless_a_hostname_srv_and_ptr(cluster):
    base = "db.default.svc.cluster.local."
    assert values(ask(cluster, base)) == ["10.244.1.5", "10.244.2.6"]
    assert values(ask(cluster, "db-0." + base)) == ["10.244.1.5"]
    assert values(ask(cluster, "10-244-2-6." + base)) == ["10.244.2.6"]
    assert values(ask(cluster, "_pg._tcp." + base, "SRV")) == [
        f"0 100 5432 10-244-2-6.{base}", f"0 100 5432 db-0.{base}"]
    assert values(ask(cluster, "5.1.244.10.in-addr.arpa.", "PTR")) == ["db-0." + base]
    assert values(ask(cluster, "5.0.96.10.in-addr.arpa.", "PTR")) == [BASE]


def test_external_name_cname_for_any_type(cluster):
    for rdtype in ("A", "AAAA", "CNAME"):
        r = ask(cluster, "ext.default.svc.cluster.local.", rdtype)
        assert r.rcode() == dns.rcode.NOERROR and values(r) == ["example.com."]


def test_external_name_inside_the_zone_is_followed(cluster):
    cluster.on_service(None, service("alias", type="ExternalName", externalName=BASE))
    r = ask(cluster, "alias.default.svc.cluster.local.")
    assert values(r, "CNAME") == [BASE] and values(r, "A") == ["10.96.0.5"]


def test_nxdomain_carries_the_zone_soa(cluster):
    for name, zone in (("nope.default.svc.cluster.local.", "cluster.local."),
                       ("9.9.9.10.in-addr.arpa.", "in-addr.arpa.")):
        r = ask(cluster, name, use_edns=0)
        assert r.rcode() == dns.rcode.NXDOMAIN and not r.answer and r.edns == 0
        assert r.flags & dns.flags.AA
        assert [(rr.name.to_text(), rr.rdtype) for rr in r.authority] == [
            (zone, dns.rdatatype.SOA)]
        assert r.authority[0][0].minimum == 5


def test_nodata_for_other_types_and_empty_non_terminals(cluster):
    for name, rdtype in ((BASE, "AAAA"), (BASE, "TXT"), ("default.svc.cluster.local.", "A"),
                         ("svc.cluster.local.", "A"), ("default.pod.cluster.local.", "A")):
        r = ask(cluster, name, rdtype)
        assert r.rcode() == dns.rcode.NOERROR, name
        assert not r.answer and r.authority[0].rdtype == dns.rdatatype.SOA


def test_outside_the_zone_is_refused(cluster):
    for name in ("example.com.", "kubernetes.default.svc.other.", "cluster.local.example."):
        r = ask(cluster, name)
        assert r.rcode() == dns.rcode.REFUSED and not r.answer and not r.authority
    q = dns.message.make_query(BASE, "A", rdclass="CH")
    r = dns.message.from_wire(cluster.answers.respond(q.to_wire()))
    assert r.rcode() == dns.rcode.REFUSED


def test_pod_a_record_and_schema_version(cluster):
    assert values(ask(cluster, "10-244-1-7.default.pod.cluster.local.")) == ["10.244.1.7"]
    assert ask(cluster, "10-244-1-7.default.pod.cluster.local.", "AAAA").rcode() == 0
    assert ask(cluster, "10-244-1-700.default.pod.cluster.local.").rcode() == 3
    assert values(ask(cluster, "dns-version.cluster.local.", "TXT")) == ['"1.0.1"']
    assert ask(cluster, "cluster.local.", "SOA").answer[0].rdtype == dns.rdatatype.SOA


def test_changes_are_visible_at_once(cluster):
    name = "new.default.svc.cluster.local."
    assert ask(cluster, name).rcode() == dns.rcode.NXDOMAIN       # now in the miss cache
    cluster.on_service(None, service("new", clusterIP="10.96.0.77"))
    assert values(ask(cluster, name)) == ["10.96.0.77"]
    old = cluster.services["default/new"]
    cluster.on_service(old, service("new", clusterIP="10.96.0.78"))
    assert values(ask(cluster, name)) == ["10.96.0.78"]
    assert ask(cluster, "77.0.96.10.in-addr.arpa.", "PTR").rcode() == dns.rcode.NXDOMAIN
    cluster.on_service(cluster.services["default/new"], None)
    assert ask(cluster, name).rcode() == dns.rcode.NXDOMAIN
    # endpoints leaving and the last one going makes the headless name disappear
    base = "db.default.svc.cluster.local."
    old_slice = cluster.slices["default/db-abc"]
    new_slice = slice_("db", ["10.244.2.6"])
    cluster.on_endpointslice(old_slice, new_slice)
    assert values(ask(cluster, base)) == ["10.244.2.6"]
    assert ask(cluster, "db-0." + base).rcode() == dns.rcode.NXDOMAIN
    cluster.on_endpointslice(new_slice, None)
    assert ask(cluster, base).rcode() == dns.rcode.NXDOMAIN
    assert (b"\x03new" not in b"".join(cluster.answers.table))


def test_big_answer_truncates_over_udp_but_not_over_tcp_or_big_edns():
    d = ClusterDNS()
    d.on_service(None, service("big", clusterIP="None"))
    ips = [f"10.244.1.{i}" for i in range(1, 61)]               # 60 x 16 bytes > 512
    d.on_endpointslice(None, slice_("big", ips))
    name = "big.default.svc.cluster.local."
    r = ask(d, name)
    assert r.flags & dns.flags.TC and not r.answer
    r = ask(d, name, use_edns=0, payload=1232)
    assert not r.flags & dns.flags.TC and len(values(r)) == 60 and r.edns == 0
    r = ask(d, name, use_edns=0, payload=512)
    assert r.flags & dns.flags.TC and r.edns == 0
    r = ask(d, name, tcp=True)
    assert not r.flags & dns.flags.TC and len(values(r)) == 60


def test_unusual_queries():
    d = ClusterDNS()
    d.on_service(None, service())
    q = dns.message.make_query(BASE, "A")
    wire = q.to_wire()
    # a known-answer record in the answer section: parsed, rewritten, answered
    qa = dns.message.make_query(BASE, "A")
    qa.answer.append(dns.rrset.from_text(BASE, 5, "IN", "A", "10.0.0.1"))
    r = dns.message.from_wire(d.answers.respond(qa.to_wire()))
    assert r.id == qa.id and values(r) == ["10.96.0.5"]
    # a compression pointer in the first question can only point forward: FORMERR
    qname = wire[12:-4]
    compressed = (wire[:12] + qname[:4] + struct.pack("!H", 0xC000 | (12 + 4 + 2 + 4))
                  + wire[-4:] + qname[4:])
    r = dns.message.from_wire(d.answers.respond(compressed))
    assert r.id == q.id and r.rcode() == dns.rcode.FORMERR
    # two questions -> FORMERR
    two = wire[:4] + b"\x00\x02" + wire[6:] + wire[12:]
    assert dns.message.from_wire(d.answers.respond(two)).rcode() == dns.rcode.FORMERR
    # EDNS version 1 -> BADVERS
    q1 = dns.message.make_query(BASE, "A", use_edns=1)
    assert dns.message.from_wire(d.answers.respond(q1.to_wire())).rcode() == dns.rcode.BADVERS
    # another opcode -> NOTIMP
    qn = dns.message.make_query(BASE, "A")
    qn.set_opcode(dns.opcode.NOTIFY)
    assert dns.message.from_wire(d.answers.respond(qn.to_wire())).rcode() == dns.rcode.NOTIMP
    # responses and runts get no answer; garbage after a header gets FORMERR
    resp = d.answers.respond(wire)
    assert d.answers.respond(resp) is None
    assert d.answers.respond(b"\x00\x01") is None
    bad = d.answers.respond(wire[:12] + b"\x3f")
    assert bad[:2] == wire[:2] and bad[3] & 0x0F == dns.rcode.FORMERR
    # a truncated OPT record is not trusted to the hot path
    q0 = dns.message.make_query(BASE, "A", use_edns=0).to_wire()
    assert d.answers.respond(q0[:-4]) is not None


def test_manifest_matches_kube_dns():
    docs = list(yaml.safe_load_all((ROOT / "nanokube/addons/manifests/dns.yaml").read_text()))
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"ServiceAccount", "Deployment", "Service"}
    svc = kinds["Service"]
    assert (svc["metadata"]["name"], svc["metadata"]["namespace"]) == ("kube-dns", "kube-system")
    assert svc["spec"]["clusterIP"] == "10.96.0.10"
    assert svc["metadata"]["labels"]["kubernetes.io/name"] == "CoreDNS"
    assert {(p["name"], p["port"], p["protocol"]) for p in svc["spec"]["ports"]} == {
        ("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9153, "TCP")}
    dep = kinds["Deployment"]
    assert dep["metadata"]["name"] == "coredns"
    pod = dep["spec"]["template"]
    assert pod["metadata"]["labels"] == svc["spec"]["selector"] == {"k8s-app": "kube-dns"}
    c = pod["spec"]["containers"][0]
    assert c["image"] == "nanokube" and c["args"][0] == "dns"
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": 8181}
    # the args parse with the command's own parser
    from nanokube.addons.dns.main import parse_args
    args = parse_args(c["args"][1:])
    assert args.listen == "0.0.0.0:53" and args.ready_listen == "0.0.0.0:8181"


def test_listen_addresses():
    from nanokube.addons.dns.server import split_hostport
    assert split_hostport("0.0.0.0:53", 53) == ("0.0.0.0", 53)
    assert split_hostport(":8181", 80) == ("0.0.0.0", 8181)
    assert split_hostport("127.0.0.1", 53) == ("127.0.0.1", 53)
    assert split_hostport("[::1]:5353", 53) == ("::1", 5353)
