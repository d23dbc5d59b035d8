"""NftProxier against the real kernel, in a tiny topology of network namespaces built here.

    outside (10.123.99.254) ── eth0 ── node (10.123.99.11, ip_forward, cni0 10.244.1.1/24)
                                          ├── pod p1 10.244.1.2   (http :8080, udp :5353)
                                          ├── pod p2 10.244.1.3
                                          └── pod p3 10.244.1.4

The proxier runs in the node namespace in a driver process fed Service/EndpointSlice dicts as
JSON lines; servers answer "<pod name> <client ip>". Everything is removed in the fixture's finally.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PREFIX = f"nkpt{os.getpid() % 100000}"
NODE_NS, OUT_NS = f"{PREFIX}-node", f"{PREFIX}-out"
NODE_IP, OUT_IP = "10.123.99.11", "10.123.99.254"
PODS = {"p1": "10.244.1.2", "p2": "10.244.1.3", "p3": "10.244.1.4"}

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("nft"),
                                reason="needs root and nft")

SERVER = r"""
import socket, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
name = sys.argv[1]
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{name} {self.client_address[0]}".encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 5353))
    while True:
        data, addr = s.recvfrom(2048); s.sendto(f"{name} {addr[0]}".encode(), addr)
threading.Thread(target=udp, daemon=True).start()
ThreadingHTTPServer(("0.0.0.0", 8080), H).serve_forever()
"""

CLIENT = r"""
import json, socket, sys, time
kind, ip, port, n, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
pause = float(sys.argv[6]) if len(sys.argv) > 6 else 0
out = []
for _ in range(n):
    t0 = time.monotonic()
    try:
        if kind == "tcp":
            s = socket.create_connection((ip, port), timeout=timeout)
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
            s.close()
            out.append(data.split(b"\r\n\r\n", 1)[1].decode())
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(timeout)
            s.sendto(b"hi", (ip, port)); out.append(s.recvfrom(2048)[0].decode()); s.close()
    except ConnectionRefusedError:
        out.append(f"refused {time.monotonic() - t0:.3f}")
    except (socket.timeout, TimeoutError):
        out.append("timeout")
    except OSError as e:
        out.append(f"error {e.errno}")
    if pause:
        time.sleep(pause)
print(json.dumps(out))
"""

DRIVER = r"""
import asyncio, json, sys
from nanokube.node.proxy import NftProxier
args = json.loads(sys.argv[1])
async def main():
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    p = NftProxier(**args)
    await p.start()
    print(json.dumps({"ok": True}), flush=True)
    while line := await reader.readline():
        cmd = json.loads(line)
        if cmd["op"] == "service":
            p.on_service(cmd["event"], cmd["obj"])
        elif cmd["op"] == "slice":
            p.on_endpointslice(cmd["event"], cmd["obj"])
        elif cmd["op"] == "restart":  # a new agent process would rebuild the same model from watches
            model = p.model
            await p.stop()
            p = NftProxier(**args)
            p.model = model
            await p.start()
        await p.sync()
        print(json.dumps({"ok": True, "healthy": p.healthy(), "ruleset": len(p.ruleset())}), flush=True)
    await p.stop()
asyncio.run(main())
"""


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


def nsexec(ns: str, *cmd: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *cmd]


class Topology:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []
        self.namespaces: list[str] = []
        self.driver: subprocess.Popen | None = None

    def build(self) -> None:
        for ns in (NODE_NS, OUT_NS, *(f"{PREFIX}-{p}" for p in PODS)):
            sh("ip", "netns", "add", ns)
            self.namespaces.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        n = ["ip", "-n", NODE_NS]
        sh(*n, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", OUT_NS)
        sh(*n, "addr", "add", f"{NODE_IP}/24", "dev", "eth0")
        sh(*n, "link", "set", "eth0", "up")
        sh("ip", "-n", OUT_NS, "addr", "add", f"{OUT_IP}/24", "dev", "eth0")
        sh("ip", "-n", OUT_NS, "link", "set", "eth0", "up")
        sh(*n, "link", "add", "cni0", "type", "bridge")
        sh(*n, "addr", "add", "10.244.1.1/24", "dev", "cni0")
        sh(*n, "link", "set", "cni0", "up")
        # the node reaches Service IPs through the pod bridge (connect() needs a route first)
        sh(*n, "route", "add", "10.96.0.0/12", "dev", "cni0")
        sh(*nsexec(NODE_NS, "sysctl", "-qw", "net.ipv4.ip_forward=1"))
        for name, ip in PODS.items():
            ns, host_if = f"{PREFIX}-{name}", f"v{name}"
            sh(*n, "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh(*n, "link", "set", host_if, "master", "cni0", "up")
            sh(*n, "link", "set", host_if, "type", "bridge_slave", "hairpin", "on")
            sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "route", "add", "default", "via", "10.244.1.1")
            self.procs.append(subprocess.Popen(nsexec(ns, sys.executable, "-c", SERVER, name),
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def start_driver(self) -> None:
        args = {"node_name": "node-1", "node_ips": [NODE_IP], "pod_cidr": "10.244.1.0/24",
                "cluster_cidr": "10.244.0.0/16", "service_cidr": "10.96.0.0/12",
                "table": "nanokube", "health_check_servers": True, "coalesce": 0}
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.driver = subprocess.Popen(nsexec(NODE_NS, sys.executable, "-c", DRIVER, json.dumps(args)),
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.procs.append(self.driver)
        assert json.loads(self.driver.stdout.readline())["ok"]

    def send(self, op: str, event: str = "", obj: dict | None = None) -> dict:
        self.driver.stdin.write(json.dumps({"op": op, "event": event, "obj": obj}) + "\n")
        self.driver.stdin.flush()
        reply = self.driver.stdout.readline()
        assert reply, "driver died"
        return json.loads(reply)

    def service(self, obj: dict, event: str = "ADDED") -> dict:
        return self.send("service", event, obj)

    def slice(self, obj: dict, event: str = "ADDED") -> dict:
        return self.send("slice", event, obj)

    def client(self, ns: str, kind: str, ip: str, port: int, n: int = 1, timeout: float = 2.0,
               pause: float = 0) -> list[str]:
        out = subprocess.run(nsexec(ns, sys.executable, "-c", CLIENT, kind, ip, str(port), str(n),
                                    str(timeout), str(pause)),
                             capture_output=True, text=True, timeout=n * (timeout + pause) + 20)
        return json.loads(out.stdout)

    def cleanup(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        for ns in self.namespaces:
            sh("ip", "netns", "del", ns, check=False)


@pytest.fixture(scope="module")
def topo():
    t = Topology()
    try:
        t.build()
        t.start_driver()
        time.sleep(0.3)  # servers listening
        yield t
    finally:
        t.cleanup()


def svc(name: str, ip: str, ports: list[dict], **spec) -> dict:
    status = spec.pop("status", {})
    return {"metadata": {"namespace": "default", "name": name},
            "spec": {"clusterIP": ip, "type": spec.pop("type", "ClusterIP"),
                     "ports": [{"protocol": "TCP", **p} for p in ports], **spec}, "status": status}


def eps(name: str, pods: list[str], protocol: str = "TCP", port: int = 8080, slice_name: str = "") -> dict:
    return {"metadata": {"namespace": "default", "name": slice_name or f"{name}-x",
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [PODS[p]], "nodeName": "node-1",
                           "conditions": {"ready": True, "serving": True, "terminating": False}}
                          for p in pods],
            "ports": [{"port": port, "protocol": protocol}]}


def names(replies: list[str]) -> list[str]:
    return [r.split()[0] for r in replies]


POD1 = f"{PREFIX}-p1"


def test_cluster_ip_from_pod_and_node_reaches_every_endpoint(topo):
    topo.service(svc("web", "10.96.0.20", [{"port": 80}]))
    topo.slice(eps("web", ["p1", "p2", "p3"]))
    for ns in (POD1, NODE_NS):
        got = names(topo.client(ns, "tcp", "10.96.0.20", 80, n=60))
        assert set(got) == {"p1", "p2", "p3"}, got  # includes hairpin for p1


def test_hairpin_pod_reaches_itself_masqueraded(topo):
    topo.service(svc("self", "10.96.0.21", [{"port": 80}]))
    topo.slice(eps("self", ["p1"]))
    reply = topo.client(POD1, "tcp", "10.96.0.21", 80, n=3)
    assert reply == ["p1 10.244.1.1"] * 3  # the answer came back through the node's masquerade


def test_node_port_from_outside_and_cluster_ip_not(topo):
    topo.service(svc("np", "10.96.0.22", [{"port": 80, "nodePort": 32000}], type="NodePort"))
    topo.slice(eps("np", ["p2", "p3"]))
    got = topo.client(OUT_NS, "tcp", NODE_IP, 32000, n=40)
    assert set(names(got)) == {"p2", "p3"}
    assert all(r.split()[1] != OUT_IP for r in got)  # externalTrafficPolicy Cluster masquerades
    assert topo.client(OUT_NS, "tcp", "10.96.0.22", 80, timeout=0.5)[0] in ("timeout", "error 101")


def test_external_traffic_policy_local_keeps_client_ip(topo):
    topo.service(svc("npl", "10.96.0.23", [{"port": 80, "nodePort": 32001}], type="NodePort",
                     externalTrafficPolicy="Local"))
    topo.slice(eps("npl", ["p2"]))
    assert topo.client(OUT_NS, "tcp", NODE_IP, 32001, n=3) == [f"p2 {OUT_IP}"] * 3


def test_external_ip(topo):
    topo.service(svc("ext", "10.96.0.24", [{"port": 80}], externalIPs=[NODE_IP]))
    topo.slice(eps("ext", ["p3"]))
    got = topo.client(OUT_NS, "tcp", NODE_IP, 80, n=2)
    assert names(got) == ["p3", "p3"], got


def test_no_endpoints_refused_at_once(topo):
    topo.service(svc("empty", "10.96.0.25", [{"port": 80, "nodePort": 32002}], type="NodePort"))
    for ns, ip, port in ((POD1, "10.96.0.25", 80), (NODE_NS, "10.96.0.25", 80), (OUT_NS, NODE_IP, 32002)):
        (reply,) = topo.client(ns, "tcp", ip, port, timeout=3)
        assert reply.startswith("refused"), (ns, reply)
        assert float(reply.split()[1]) < 1.0


def test_unallocated_cluster_ip_dropped(topo):
    assert topo.client(POD1, "tcp", "10.96.0.99", 80, timeout=0.5) == ["timeout"]


def test_client_ip_affinity_sticks(topo):
    topo.service(svc("sticky", "10.96.0.26", [{"port": 80}], sessionAffinity="ClientIP",
                     sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}}))
    topo.slice(eps("sticky", ["p1", "p2", "p3"]))
    for ns in (POD1, NODE_NS):
        got = names(topo.client(ns, "tcp", "10.96.0.26", 80, n=20))
        assert len(set(got)) == 1, got


def test_udp_service(topo):
    topo.service(svc("dns", "10.96.0.27", [{"port": 53, "protocol": "UDP"}]))
    topo.slice(eps("dns", ["p2", "p3"], protocol="UDP", port=5353))
    got = names(topo.client(POD1, "udp", "10.96.0.27", 53, n=40))
    assert set(got) == {"p2", "p3"}


def test_removed_endpoint_gets_no_new_connections(topo):
    topo.service(svc("shrink", "10.96.0.28", [{"port": 80}]))
    topo.slice(eps("shrink", ["p1", "p2", "p3"]))
    assert "p3" in names(topo.client(POD1, "tcp", "10.96.0.28", 80, n=40))
    topo.slice(eps("shrink", ["p1", "p2"]), event="MODIFIED")
    assert set(names(topo.client(POD1, "tcp", "10.96.0.28", 80, n=40))) == {"p1", "p2"}


def test_restart_does_not_break_a_steady_request_loop(topo):
    topo.service(svc("steady", "10.96.0.29", [{"port": 80}]))
    topo.slice(eps("steady", ["p2", "p3"]))
    loop = subprocess.Popen(nsexec(POD1, sys.executable, "-c", CLIENT, "tcp", "10.96.0.29", "80", "150",
                                   "2", "0.01"), stdout=subprocess.PIPE, text=True)
    topo.procs.append(loop)
    time.sleep(0.4)
    reply = topo.send("restart")
    assert reply["ok"] and reply["healthy"]
    time.sleep(0.2)
    reply = topo.send("restart")
    out, _ = loop.communicate(timeout=60)
    got = json.loads(out)
    assert len(got) == 150
    assert set(names(got)) == {"p2", "p3"}, [r for r in got if r.split()[0] not in ("p2", "p3")]
    # and everything programmed before the restart still works
    assert set(names(topo.client(POD1, "tcp", "10.96.0.20", 80, n=60))) == {"p1", "p2", "p3"}


def test_health_check_node_port(topo):
    topo.service(svc("lb", "10.96.0.30", [{"port": 80, "nodePort": 32003}], type="LoadBalancer",
                     externalTrafficPolicy="Local", healthCheckNodePort=32100,
                     status={"loadBalancer": {"ingress": [{"ip": "10.123.99.200"}]}}))
    topo.slice(eps("lb", ["p1", "p2"]))
    (reply,) = topo.client(OUT_NS, "tcp", NODE_IP, 32100)
    body = json.loads(reply)
    assert body == {"service": {"namespace": "default", "name": "lb"}, "localEndpoints": 2,
                    "serviceProxyHealthy": True}


UDP_FIXED_PORT = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 40404)); s.settimeout(2)
s.sendto(b"hi", (sys.argv[1], int(sys.argv[2])))
print(s.recvfrom(2048)[0].decode().split()[0])
"""


def test_removed_udp_endpoint_conntrack_cleared(topo):
    """A UDP client reusing one source port follows the endpoint change (stale entry deleted)."""
    topo.service(svc("udpflow", "10.96.0.31", [{"port": 53, "protocol": "UDP"}]))
    topo.slice(eps("udpflow", ["p2", "p3"], protocol="UDP", port=5353))

    def ask() -> str:
        return subprocess.run(nsexec(POD1, sys.executable, "-c", UDP_FIXED_PORT, "10.96.0.31", "53"),
                              capture_output=True, text=True, timeout=10).stdout.strip()

    first = ask()
    assert first in ("p2", "p3")
    assert ask() == first  # same 5-tuple, same conntrack entry
    remaining = "p3" if first == "p2" else "p2"
    topo.slice(eps("udpflow", [remaining], protocol="UDP", port=5353), event="MODIFIED")
    assert ask() == remaining
