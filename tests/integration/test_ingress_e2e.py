"""Issue 6 end to end on a real 2-node cluster: the ingress-nginx addon behind its LoadBalancer
address, reached from the outside host.

The addon (nanokube/addons/manifests/ingress-nginx.yaml) runs `nanokube ingress-controller`
with Debian's NGINX as its child in the controller pod. The seed's v1beta1 Ingress (TLS for
both hosts) routes example.com to my-service and another-example.com to second-service.
Names are never resolved: curl gets `--resolve HOST:PORT:<EXTERNAL-IP>`.
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import time

import pytest

from harness import ROOT
from test_dataplane import Cluster, alive, endpoint_names, leftovers, wait_for

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("nginx")
    or not shutil.which("curl"), reason="needs root (network namespaces), nft, nginx, curl")

NS = "ingress-nginx"
ADDON = ROOT / "nanokube/addons/manifests/ingress-nginx.yaml"


def curl(c: Cluster, *args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    """curl on the outside host (its own network namespace, a client on the cluster LAN)."""
    return subprocess.run(["nsenter", f"--net=/run/netns/nk-{c.name}-outside", "--", "curl",
                           "-s", "--max-time", "3", *args], capture_output=True, text=True,
                          timeout=timeout)


def code_and_body(c: Cluster, ip: str, host: str, path: str = "/", https: bool = False,
                  *extra: str) -> tuple[int, str]:
    port = 443 if https else 80
    url = f"{'https' if https else 'http'}://{host}{path}"
    out = curl(c, "-k", "--resolve", f"{host}:{port}:{ip}", "-w", "\n%{http_code}", *extra,
               url)
    body, _, code = out.stdout.rpartition("\n")
    return int(code or 0), body


def settled(c: Cluster, host: str, path: str = "/", code: int = 200,
            https: bool = False) -> None:
    """Wait until `host` answers `code` five times in a row. On a reload NGINX's master starts
    the new workers, sleeps 100 ms, and only then tells the old ones to quit: meanwhile both
    generations accept connections, each answering with its own configuration."""
    streak = [0]

    def check():
        got = code_and_body(c, c.ip, host, path, https)[0]
        streak[0] = streak[0] + 1 if got == code else 0
        return streak[0] >= 5
    wait_for(f"{host} to answer {code}", check, interval=0.02)


def external_ip(c: Cluster) -> str | None:
    svc = c.get("service", "-n", NS, "ingress-nginx-controller")
    for entry in (svc.get("status") or {}).get("loadBalancer", {}).get("ingress") or []:
        if entry.get("ip"):
            return entry["ip"]
    return None


def ingress_status(c: Cluster, name: str) -> list[str]:
    ing = c.get("ingress", name)
    return [e.get("ip") for e in (ing.get("status") or {}).get("loadBalancer", {})
            .get("ingress") or []]


def ingress(name: str, host: str, service: str, cls: str | None = "nginx", path: str = "/",
            path_type: str = "Prefix", annotations: dict | None = None) -> dict:
    spec = {"rules": [{"host": host, "http": {"paths": [
        {"path": path, "pathType": path_type,
         "backend": {"service": {"name": service, "port": {"number": 80}}}}]}}]}
    if cls:
        spec["ingressClassName"] = cls
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "annotations": annotations or {}}, "spec": spec}


def apply_json(c: Cluster, obj: dict, check: bool = True) -> subprocess.CompletedProcess:
    return c.kubectl("apply", "-f", "-", input=json.dumps(obj), check=check)


def controller_pid(c: Cluster) -> int | None:
    """The controller container's pid, as its agent recorded it."""
    pod = c.get("pods", "-n", NS)["items"][0]
    for f in c.dir.glob(f"nodes/*/pods/{pod['metadata']['uid']}/pids"):
        for line in f.read_text().splitlines():
            if line.split()[-1].isdigit():
                return int(line.split()[-1])
    return None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("ingress"))
    c.name = f"in{os.getpid() % 100000}"
    pids: list[int] = []
    nginx_pids: list[int] = []
    try:
        c.nk("up", "--nodes", "2", timeout=60)
        pids = list(c.state()["pids"].values())
        if c.kubectl("get", "deployment", "-n", NS, "ingress-nginx-controller",
                     check=False).returncode != 0:
            c.kubectl("apply", "-f", str(ADDON))        # `up` does not apply it (yet)
        c.kubectl("apply", "-f", str(ROOT / "examples/apps/my-app.yaml"),
                  "-f", str(ROOT / "examples/seed/clusterip-service.yaml"),
                  "-f", str(ROOT / "examples/seed/second-service.yaml"))
        c.kubectl("rollout", "status", "deployment/my-app", "--timeout=60s")
        c.kubectl("rollout", "status", "deployment/second-app", "--timeout=60s")
        c.kubectl("rollout", "status", "-n", NS, "deployment/ingress-nginx-controller",
                  "--timeout=60s")
        c.ip = wait_for("the controller Service's EXTERNAL-IP", lambda: external_ip(c))
        wait_for("3 ready endpoints", lambda: len(endpoint_names(c)) == 3)
        pid = controller_pid(c)
        if pid:
            nginx_pids = [int(p) for p in
                          open(f"/proc/{pid}/task/{pid}/children").read().split()]
        yield c
    finally:
        c.nk("down", check=False)
    assert leftovers(c.name) == []
    assert [p for p in pids + nginx_pids if alive(p)] == []


@pytest.fixture(scope="module")
def seed(cluster):
    """The seed's Ingress as written; returns the seconds from apply to the first 200."""
    c = cluster
    t0 = time.monotonic()
    c.kubectl("apply", "-f", str(ROOT / "examples/seed/ingress.yaml"))
    wait_for("the seed's Ingress to answer", lambda: code_and_body(
        c, c.ip, "example.com", "/hostname", True)[0] == 200, timeout=20, interval=0.02)
    elapsed = time.monotonic() - t0
    settled(c, "example.com", "/hostname", https=True)
    print(f"\nseed Ingress: apply -> first 200 over HTTPS: {elapsed * 1000:.0f} ms, "
          f"only 200s after {(time.monotonic() - t0) * 1000:.0f} ms")
    return elapsed


# ---- the seed --------------------------------------------------------------------------------

def test_seed_hosts_reach_their_services_over_https(cluster, seed):
    c = cluster
    my_app = {p["metadata"]["name"] for p in c.get("pods", "-l", "app=my-app")["items"]}
    for _ in range(5):
        code, body = code_and_body(c, c.ip, "example.com", "/hostname", True)
        assert code == 200 and body in my_app
    code, body = code_and_body(c, c.ip, "another-example.com", "/", True)
    assert code == 200 and "second-app-" in body          # echoserver names its pod


def test_plain_http_to_tls_host_is_redirected_308(cluster, seed):
    c = cluster
    out = curl(c, "--resolve", f"example.com:80:{c.ip}", "-o", "/dev/null",
               "-w", "%{http_code} %{redirect_url}", "http://example.com/some/path?q=1")
    assert out.stdout == "308 https://example.com/some/path?q=1"


def test_tls_hosts_without_secret_get_the_default_issuers_certificate(cluster, seed):
    """Served with NGINX's fake certificate until the default CA issuer's is in
    `my-ingress-tls`, then with that one (verified against `nanokube ca`)."""
    c = cluster
    ca = c.dir / "ca.pem"
    ca.write_text(c.nk("ca").stdout)

    def verified():
        out = curl(c, "--cacert", str(ca), "-o", "/dev/null", "-w", "%{http_code}",
                   "--resolve", f"another-example.com:443:{c.ip}", "https://another-example.com/")
        return out.stdout == "200"
    wait_for("another-example.com served with nanokube's CA", verified, timeout=30)


def test_seed_ingress_gets_the_load_balancer_address(cluster, seed):
    c = cluster
    wait_for("status.loadBalancer.ingress", lambda: ingress_status(c, "my-ingress") == [c.ip],
             timeout=10)


def test_http_host_without_tls(cluster, seed):
    c = cluster
    apply_json(c, ingress("plain", "plain.example.com", "second-service"))
    settled(c, "plain.example.com")
    code, body = code_and_body(c, c.ip, "plain.example.com", "/")
    assert code == 200 and "second-app-" in body
    assert code_and_body(c, c.ip, "unknown-host.example.com")[0] == 404


def test_unknown_class_is_ignored_and_gets_no_address(cluster, seed):
    c = cluster
    apply_json(c, ingress("foreign", "foreign.example.com", "my-service", cls="other-class"))
    apply_json(c, ingress("marker", "marker.example.com", "my-service"))
    wait_for("the marker's address", lambda: ingress_status(c, "marker") == [c.ip])
    time.sleep(1.0)                  # several syncs later
    assert ingress_status(c, "foreign") == []
    assert code_and_body(c, c.ip, "foreign.example.com", "/hostname")[0] == 404


def test_hundred_requests_reach_all_ten_pods(cluster, seed):
    c = cluster
    c.kubectl("create", "deployment", "ten", "--replicas=10",
              "--image=registry.k8s.io/e2e-test-images/agnhost:2.47", "--",
              "/agnhost", "netexec", "--http-port=80")
    c.kubectl("expose", "deployment", "ten", "--port=80")
    c.kubectl("rollout", "status", "deployment/ten", "--timeout=90s")
    wait_for("10 ready endpoints", lambda: len(endpoint_names(c, "ten")) == 10, timeout=30)
    apply_json(c, ingress("ten", "ten.example.com", "ten"))
    settled(c, "ten.example.com", "/hostname")
    url = "http://ten.example.com/hostname"
    out = curl(c, "--resolve", f"ten.example.com:80:{c.ip}", "-w", "\n", *([url] * 100),
               timeout=60)
    names = [line for line in out.stdout.splitlines() if line]
    assert len(names) == 100
    counts = {n: names.count(n) for n in set(names)}
    assert len(counts) == 10, counts


def test_hostile_ingresses_are_rejected_or_neutralised(cluster, seed):
    c = cluster
    hostile = [
        ingress("h-path", "evil.example.com", "my-service", path="/x;}location/{return 200",
                path_type="ImplementationSpecific"),
        ingress("h-annot", "evil2.example.com", "my-service", annotations={
            "nginx.ingress.kubernetes.io/proxy-body-size": "1m; } server { listen 81; }",
            "nginx.ingress.kubernetes.io/rewrite-target": "/$1;\n return 200 owned;",
            "nginx.ingress.kubernetes.io/whitelist-source-range": "0.0.0.0/0; allow all"}),
        ingress("h-host", "evil3.example.com", "my-service", path="/a'\"{}$x\\"),
    ]
    for obj in hostile:
        out = apply_json(c, obj, check=False)     # the API may refuse some outright
        print(f"\n{obj['metadata']['name']}: "
              f"{'refused by the API' if out.returncode else 'accepted by the API'}")
    # a well-formed Ingress applied afterwards still gets served: reloads still happen
    t0 = time.monotonic()
    apply_json(c, ingress("after", "after.example.com", "my-service"))
    wait_for("the Ingress after the hostile ones", lambda: code_and_body(
        c, c.ip, "after.example.com", "/hostname")[0] == 200, interval=0.05)
    print(f"\nIngress after hostile ones: apply -> first 200: "
          f"{(time.monotonic() - t0) * 1000:.0f} ms")
    for host in ("example.com", "another-example.com"):
        assert code_and_body(c, c.ip, host, "/", True)[0] == 200
    code, body = code_and_body(c, c.ip, "evil2.example.com", "/")
    assert "owned" not in body
    assert curl(c, "--max-time", "1", f"http://{c.ip}:81/").returncode != 0   # nothing on 81


def test_propagation_apply_to_first_200(cluster, seed):
    c = cluster
    times, stable = [], []
    for i in range(8):
        host = f"p{i}.example.com"
        t0 = time.monotonic()
        apply_json(c, ingress(f"p{i}", host, "my-service"))
        wait_for(host, lambda: code_and_body(c, c.ip, host, "/hostname")[0] == 200,
                 interval=0.01)
        times.append(time.monotonic() - t0)
        settled(c, host, "/hostname")
        stable.append(time.monotonic() - t0)
    print(f"\napply -> first 200 (kubectl apply included), {len(times)} Ingresses: "
          f"p50 {statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms; "
          f"only 200s from p50 {statistics.median(stable) * 1000:.0f} ms, "
          f"max {max(stable) * 1000:.0f} ms")
    assert max(times) < 3.0


def test_status_cleared_when_no_longer_ours(cluster, seed):
    c = cluster
    apply_json(c, ingress("moving", "moving.example.com", "my-service"))
    wait_for("address", lambda: ingress_status(c, "moving") == [c.ip])
    obj = ingress("moving", "moving.example.com", "my-service", cls="other-class")
    c.kubectl("replace", "-f", "-", input=json.dumps(
        {**obj, "metadata": {**obj["metadata"], "resourceVersion":
                             c.get("ingress", "moving")["metadata"]["resourceVersion"]}}))
    wait_for("address cleared", lambda: ingress_status(c, "moving") == [])
    settled(c, "moving.example.com", "/hostname", 404)


def second_controller(cls: str, controller: str) -> list[dict]:
    """The addon's IngressClass, Deployment and Service again, for another class: names and
    labels `<cls>-controller`, its own LoadBalancer address, --ingress-class and
    --controller-class of its own (as a second ingress-nginx release would be installed)."""
    import yaml
    docs = {d["kind"]: d for d in yaml.safe_load_all(ADDON.read_text()) if d}
    name = f"{cls}-controller"
    labels = {"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/instance": cls,
              "app.kubernetes.io/component": "controller"}
    ic = {**docs["IngressClass"], "metadata": {"name": cls}, "spec": {"controller": controller}}
    dep = json.loads(json.dumps(docs["Deployment"]))
    dep["metadata"] = {"name": name, "namespace": NS, "labels": labels}
    dep["spec"]["selector"] = {"matchLabels": labels}
    dep["spec"]["template"]["metadata"]["labels"] = labels
    dep["spec"]["template"]["spec"]["containers"][0]["args"] = [
        "ingress-controller", "--in-cluster", "--publish-service", f"{NS}/{name}",
        "--ingress-class", cls, "--controller-class", controller,
        "--http-port", "80", "--https-port", "443", "--status-port", "10254"]
    svc = json.loads(json.dumps(docs["Service"]))
    svc["metadata"] = {"name": name, "namespace": NS, "labels": labels}
    svc["spec"]["selector"] = labels
    return [ic, dep, svc]


def test_two_controllers_with_their_own_classes_side_by_side(cluster, seed):
    c = cluster
    objs = second_controller("internal", "k8s.io/ingress-nginx-internal")
    try:
        for obj in objs:
            apply_json(c, obj)
        c.kubectl("rollout", "status", "-n", NS, "deployment/internal-controller",
                  "--timeout=60s")

        def internal_ip():
            svc = c.get("service", "-n", NS, "internal-controller")
            return next((e["ip"] for e in (svc.get("status") or {}).get("loadBalancer", {})
                         .get("ingress") or [] if e.get("ip")), None)
        other = wait_for("the second controller's EXTERNAL-IP", internal_ip)
        assert other != c.ip
        apply_json(c, ingress("by-nginx", "a.classes.example.com", "my-service"))
        apply_json(c, ingress("by-internal", "b.classes.example.com", "second-service",
                              cls="internal"))
        # each Ingress gets its own controller's address, never the other's
        wait_for("by-nginx's address", lambda: ingress_status(c, "by-nginx") == [c.ip])
        wait_for("by-internal's address", lambda: ingress_status(c, "by-internal") == [other])
        settled(c, "a.classes.example.com", "/hostname")
        wait_for("b through the second controller", lambda: code_and_body(
            c, other, "b.classes.example.com")[0] == 200, interval=0.05)
        code, body = code_and_body(c, other, "b.classes.example.com")
        assert code == 200 and "second-app-" in body
        # and each controller serves only its own class
        assert code_and_body(c, c.ip, "b.classes.example.com")[0] == 404
        assert code_and_body(c, other, "a.classes.example.com", "/hostname")[0] == 404
        assert ingress_status(c, "by-nginx") == [c.ip]
    finally:
        for kind, name in (("ingress", "by-nginx"), ("ingress", "by-internal")):
            c.kubectl("delete", kind, name, "--ignore-not-found", check=False)
        for obj in reversed(objs):
            ns = ["-n", NS] if obj["kind"] != "IngressClass" else []
            c.kubectl("delete", obj["kind"].lower(), obj["metadata"]["name"], *ns,
                      "--ignore-not-found", check=False)
