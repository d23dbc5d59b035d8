"""Issue 4's data-plane acceptance on a real cluster (`nanokube up`, root, nft).

The seed's Services (examples/seed: my-service ClusterIP 10.96.0.100:80, my-nodeport-service
nodePort 32000) in front of examples/apps/my-app.yaml (agnhost netexec: /hostname over HTTP on
port 80, "hostname" over UDP on port 80), programmed by the nftables proxier in each node agent.
Clients are Python one-liners run in a pod (`nanokube exec`), a node or the outside host
(nsenter into their network namespace). No cluster DNS is used: Services are reached by IP.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import ROOT, ClusterRun, alive, leftovers, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("nft"),
                                reason="needs root (network namespaces) and nft")

CLUSTER_IP = "10.96.0.100"
NODE_PORT = 32000

# Requests from one process. Modes:
#   http URL N TIMEOUT            -> list of bodies or "error <what> <seconds>"
#   udp IP PORT N TIMEOUT         -> list of answers (each from a new socket, i.e. a new flow)
#   loop URL SECONDS PAUSE        -> {"ok": n, "errors": [...], "seen": [[t, body], ...]}
CLIENT = r"""
import json, socket, sys, time, urllib.request
mode = sys.argv[1]
def get(url, timeout):
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.read().decode()
    except Exception as e:
        reason = getattr(e, "reason", e)
        return f"error {type(reason).__name__} {time.monotonic() - t0:.3f}"
if mode == "http":
    url, n, timeout = sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    print(json.dumps([get(url, timeout) for _ in range(n)]))
elif mode == "udp":
    ip, port, n, timeout = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    out = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(timeout)
        try:
            s.sendto(b"hostname", (ip, port))
            out.append(s.recvfrom(2048)[0].decode())
        except OSError as e:
            out.append(f"error {type(e).__name__}")
        s.close()
    print(json.dumps(out))
elif mode == "loop":
    url, seconds, pause = sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    end = time.time() + seconds
    ok, errors, seen = 0, [], []
    while time.time() < end:
        t = time.time()
        body = get(url, 2.0)
        if body.startswith("error"):
            errors.append([t, body])
        else:
            ok += 1
            seen.append([t, body])
        time.sleep(pause)
    print(json.dumps({"ok": ok, "errors": errors, "seen": seen}))
"""


class Cluster(ClusterRun):
    def __init__(self, tmp: Path):
        super().__init__(tmp, prefix="dp")
        self.restarted: list[subprocess.Popen] = []   # agents this test started itself

    def node_ips(self) -> dict[str, str]:
        return {n["name"]: n["ip"] for n in self.state()["network"]["nodes"]}

    # ---- clients ----------------------------------------------------------------------------
    def in_pod_argv(self, pod: str, *args: str) -> list[str]:
        return [sys.executable, "-m", "nanokube", "--name", self.name, "exec", pod, "--",
                sys.executable, "-c", CLIENT, *args]

    def in_netns_argv(self, where: str, *args: str) -> list[str]:
        """`where`: a node name or "outside"."""
        return ["nsenter", f"--net=/run/netns/nk-{self.name}-{where}", "--",
                sys.executable, "-c", CLIENT, *args]

    def run_client(self, argv: list[str], timeout: float = 120):
        out = subprocess.run(argv, capture_output=True, text=True, env=self.env, cwd=ROOT,
                             timeout=timeout)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def from_pod(self, pod: str, *args: str):
        return self.run_client(self.in_pod_argv(pod, *args))

    def from_netns(self, where: str, *args: str):
        return self.run_client(self.in_netns_argv(where, *args))

    # ---- agents ------------------------------------------------------------------------------
    def restart_agent(self, node: str) -> float:
        """SIGTERM the node's agent, start the same command line again inside the node's
        namespace, and record the new pid in cluster.json (so `down` ends it). Returns the
        seconds the node was without an agent process."""
        state = self.state()
        key = f"agent-{node}"
        pid = state["pids"][key]
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
        env = dict(kv.split("=", 1) for kv in
                   Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0") if "=" in kv)
        os.kill(pid, signal.SIGTERM)
        t0 = time.monotonic()
        wait_for("the old agent to exit", lambda: not alive(pid), timeout=15, interval=0.02)
        gone = time.monotonic()
        with open(self.dir / "logs" / f"{key}.log", "ab") as log:
            proc = subprocess.Popen(["nsenter", f"--net=/run/netns/nk-{self.name}-{node}", "--",
                                     *argv], stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True, env=env,
                                    cwd="/")
        self.restarted.append(proc)
        state["pids"][key] = proc.pid
        tmp = self.dir / "cluster.json.tmp"
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(self.dir / "cluster.json")
        return gone - t0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("dataplane"))
    pids: list[int] = []
    try:
        t0 = time.monotonic()
        out = c.nk("up", "--nodes", "2", timeout=60)
        assert "is ready" in out.stdout
        assert time.monotonic() - t0 < 5
        pids = list(c.state()["pids"].values())
        c.kubectl("apply", "-f", str(ROOT / "examples/apps/my-app.yaml"),
                  "-f", str(ROOT / "examples/seed/clusterip-service.yaml"),
                  "-f", str(ROOT / "examples/seed/nodeport-service.yaml"))
        c.kubectl("rollout", "status", "deployment/my-app", "--timeout=60s")
        wait_for("3 ready endpoints", lambda: len(endpoint_names(c)) == 3)
        for node in ("node-1", "node-2"):
            wait_programmed(c, node, f"{CLUSTER_IP} . tcp . 80 . 2 : ")
        yield c
    finally:
        pids += [p.pid for p in c.restarted]
        c.nk("down", check=False)
        for p in c.restarted:
            p.wait(timeout=10)
    assert leftovers(c.name) == []
    assert not c.dir.exists()
    assert [p for p in pids if alive(p)] == []


def ready_pods(c: Cluster, app: str = "my-app") -> list[dict]:
    return [p for p in c.get("pods", "-l", f"app={app}")["items"]
            if not p["metadata"].get("deletionTimestamp") and any(
                x["type"] == "Ready" and x["status"] == "True"
                for x in p["status"].get("conditions", []))]


def endpoint_names(c: Cluster, svc: str = "my-service") -> set[str]:
    slices = c.get("endpointslices", "-l", f"kubernetes.io/service-name={svc}")["items"]
    return {e["targetRef"]["name"] for s in slices for e in s.get("endpoints") or []
            if (e.get("conditions") or {}).get("ready")}


def pod_on(c: Cluster, node: str, app: str = "my-app") -> str:
    return next(p["metadata"]["name"] for p in ready_pods(c, app) if p["spec"]["nodeName"] == node)


def apply(c: Cluster, obj: dict) -> None:
    c.kubectl("apply", "-f", "-", input=json.dumps(obj))


def service(name: str, selector: str, protocol: str = "TCP", **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": selector},
                     "ports": [{"name": "p", "port": 80, "targetPort": 80,
                                "protocol": protocol}], **spec}}


def cluster_ip(c: Cluster, name: str) -> str:
    return c.get("service", name)["spec"]["clusterIP"]


def wait_programmed(c: Cluster, node: str, text: str, present: bool = True) -> None:
    wait_for(f"{text!r} in node {node}'s rules",
             lambda: (text in c.nk("rules", "--node", node).stdout) == present, timeout=10)


# ---- the seed's Services ----------------------------------------------------------------------

def test_clusterip_balanced_from_pods_on_both_nodes(cluster):
    c = cluster
    names = endpoint_names(c)
    n = len(names)
    assert n == 3
    for node in ("node-1", "node-2"):
        client = pod_on(c, node)
        answers = c.from_pod(client, "http", f"http://{CLUSTER_IP}/hostname", str(20 * n), "3")
        assert set(answers) == names, f"from {client} on {node}: {answers}"
    # the node itself (host network) reaches it too, through the service route on cni0
    answers = c.from_netns("node-1", "http", f"http://{CLUSTER_IP}/hostname", str(20 * n), "3")
    assert set(answers) == names


def test_clusterip_by_name_through_cluster_dns(cluster):
    """`curl http://my-service` from a pod: the name through the kube-dns addon (search path
    default.svc.cluster.local), the traffic through the Service's rules."""
    c = cluster
    wait_for("cluster DNS ready", lambda: any(
        x["type"] == "Ready" and x["status"] == "True"
        for p in c.get("pods", "-n", "kube-system", "-l", "k8s-app=kube-dns")["items"]
        for x in p["status"].get("conditions", [])), timeout=30)
    names = endpoint_names(c)
    for node in ("node-1", "node-2"):
        client = pod_on(c, node)
        answers = c.from_pod(client, "http", "http://my-service/hostname",
                             str(20 * len(names)), "3")
        assert set(answers) == names, f"from {client} on {node}: {answers}"


def test_nodeport_from_outside_on_every_node_ip_clusterip_not(cluster):
    c = cluster
    names = endpoint_names(c)
    for node, ip in c.node_ips().items():
        answers = c.from_netns("outside", "http", f"http://{ip}:{NODE_PORT}/hostname", "60", "3")
        assert set(answers) == names, f"NodePort on {node} ({ip}): {answers}"
    answers = c.from_netns("outside", "http", f"http://{CLUSTER_IP}/hostname", "3", "2")
    assert all(a.startswith("error") for a in answers), answers
    # --nodeport-addresses primary (kube-proxy's nftables default): the node's own IP only,
    # not its other local addresses such as the pod bridge's
    import ipaddress
    bridge = str(next(ipaddress.ip_network(c.get("node", "node-1")["spec"]["podCIDR"]).hosts()))
    answers = c.from_netns("node-1", "http", f"http://{bridge}:{NODE_PORT}/hostname", "2", "2")
    assert all(a.startswith("error") for a in answers), answers
    answers = c.from_netns("node-1", "http", f"http://{c.node_ips()['node-1']}:{NODE_PORT}"
                                             "/hostname", "2", "2")
    assert not any(a.startswith("error") for a in answers), answers


def test_rules_healthz_and_metrics(cluster):
    c = cluster
    rules = c.nk("rules", "--node", "node-1").stdout
    assert rules.startswith("table ip nanokube {")
    assert f"{CLUSTER_IP} . tcp . 80" in rules and f"tcp . {NODE_PORT}" in rules
    both = c.nk("rules").stdout
    assert "# node node-1" in both and "# node node-2" in both
    ip = c.node_ips()["node-1"]
    script = ("import json,sys,urllib.request;"
              f"r=urllib.request.urlopen('http://{ip}:10256/healthz',timeout=3);"
              f"m=urllib.request.urlopen('http://{ip}:10249/metrics',timeout=3).read().decode();"
              "print(json.dumps([r.status,json.loads(r.read()),m]))")
    out = subprocess.run(["nsenter", f"--net=/run/netns/nk-{c.name}-node-1", "--",
                          sys.executable, "-c", script], capture_output=True, text=True, timeout=20)
    status, health, metrics = json.loads(out.stdout)
    assert status == 200
    assert health["nodeEligible"] is True and " UTC m=+" in health["currentTime"]
    assert "kubeproxy_sync_proxy_rules_last_timestamp_seconds" in metrics
    assert "kubeproxy_sync_full_proxy_rules_duration_seconds_count" in metrics
    assert 'kubeproxy_healthz_total{code="200"}' in metrics


def sync_failures(c: Cluster, node: str) -> float:
    ip = c.node_ips()[node]
    script = ("import urllib.request;"
              f"print(urllib.request.urlopen('http://{ip}:10249/metrics',timeout=3).read().decode())")
    out = subprocess.run(["nsenter", f"--net=/run/netns/nk-{c.name}-{node}", "--",
                          sys.executable, "-c", script], capture_output=True, text=True, timeout=20)
    line = next(l for l in out.stdout.splitlines()
                if l.startswith("kubeproxy_sync_proxy_rules_nftables_sync_failures_total "))
    return float(line.split()[1])


def test_no_sync_failed(cluster):
    """Every change was programmed by its own sync: none failed and needed a retry (nft 1.0.6
    cannot add shared chains in a later transaction; the proxier makes them up front)."""
    assert [sync_failures(cluster, n) for n in ("node-1", "node-2")] == [0.0, 0.0]


# ---- more Services ------------------------------------------------------------------------------

def test_udp_service(cluster):
    c = cluster
    apply(c, service("my-udp", "my-app", "UDP"))
    ip = cluster_ip(c, "my-udp")
    for node in ("node-1", "node-2"):
        wait_programmed(c, node, f"{ip} . udp . 80")
    names = endpoint_names(c)
    answers = c.from_pod(pod_on(c, "node-2"), "udp", ip, "80", str(20 * len(names)), "2")
    assert set(answers) == names, answers


def test_client_ip_affinity(cluster):
    c = cluster
    apply(c, service("my-sticky", "my-app", sessionAffinity="ClientIP"))
    ip = cluster_ip(c, "my-sticky")
    for node in ("node-1", "node-2"):
        wait_programmed(c, node, "affinity-10800s-")
    for node in ("node-1", "node-2"):
        answers = c.from_pod(pod_on(c, node), "http", f"http://{ip}/hostname", "30", "3")
        assert len(set(answers)) == 1 and answers[0] in endpoint_names(c), answers


def test_service_without_endpoints_refuses_at_once(cluster):
    c = cluster
    apply(c, service("nobody-home", "nothing-has-this-label"))
    ip = cluster_ip(c, "nobody-home")
    wait_programmed(c, "node-1", f"{ip} . tcp . 80 : goto reject-chain")
    answers = c.from_pod(pod_on(c, "node-1"), "http", f"http://{ip}/", "3", "5")
    for a in answers:
        kind, what, seconds = a.split()
        assert kind == "error" and what == "ConnectionRefusedError", answers
        assert float(seconds) < 1.0, answers


def test_removed_endpoint_gets_no_new_connections_within_a_second(cluster):
    c = cluster
    apply(c, {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "shrink"},
              "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "shrink"}},
                       "template": {"metadata": {"labels": {"app": "shrink"}}, "spec": {
                           "terminationGracePeriodSeconds": 5,
                           "containers": [{"name": "agnhost",
                                           "image": "registry.k8s.io/e2e-test-images/agnhost:2.47",
                                           # keeps serving 3 s after SIGTERM, as a
                                           # well-behaved server does while draining
                                           "args": ["netexec", "--http-port=80", "--udp-port=-1",
                                                    "--delay-shutdown=3"]}]}}}})
    apply(c, service("shrink", "shrink"))
    c.kubectl("rollout", "status", "deployment/shrink", "--timeout=60s")
    wait_for("4 endpoints", lambda: len(endpoint_names(c, "shrink")) == 4)
    ip = cluster_ip(c, "shrink")
    before = {p["metadata"]["name"] for p in ready_pods(c, "shrink")}
    client = pod_on(c, "node-1")
    loop = subprocess.Popen(c.in_pod_argv(client, "loop", f"http://{ip}/hostname", "5", "0.01"),
                            stdout=subprocess.PIPE, text=True, env=c.env, cwd=ROOT)
    try:
        time.sleep(1.5)
        c.kubectl("scale", "deployment/shrink", "--replicas=1")
        scaled = time.time()
        out, _ = loop.communicate(timeout=60)
    finally:
        if loop.poll() is None:
            loop.kill()
            loop.wait()
    result = json.loads(out)
    kept = {p["metadata"]["name"] for p in ready_pods(c, "shrink")}
    removed = before - kept
    assert len(removed) == 3 and len(kept) == 1
    late = [(round(t - scaled, 3), body) for t, body in result["seen"]
            if body in removed and t > scaled + 1.0]
    assert late == [], "removed endpoints still chosen more than 1 s after the scale-down"
    assert {body for t, body in result["seen"] if t > scaled + 1.0} == kept
    assert result["errors"] == [], result["errors"]


def test_agent_restart_loses_no_request(cluster):
    c = cluster
    node_ip = c.node_ips()["node-1"]
    loops = [
        subprocess.Popen(c.in_pod_argv(pod_on(c, "node-1"), "loop",
                                       f"http://{CLUSTER_IP}/hostname", "6", "0.01"),
                         stdout=subprocess.PIPE, text=True, env=c.env, cwd=ROOT),
        subprocess.Popen(c.in_netns_argv("outside", "loop",
                                         f"http://{node_ip}:{NODE_PORT}/hostname", "6", "0.01"),
                         stdout=subprocess.PIPE, text=True, env=c.env, cwd=ROOT),
    ]
    try:
        time.sleep(1.0)
        c.restart_agent("node-1")
        outs = [json.loads(p.communicate(timeout=60)[0]) for p in loops]
    finally:
        for p in loops:
            if p.poll() is None:
                p.kill()
                p.wait()
    for result in outs:
        assert result["errors"] == [], result["errors"]
        assert result["ok"] > 100
    # the new agent took over: its own full sync, and it follows changes again
    status = c.nk("status", check=False).stdout
    assert f"pid {c.restarted[-1].pid}" in status
    apply(c, service("after-restart", "my-app"))
    wait_programmed(c, "node-1", f"{cluster_ip(c, 'after-restart')} . tcp . 80")
    answers = c.from_pod(pod_on(c, "node-2"), "http",
                         f"http://{cluster_ip(c, 'after-restart')}/hostname", "3", "3")
    assert all(a in endpoint_names(c) for a in answers), answers
