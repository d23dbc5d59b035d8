"""services/proxy and pods/proxy against a real cluster, through the node agents' tunnels:
`kubectl get --raw`, `kubectl create --raw` (POST), `kubectl proxy` with plain HTTP on its local
port, the official Python client, and kube-apiserver's errors."""
from __future__ import annotations

import os
import subprocess
import urllib.error
import urllib.request

import pytest
import yaml

from harness import free_port, leftovers, stop_process, wait_for
from test_cluster import AGNHOST, Cluster

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")

BASE = "/api/v1/namespaces/default"
# a pod that answers with the method, the path and query, and the body it got (chunked or not)
BODY_ECHO = """
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class Echo(BaseHTTPRequestHandler):
    def body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            data = b""
            while size := int(self.rfile.readline().split(b";")[0], 16):
                data += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
            return data
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))
    def do_POST(self):
        out = self.command.encode() + b" " + self.path.encode() + b" " + self.body()
        self.send_response(201)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    do_PUT = do_PATCH = do_DELETE = do_POST
ThreadingHTTPServer(("0.0.0.0", 9000), Echo).serve_forever()
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("apiproxy"))
    c.name = f"x{os.getpid() % 100000}"
    objects = [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
         "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                  "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                      "terminationGracePeriodSeconds": 1, "containers": [{
                          "name": "main", "image": AGNHOST,
                          "args": ["netexec", "--http-port=8080", "--udp-port=-1"],
                          "ports": [{"containerPort": 8080}],
                          "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080},
                                             "periodSeconds": 1}}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
         "spec": {"selector": {"app": "web"},
                  "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bodyecho"},
         "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
             "name": "main", "image": "python:3.11", "command": ["python3", "-c", BODY_ECHO],
             "readinessProbe": {"tcpSocket": {"port": 9000}, "periodSeconds": 1}}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "empty"},
         "spec": {"selector": {"app": "nothing"}, "ports": [{"port": 80}]}},
    ]
    try:
        c.nk("up", "--nodes", "2", timeout=60)
        c.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objects))
        c.kubectl("rollout", "status", "deployment/web", "--timeout=40s")
        c.kubectl("wait", "--for=condition=Ready", "pod/bodyecho", "--timeout=30s")
        wait_for("2 endpoint addresses", lambda: len(
            (c.get("endpoints", "web").get("subsets") or [{}])[0].get("addresses") or []) == 2)
        yield c
    finally:
        c.nk("down", check=False)
    assert leftovers(c.name) == []


def pod_names(c: Cluster) -> set[str]:
    return {p["metadata"]["name"] for p in c.get("pods", "-l", "app=web")["items"]}


def raw(c: Cluster, path: str) -> str:
    return c.kubectl("get", "--raw", path).stdout


def test_service_proxy_reaches_both_pods(cluster):
    names = pod_names(cluster)
    assert raw(cluster, f"{BASE}/services/web:80/proxy/hostname") in names
    seen = {raw(cluster, f"{BASE}/services/web:80/proxy/hostname") for _ in range(20)}
    assert seen == names                     # a random endpoint each time
    assert raw(cluster, f"{BASE}/services/web:http/proxy/hostname") in names    # by port name
    assert raw(cluster, f"{BASE}/services/http:web:80/proxy/echo?msg=kept") == "kept"


def test_pod_proxy_reaches_that_pod(cluster):
    for name in pod_names(cluster):
        assert raw(cluster, f"{BASE}/pods/{name}:8080/proxy/hostname") == name
        assert raw(cluster, f"{BASE}/pods/{name}/proxy/hostname") == name   # its first port


def test_post_with_a_body_and_query(cluster):
    # kubectl streams the body (chunked); the pod gets it, the path and the query
    out = cluster.kubectl("create", "--raw", f"{BASE}/pods/bodyecho:9000/proxy/a/b?x=1&y=two",
                          "-f", "-", input="twelve bytes").stdout
    assert out == "POST /a/b?x=1&y=two twelve bytes"
    out = cluster.kubectl("replace", "--raw", f"{BASE}/pods/bodyecho:9000/proxy/put",
                          "-f", "-", input="replaced").stdout
    assert out == "PUT /put replaced"


def test_errors_in_kubernetes_words(cluster):
    r = cluster.kubectl("get", "--raw", f"{BASE}/services/empty:80/proxy/", check=False)
    assert r.returncode != 0
    assert "(ServiceUnavailable): no endpoints available for service \"empty\"" in r.stderr
    r = cluster.kubectl("get", "--raw", f"{BASE}/services/nope/proxy/", check=False)
    assert "(NotFound): services \"nope\" not found" in r.stderr
    r = cluster.kubectl("get", "--raw", f"{BASE}/services/web:81/proxy/", check=False)
    assert 'no service port 81 found for service "web"' in r.stderr


def test_kubectl_proxy(cluster):
    port = free_port()
    env = dict(cluster.env, KUBECONFIG=str(cluster.dir / "kubeconfig"))
    proc = subprocess.Popen(["kubectl", "proxy", f"--port={port}"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert "Starting to serve" in proc.stdout.readline()
        url = f"http://127.0.0.1:{port}{BASE}/services/web:80/proxy"
        with urllib.request.urlopen(f"{url}/hostname", timeout=10) as resp:
            assert resp.status == 200 and resp.read().decode() in pod_names(cluster)
        big = os.urandom(300_000)
        post = urllib.request.Request(f"http://127.0.0.1:{port}{BASE}/pods/bodyecho:9000/proxy"
                                      "/upload?q=1", data=big, method="POST")
        with urllib.request.urlopen(post, timeout=10) as resp:
            assert resp.status == 201 and resp.read() == b"POST /upload?q=1 " + big
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{BASE}/services/empty:80/proxy/",
                                   timeout=10)
        assert info.value.code == 503
    finally:
        stop_process(proc)


def test_python_client(cluster):
    from kubernetes import client, config
    api = client.CoreV1Api(config.new_client_from_config(str(cluster.dir / "kubeconfig")))
    got = api.connect_get_namespaced_service_proxy_with_path("web:80", "default", "hostname")
    assert got in pod_names(cluster)
    name = sorted(pod_names(cluster))[0]
    assert api.connect_get_namespaced_pod_proxy_with_path(f"{name}:8080", "default",
                                                         "hostname") == name

