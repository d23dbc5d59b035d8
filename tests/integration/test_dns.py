"""Cluster DNS against a real `nanokube server`: Services and EndpointSlices written through the
API, the DNS server run as `python -m nanokube.addons.dns` on loopback, queried with dnspython
over UDP and TCP. No root needed."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from harness import ROOT, ApiServerProcess, free_port, require_kubectl, stop_process
from nanokube.client import Client

SVC = Client.resource_path("", "v1", "services", "default")
EPS = Client.resource_path("discovery.k8s.io", "v1", "endpointslices", "default")


class DNSProcess:
    def __init__(self, kubeconfig: str, log_path):
        self.port = free_port()
        self.ready_port = free_port()
        self.log = log_path
        self.cmd = [sys.executable, "-m", "nanokube.addons.dns", "--kubeconfig", kubeconfig,
                    "--listen", f"127.0.0.1:{self.port}",
                    "--ready-listen", f"127.0.0.1:{self.ready_port}",
                    "--health-listen", f"127.0.0.1:{self.ready_port}",
                    "--metrics-listen", f"127.0.0.1:{self.ready_port}"]
        self.proc: subprocess.Popen | None = None

    def http(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ready_port}{path}",
                                        timeout=1) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, ""

    def start(self) -> "DNSProcess":
        self.proc = subprocess.Popen(self.cmd, stdout=open(self.log, "ab"),
                                     stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dns exited: {self.log.read_text()[-3000:]}")
            try:
                if self.http("/ready")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"dns not ready: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        stop_process(self.proc)


# One API server and one DNS server for the module: every test uses its own names.
@pytest.fixture(scope="module")
def apiserver(tmp_path_factory):
    server = ApiServerProcess(tmp_path_factory.mktemp("dns") / "data")
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def dns_server(apiserver):
    server = DNSProcess(apiserver.kubeconfig, apiserver.data_dir.parent / "dns.log")
    try:
        yield server.start()
    finally:
        server.stop()


def kubectl(apiserver, *args: str) -> str:
    require_kubectl()
    env = dict(os.environ, KUBECONFIG=apiserver.kubeconfig)
    proc = subprocess.run(["kubectl", *args], capture_output=True, text=True, env=env,
                          timeout=30, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture
async def api(apiserver):
    client = Client.from_kubeconfig(apiserver.kubeconfig)
    try:
        yield client
    finally:
        await client.close()


def service(name: str, **spec) -> dict:
    spec.setdefault("ports", [{"name": "http", "port": 80, "protocol": "TCP"}])
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def endpoint_slice(service_name: str, ips: list[str], hostnames: dict | None = None,
                   not_ready: tuple = ()) -> dict:
    hostnames = hostnames or {}
    endpoints = []
    for ip in ips:
        ep = {"addresses": [ip], "conditions": {"ready": ip not in not_ready}}
        if ip in hostnames:
            ep["hostname"] = hostnames[ip]
        endpoints.append(ep)
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{service_name}-1",
                         "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": "IPv4", "endpoints": endpoints,
            "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]}


async def query(server: DNSProcess, name: str, rdtype: str = "A", tcp: bool = False,
                **kwargs) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype, **kwargs)
    send = dns.asyncquery.tcp if tcp else dns.asyncquery.udp
    return await send(q, "127.0.0.1", port=server.port, timeout=2)


def answers(msg: dns.message.Message) -> list[str]:
    return sorted(rd.to_text() for rrset in msg.answer for rd in rrset)


async def until(predicate, timeout: float = 0.1) -> float:
    """Poll predicate() (a coroutine function) until true; the time it took, or fail."""
    start = time.monotonic()
    while True:
        if await predicate():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not true within {timeout * 1000:.0f} ms")


async def test_cluster_dns_schema_over_udp_and_tcp(apiserver, dns_server, api):
    web = await api.create(SVC, service("web"))
    ip = web["spec"]["clusterIP"]
    await api.create(SVC, service("db", clusterIP="None",
                                  ports=[{"name": "pg", "port": 5432, "protocol": "TCP"}]))
    await api.create(EPS, endpoint_slice("db", ["10.244.1.5", "10.244.2.6", "10.244.2.7"],
                                         {"10.244.1.5": "db-0"}, not_ready=("10.244.2.7",)))
    await api.create(SVC, service("ext", type="ExternalName", externalName="example.com",
                                  ports=[]))
    zone = "default.svc.cluster.local."

    async def have_all():
        r = await query(dns_server, "ext." + zone)
        return r.rcode() == 0 and r.answer
    await until(have_all, timeout=5)

    for tcp in (False, True):
        r = await query(dns_server, "web." + zone, tcp=tcp)
        assert answers(r) == [ip] and r.flags & dns.flags.AA
        r = await query(dns_server, "_http._tcp.web." + zone, "SRV", tcp=tcp)
        assert answers(r) == [f"0 100 80 web.{zone}"]
        r = await query(dns_server, "db." + zone, tcp=tcp, use_edns=0)
        assert answers(r) == ["10.244.1.5", "10.244.2.6"] and r.edns == 0
        assert answers(await query(dns_server, "db-0.db." + zone, tcp=tcp)) == ["10.244.1.5"]
        r = await query(dns_server, "ext." + zone, tcp=tcp)
        assert r.answer[0].rdtype == dns.rdatatype.CNAME and answers(r) == ["example.com."]
        ptr = ".".join(reversed(ip.split("."))) + ".in-addr.arpa."
        assert answers(await query(dns_server, ptr, "PTR", tcp=tcp)) == ["web." + zone]
        r = await query(dns_server, "5.1.244.10.in-addr.arpa.", "PTR", tcp=tcp)
        assert answers(r) == ["db-0.db." + zone]
        r = await query(dns_server, "nope." + zone, tcp=tcp)
        assert r.rcode() == dns.rcode.NXDOMAIN
        assert r.authority[0].rdtype == dns.rdatatype.SOA
        assert r.authority[0].name.to_text() == "cluster.local."
        r = await query(dns_server, "example.com.", tcp=tcp)
        assert r.rcode() == dns.rcode.REFUSED and not r.answer
        r = await query(dns_server, "web." + zone, "AAAA", tcp=tcp)
        assert r.rcode() == dns.rcode.NOERROR and not r.answer
        r = await query(dns_server, "10-244-1-5.default.pod.cluster.local.", tcp=tcp)
        assert answers(r) == ["10.244.1.5"]
    # the `kubernetes` Service the API server keeps is resolvable too
    r = await query(dns_server, "kubernetes.default.svc.cluster.local.")
    assert r.rcode() == 0 and len(r.answer) == 1
    status, text = dns_server.http("/metrics")
    assert status == 200 and 'proto="tcp"' in text
    assert dns_server.http("/health") == (200, "OK")


async def test_changes_are_answered_within_100_ms(apiserver, dns_server, api):
    name = "late.default.svc.cluster.local."
    assert (await query(dns_server, name)).rcode() == dns.rcode.NXDOMAIN
    created = await api.create(SVC, service("late"))

    async def resolves():
        return answers(await query(dns_server, name)) == [created["spec"]["clusterIP"]]
    took = await until(resolves, timeout=0.1)
    assert took < 0.1

    await api.create(SVC, service("hl", clusterIP="None"))
    await api.create(EPS, endpoint_slice("hl", ["10.244.1.10"]))
    hl = "hl.default.svc.cluster.local."

    async def one_endpoint():
        return answers(await query(dns_server, hl)) == ["10.244.1.10"]
    await until(one_endpoint, timeout=0.1)
    await api.patch(Client.resource_path("discovery.k8s.io", "v1", "endpointslices",
                                         "default", "hl-1"),
                    {"endpoints": [{"addresses": ["10.244.1.10"]}, {"addresses": ["10.244.1.11"]}]})

    async def two_endpoints():
        return answers(await query(dns_server, hl)) == ["10.244.1.10", "10.244.1.11"]
    await until(two_endpoints, timeout=0.1)

    await api.delete(Client.resource_path("", "v1", "services", "default", "late"))

    async def gone():
        return (await query(dns_server, name)).rcode() == dns.rcode.NXDOMAIN
    await until(gone, timeout=0.1)


async def test_big_headless_answer_truncates_over_udp_and_comes_whole_over_tcp(
        apiserver, dns_server, api):
    await api.create(SVC, service("big", clusterIP="None"))
    ips = [f"10.244.3.{i}" for i in range(1, 81)]
    await api.create(EPS, endpoint_slice("big", ips))
    name = "big.default.svc.cluster.local."

    async def listed():
        return (await query(dns_server, name, tcp=True)).answer != []
    await until(listed, timeout=5)
    r = await query(dns_server, name)
    assert r.flags & dns.flags.TC
    r = await query(dns_server, name, tcp=True)
    assert len(answers(r)) == 80 and not r.flags & dns.flags.TC


async def test_the_addon_manifest_applies_and_its_service_resolves(apiserver, dns_server):
    kubectl(apiserver, "apply", "-f", str(ROOT / "nanokube/addons/manifests/dns.yaml"))
    out = kubectl(apiserver, "get", "svc", "kube-dns", "-n", "kube-system", "-o",
                  "jsonpath={.spec.clusterIP}")
    assert out == "10.96.0.10"

    async def resolves():
        r = await query(dns_server, "kube-dns.kube-system.svc.cluster.local.")
        return answers(r) == ["10.96.0.10"]
    await until(resolves, timeout=2)
    r = await query(dns_server, "_dns._udp.kube-dns.kube-system.svc.cluster.local.", "SRV")
    assert answers(r) == ["0 100 53 kube-dns.kube-system.svc.cluster.local."]
