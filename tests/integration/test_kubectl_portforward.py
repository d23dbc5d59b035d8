"""`kubectl port-forward` against a real cluster: both of kubectl's dialers (SPDY tunneled in a
WebSocket, and plain SPDY), Services, several ports and connections, large transfers, a server
bound to the pod's 127.0.0.1, a refused port; and the official Python client's WebSocket."""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

from harness import free_port, leftovers, stop_process
from test_cluster import AGNHOST, Cluster

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")

# an echo server on the pod's loopback only (:9000) and on all its addresses (:9001)
ECHO = """
import asyncio
async def echo(reader, writer):
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()
async def main():
    a = await asyncio.start_server(echo, "127.0.0.1", 9000)
    b = await asyncio.start_server(echo, "0.0.0.0", 9001)
    await asyncio.gather(a.serve_forever(), b.serve_forever())
asyncio.run(main())
"""
DIALERS = {"websocket": "true", "spdy": "false"}       # KUBECTL_PORT_FORWARD_WEBSOCKETS


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("portforward"))
    c.name = f"f{os.getpid() % 100000}"
    pods = [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"app": "web"}},
         "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
             "name": "main", "image": AGNHOST,
             "args": ["netexec", "--http-port=8080", "--udp-port=-1"]}]}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "echo"},
         "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
             "name": "main", "image": "python:3.11", "command": ["python3", "-c", ECHO],
             "readinessProbe": {"tcpSocket": {"port": 9001}, "periodSeconds": 1}}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
         "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nowhere"},
         "spec": {"nodeSelector": {"no": "such-node"}, "containers": [{
             "name": "main", "image": AGNHOST, "args": ["pause"]}]}},
    ]
    try:
        c.nk("up", "--nodes", "1", timeout=60)
        c.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(pods))
        c.kubectl("wait", "--for=condition=Ready", "pod/web", "pod/echo", "--timeout=30s")
        yield c
    finally:
        c.nk("down", check=False)
    assert leftovers(c.name) == []


@contextlib.contextmanager
def port_forward(c: Cluster, target: str, *ports: str, dialer: str = "websocket"):
    """A running `kubectl port-forward`, ready (it printed its listeners); stopped by pid."""
    env = dict(c.env, KUBECONFIG=str(c.dir / "kubeconfig"),
               KUBECTL_PORT_FORWARD_WEBSOCKETS=DIALERS[dialer])
    proc = subprocess.Popen(["kubectl", "port-forward", target, *ports], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        lines = []
        while len([x for x in lines if x.startswith("Forwarding from 127.0.0.1")]) < len(ports):
            line = proc.stdout.readline()
            if not line:
                raise AssertionError(f"kubectl port-forward ended: {proc.stderr.read()}")
            lines.append(line)
        threading.Thread(target=proc.stdout.read, daemon=True).start()   # keep it unblocked
        yield proc
    finally:
        stop_process(proc)


def get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
        return resp.read().decode()


def echo_round_trip(port: int, payload: bytes) -> bytes:
    """Send everything (then a half-close) while reading the echo: both directions at once."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        got = bytearray()

        def read() -> None:
            while data := s.recv(1 << 16):
                got.extend(data)
        reader = threading.Thread(target=read)
        reader.start()
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        reader.join(30)
        return bytes(got)


@pytest.mark.parametrize("dialer", DIALERS)
def test_pod_port_with_concurrent_connections(cluster, dialer):
    local = free_port()
    with port_forward(cluster, "pod/web", f"{local}:8080", dialer=dialer):
        assert get(local, "/hostname") == "web"
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda i: get(local, f"/echo?msg=m{i}"), range(16)))
        assert answers == [f"m{i}" for i in range(16)]


def test_service_resolves_to_a_pod_and_target_port(cluster):
    local = free_port()
    with port_forward(cluster, "svc/web", f"{local}:80"):
        assert get(local, "/hostname") == "web"


@pytest.mark.parametrize("dialer", DIALERS)
def test_large_transfer_both_ways_to_a_loopback_only_server(cluster, dialer):
    """20 MiB each way at once, to a server bound to the pod's 127.0.0.1 only; and a second
    port of the same pod forwarded by the same kubectl."""
    loopback_only, other = free_port(), free_port()
    payload = os.urandom(20 << 20)
    with port_forward(cluster, "pod/echo", f"{loopback_only}:9000", f"{other}:9001",
                      dialer=dialer):
        assert echo_round_trip(loopback_only, payload) == payload
        assert echo_round_trip(other, b"second port") == b"second port"


def test_refused_port(cluster):
    """The kubelet's message on the error stream; kubectl 1.32 prints it and, since an error
    on a stream ends its connection, exits with "lost connection to pod"."""
    local = free_port()
    uid = cluster.get("pod", "web")["metadata"]["uid"]
    with port_forward(cluster, "pod/web", f"{local}:9999", dialer="spdy") as proc:
        with socket.create_connection(("127.0.0.1", local), timeout=10) as s:
            s.settimeout(10)
            assert s.recv(10) == b""                  # closed without an answer
        assert proc.wait(20) == 1
        err = proc.stderr.read()
    assert (f"an error occurred forwarding {local} -> 9999: error forwarding port 9999 to pod "
            f"{uid}, uid : failed to execute portforward in network namespace "
            f'\\"/run/netns/nk-{cluster.name}-{uid.replace("-", "")[:12]}\\": failed to '
            f"connect to localhost:9999 inside namespace \\\"{uid}\\\", IPv4: dial tcp4 "
            f"127.0.0.1:9999: connect: connection refused") in err
    assert err.rstrip().endswith("error: lost connection to pod")


def test_pod_not_running_and_not_scheduled(cluster):
    out = cluster.kubectl("port-forward", "pod/nowhere", "1234:80", check=False)
    assert out.returncode == 1
    assert out.stderr.strip() == \
        "error: unable to forward port because pod is not running. Current status=Pending"
    # the API server itself, as kube-apiserver answers
    from nanokube.api.errors import StatusError
    from nanokube.client import Client

    async def ask(name: str) -> StatusError:
        client = Client.from_kubeconfig(str(cluster.dir / "kubeconfig"))
        try:
            with pytest.raises(StatusError) as e:
                await client.request("POST", f"/api/v1/namespaces/default/pods/{name}"
                                             "/portforward")
            return e.value
        finally:
            await client.close()
    e = asyncio.run(ask("nowhere"))
    assert e.code == 400 and str(e.message) == "pod nowhere does not have a host assigned"
    e = asyncio.run(ask("absent"))
    assert e.code == 404 and e.message == 'pods "absent" not found'


def test_discovery_lists_portforward(cluster):
    resources = json.loads(cluster.kubectl("get", "--raw", "/api/v1").stdout)["resources"]
    entry = next(r for r in resources if r["name"] == "pods/portforward")
    assert entry["kind"] == "PodPortForwardOptions" and entry["verbs"] == ["create", "get"]


def test_python_client(cluster):
    """The official client's port-forward: v4.channel.k8s.io, one WebSocket for all ports."""
    from kubernetes import client, config
    from kubernetes.stream import portforward
    api = client.CoreV1Api(config.new_client_from_config(str(cluster.dir / "kubeconfig")))
    pf = portforward(api.connect_get_namespaced_pod_portforward, "web", "default",
                     ports="8080,9999")
    try:
        s = pf.socket(8080)
        s.setblocking(True)
        s.sendall(b"GET /hostname HTTP/1.0\r\nHost: web\r\n\r\n")
        answer = b""
        while data := s.recv(4096):
            answer += data
        assert answer.startswith(b"HTTP/1.") and answer.endswith(b"\r\n\r\nweb")
        assert pf.error(8080) is None
        assert "failed to connect to localhost:9999" in pf.error(9999)
    finally:
        pf.close()
