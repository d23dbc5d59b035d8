"""`nanokube up --store etcd://... --api-servers 3`: a cluster that survives losing an API server
and its leading controller-manager (docs/etcd.md).

A throwaway 3-member etcd on loopback; `up` with 2 nodes and 3 API servers (LAN .1-.3) with
short leader-election and endpoint-lease timings. A Deployment becomes Ready behind a Service;
then the controller-manager that leads and the API server it talks to are killed (SIGKILL, pids
from cluster.json): the `kubernetes` Service's endpoints drop the dead server once its lease
expired, pods still reach the API through 10.96.0.1, a new Deployment becomes Ready and is
reachable by its Service (the new leader's controllers, the agents failed over), kubectl works
against a surviving server, and `down` leaves nothing.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from harness import ClusterRun, alive, leftovers, wait_for
from nanokube.store.etcd_cluster import EtcdCluster, etcd_binary

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("nft") or etcd_binary() is None
    or not shutil.which("kubectl"), reason="needs root, nft, etcd and kubectl")

LEASE = 3          # seconds: leader election and the API servers' endpoint leases
TIMINGS = ["--leader-elect-lease-duration", str(LEASE), "--leader-elect-renew-deadline", "2",
           "--leader-elect-retry-period", "0.5", "--endpoint-reconciler-lease-duration",
           str(LEASE)]

GET = r"""
import json, ssl, sys, urllib.request
url, n = sys.argv[1], int(sys.argv[2])
ctx = ssl.create_default_context()
ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
out = []
for _ in range(n):
    try:
        with urllib.request.urlopen(url, timeout=3, context=ctx) as r:
            out.append(r.read().decode())
    except Exception as e:
        out.append(f"error {e}")
print(json.dumps(out))
"""


def app(name: str) -> list[dict]:
    labels = {"app": name}
    return [{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
             "spec": {"replicas": 2, "selector": {"matchLabels": labels},
                      "template": {"metadata": {"labels": labels}, "spec": {"containers": [{
                          "name": "agnhost", "image": "registry.k8s.io/e2e-test-images/agnhost:2.47",
                          "args": ["netexec", "--http-port=80"],
                          "readinessProbe": {"httpGet": {"path": "/healthz", "port": 80},
                                             "periodSeconds": 1}}]}}}},
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
             "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 80}]}}]


class Cluster(ClusterRun):
    server: str = ""    # kubectl's --server: a live API server

    def kc(self, *args, **kw) -> subprocess.CompletedProcess:
        return self.kubectl(*(["--server", self.server] if self.server else []), *args, **kw)

    def getj(self, *args) -> dict:
        return json.loads(self.kc("get", *args, "-o", "json").stdout)

    def deploy(self, name: str) -> None:
        self.kc("apply", "-f", "-", input="\n".join(json.dumps(o) for o in app(name)))
        self.kc("rollout", "status", f"deployment/{name}", "--timeout=90s")

    def from_netns(self, where: str, url: str, n: int) -> list[str]:
        argv = ["nsenter", f"--net=/run/netns/nk-{self.name}-{where}", "--",
                sys.executable, "-c", GET, url, str(n)]
        return json.loads(subprocess.run(argv, capture_output=True, text=True, check=True,
                                         timeout=120).stdout)

    def from_pod(self, pod: str, url: str, n: int) -> list[str]:
        out = self.nk("exec", pod, "--", sys.executable, "-c", GET, url, str(n), timeout=120)
        return json.loads(out.stdout)

    def pods(self, name: str) -> list[str]:
        return [p["metadata"]["name"] for p in self.getj("pods", "-l", f"app={name}")["items"]]

    def kubernetes_endpoints(self) -> list[str]:
        ep = self.getj("endpoints", "kubernetes")
        return sorted(a["ip"] for s in ep.get("subsets") or [] for a in s["addresses"])

    def reachable(self, name: str) -> set[str]:
        """The pod names that answer on the Service's ClusterIP, from node-1."""
        ip = self.getj("service", name)["spec"]["clusterIP"]
        return set(self.from_netns("node-1", f"http://{ip}/hostname", 20))


def leading_manager(c: Cluster) -> str | None:
    """The controller-manager (its key in cluster.json) holding the Lease: each logs its
    identity when it becomes leader."""
    holder = c.getj("lease", "-n", "kube-system", "kube-controller-manager")["spec"].get(
        "holderIdentity")
    pids = c.state()["pids"]
    leaders = [k for k in pids if k.startswith("controller-manager") and alive(pids[k]) and holder
               and f"{holder} became leader" in (c.dir / "logs" / f"{k}.log").read_text()]
    return leaders[0] if len(leaders) == 1 else None


def test_cluster_survives_losing_a_server_and_the_leading_controller_manager(tmp_path):
    etcd = EtcdCluster(tmp_path / "etcd", members=3).start()
    c = Cluster(tmp_path, prefix="ha")
    pids: list[int] = []
    try:
        out = c.nk("up", "--nodes", "2", "--store", etcd.url, "--api-servers", "3", *TIMINGS,
                   timeout=90)
        assert "3 API servers" in out.stdout
        state = c.state()
        pids = list(state["pids"].values())
        servers = {s["name"]: s for s in state["apiservers"]}
        assert len(servers) == 3 and {f"controller-manager{x}" for x in ("", "-2", "-3")} <= \
            set(state["pids"])
        status = c.nk("status").stdout
        assert all(s["lan"] in status for s in servers.values())
        lans = sorted(s["lan"].split("//")[1].split(":")[0] for s in servers.values())
        wait_for("3 endpoints of kubernetes", lambda: c.kubernetes_endpoints() == lans)

        c.deploy("before")
        wait_for("the Service to answer from both pods",
                 lambda: c.reachable("before") == set(c.pods("before")), timeout=30)

        lead = wait_for("one leading controller-manager", lambda: leading_manager(c))
        victim = "apiserver" + lead[len("controller-manager"):]   # the server it talks to
        os.kill(state["pids"][lead], signal.SIGKILL)
        os.kill(state["pids"][victim], signal.SIGKILL)
        killed_at = time.monotonic()
        dead_ip = servers[victim]["lan"].split("//")[1].split(":")[0]
        c.server = next(s["local"] for k, s in servers.items() if k != victim)

        # the dead server leaves the kubernetes Service once its lease expired (plus at most
        # one reconcile interval, 2/3 of it, and slack for a busy machine)
        wait_for("the dead server to leave the endpoints",
                 lambda: dead_ip not in c.kubernetes_endpoints(), timeout=LEASE * 5, interval=0.2)
        dropped = time.monotonic() - killed_at
        print(f"the dead server left the kubernetes endpoints after {dropped:.1f} s")
        assert dropped < LEASE * 3, f"{dropped:.1f} s"   # lease + one interval, and slack
        assert len(c.kubernetes_endpoints()) == 2

        # a new controller-manager leads; a new Deployment becomes Ready and is reachable
        c.deploy("after")
        assert wait_for("a new leader", lambda: leading_manager(c)) != lead
        wait_for("the new Service to answer from both pods",
                 lambda: c.reachable("after") == set(c.pods("after")), timeout=30)
        # pods reach the API through the kubernetes Service's ClusterIP: every try answers
        answers = c.from_pod(c.pods("after")[0], "https://10.96.0.1/readyz", 20)
        assert answers == ["ok"] * 20, answers
        assert c.kc("get", "nodes").returncode == 0
        # exec (a stream from a surviving API server to the agent) works with .1's server gone
        pod = c.pods("after")[0]
        assert c.kc("exec", pod, "--", "hostname").stdout.strip() == pod
    finally:
        c.nk("down", check=False)
        etcd.stop()
    assert leftovers(c.name) == []
    assert not c.dir.exists()
    assert [p for p in pids if alive(p)] == []
