"""Issue 5 part 3 on a real 2-node cluster: LoadBalancer addresses announced by ARP (MetalLB L2).

A LoadBalancer Service in front of examples/apps/my-app.yaml gets an address in the cluster LAN
(status patched here, unless a LoadBalancer controller assigns it first); the outside host
reaches it over TCP and UDP; its ARP entry names the elected node's MAC; stopping that node's
agent moves the address to the other node; loadBalancerSourceRanges keeps the outside host out.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from conftest import ROOT
from test_dataplane import Cluster, alive, endpoint_names, leftovers, wait_for
from nanokube.node.announcer import elect

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("nft"),
                                reason="needs root (network namespaces) and nft")

NODES = ("node-1", "node-2")


def lb_ip(c: Cluster, last: int) -> str:
    k = c.state()["network"]["host_ip"].split(".")[2]
    return f"10.123.{k}.{last}"


def lb_service(name: str, ip: str, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"type": "LoadBalancer", "selector": {"app": "my-app"},
                     "loadBalancerIP": ip,
                     "ports": [{"name": "http", "port": 80, "targetPort": 80, "protocol": "TCP"},
                               {"name": "udp", "port": 80, "targetPort": 80,
                                "protocol": "UDP"}], **spec}}


def ingress_ips(c: Cluster, name: str) -> list[str]:
    svc = c.get("service", name)
    return [i.get("ip") for i in svc.get("status", {}).get("loadBalancer", {}).get("ingress", [])]


def ensure_status(c: Cluster, name: str, ip: str) -> None:
    """Give the Service its address: a LoadBalancer controller (if one runs) honours
    loadBalancerIP; otherwise write the status as one would."""
    try:
        wait_for("a controller", lambda: ingress_ips(c, name), timeout=2.0)
    except AssertionError:
        status = {"status": {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}}}
        c.kubectl("patch", "service", name, "--subresource=status", "--type=merge",
                  "-p", json.dumps(status))
    assert ingress_ips(c, name) == [ip]


def outside(c: Cluster, *argv: str, check: bool = True) -> str:
    out = subprocess.run(["nsenter", f"--net=/run/netns/nk-{c.name}-outside", "--", *argv],
                         capture_output=True, text=True, timeout=30)
    if check:
        assert out.returncode == 0, out.stderr
    return out.stdout


def neigh_mac(c: Cluster, ip: str) -> str | None:
    """The outside host's ARP entry for ip (None when missing or unresolved)."""
    for line in outside(c, "ip", "neigh", "show", ip).splitlines():
        words = line.split()
        if "lladdr" in words:
            return words[words.index("lladdr") + 1]
    return None


def node_mac(c: Cluster, node: str) -> str:
    out = subprocess.run(["nsenter", f"--net=/run/netns/nk-{c.name}-{node}", "--",
                          "ip", "-o", "link", "show", "eth0"], capture_output=True, text=True)
    words = out.stdout.split()
    return words[words.index("link/ether") + 1]


def http(c: Cluster, ip: str, n: int = 1, timeout: float = 2) -> list[str]:
    return c.from_netns("outside", "http", f"http://{ip}/hostname", str(n), str(timeout))


def udp(c: Cluster, ip: str, n: int = 1, timeout: float = 2) -> list[str]:
    return c.from_netns("outside", "udp", ip, "80", str(n), str(timeout))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("announce"))
    c.name = f"an{os.getpid() % 100000}"
    c.stopped = {}                  # node -> (argv, env) of an agent a test stopped
    pids: list[int] = []
    try:
        c.nk("up", "--nodes", "2", timeout=60)
        pids = list(c.state()["pids"].values())
        c.kubectl("apply", "-f", str(ROOT / "examples/apps/my-app.yaml"))
        c.kubectl("rollout", "status", "deployment/my-app", "--timeout=60s")
        ip = lb_ip(c, 220)
        c.kubectl("apply", "-f", "-", input=json.dumps(lb_service("lb-web", ip)))
        wait_for("3 ready endpoints", lambda: len(endpoint_names(c, "lb-web")) == 3)
        ensure_status(c, "lb-web", ip)
        yield c
    finally:
        for node in list(c.stopped):
            start_agent(c, node)
        pids += [p.pid for p in c.restarted]
        c.nk("down", check=False)
        for p in c.restarted:
            p.wait(timeout=10)
    assert leftovers(c.name) == []
    assert [p for p in pids if alive(p)] == []


def stop_agent(c: Cluster, node: str) -> float:
    """SIGTERM the node's agent (remembering how to start it again); returns the time sent."""
    key = f"agent-{node}"
    pid = c.state()["pids"][key]
    argv = open(f"/proc/{pid}/cmdline", "rb").read().decode().split("\0")[:-1]
    env = dict(kv.split("=", 1) for kv in
               open(f"/proc/{pid}/environ", "rb").read().decode().split("\0") if "=" in kv)
    c.stopped[node] = (argv, env)
    t0 = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    wait_for("the agent to exit", lambda: not alive(pid), timeout=15, interval=0.02)
    return t0


def start_agent(c: Cluster, node: str) -> None:
    argv, env = c.stopped.pop(node)
    state = c.state()
    with open(c.dir / "logs" / f"agent-{node}.log", "ab") as log:
        proc = subprocess.Popen(["nsenter", f"--net=/run/netns/nk-{c.name}-{node}", "--", *argv],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env, cwd="/")
    c.restarted.append(proc)
    state["pids"][f"agent-{node}"] = proc.pid
    tmp = c.dir / "cluster.json.tmp"
    tmp.write_text(json.dumps(state, indent=1))
    tmp.replace(c.dir / "cluster.json")


# ---- tests ------------------------------------------------------------------------------------

def test_tcp_and_udp_from_outside_answered_by_elected_node(cluster):
    c = cluster
    ip = lb_ip(c, 220)
    names = endpoint_names(c, "lb-web")
    answers = http(c, ip, n=30)
    assert set(answers) == names, answers
    answers = udp(c, ip, n=30)
    assert set(answers) == names, answers
    owner = elect(NODES, ip)
    assert neigh_mac(c, ip) == node_mac(c, owner)
    # neither node's kernel holds the address (only the announcer answers for it)
    for node in NODES:
        out = subprocess.run(["nsenter", f"--net=/run/netns/nk-{c.name}-{node}", "--",
                              "ip", "-o", "addr"], capture_output=True, text=True).stdout
        assert f" {ip}/" not in out


def test_stopping_the_announcer_moves_the_address(cluster):
    c = cluster
    ip = lb_ip(c, 220)
    owner = elect(NODES, ip)
    other = next(n for n in NODES if n != owner)
    assert neigh_mac(c, ip) == node_mac(c, owner) or http(c, ip) and neigh_mac(c, ip) == \
        node_mac(c, owner)
    t0 = stop_agent(c, owner)
    new_mac = node_mac(c, other)
    # the gratuitous ARP moves the outside host's entry without it asking
    wait_for("the address to move", lambda: neigh_mac(c, ip) == new_mac, timeout=15,
             interval=0.05)
    moved = time.monotonic() - t0
    print(f"\naddress moved {owner} -> {other} in {moved:.2f} s after SIGTERM")
    assert moved < 8
    names = endpoint_names(c, "lb-web")
    assert all(not a.startswith("error") for a in http(c, ip, n=10)), names
    assert all(not a.startswith("error") for a in udp(c, ip, n=10))
    # ARP asked afresh is answered by the new owner alone
    outside(c, "ip", "neigh", "flush", "dev", "eth0")
    assert not http(c, ip)[0].startswith("error")
    assert neigh_mac(c, ip) == new_mac
    # the restarted agent resyncs and takes its address back (the election is deterministic)
    start_agent(c, owner)
    wait_for("the address to come back", lambda: neigh_mac(c, ip) == node_mac(c, owner),
             timeout=20, interval=0.1)
    assert not http(c, ip)[0].startswith("error")


def test_source_ranges_keep_the_outside_host_out(cluster):
    c = cluster
    ip = lb_ip(c, 221)
    c.kubectl("apply", "-f", "-", input=json.dumps(
        lb_service("lb-ranges", ip, loadBalancerSourceRanges=["192.0.2.0/24"])))
    ensure_status(c, "lb-ranges", ip)
    wait_for("an ARP answer", lambda: neigh_mac(c, ip) or (http(c, ip, timeout=1) and None),
             timeout=10)
    assert neigh_mac(c, ip) == node_mac(c, elect(NODES, ip))
    assert all(a.startswith("error") for a in http(c, ip, n=2, timeout=1))
    assert all(a.startswith("error") for a in udp(c, ip, n=2, timeout=1))
    outside_ip = lb_ip(c, 254)
    c.kubectl("patch", "service", "lb-ranges", "--type=merge", "-p", json.dumps(
        {"spec": {"loadBalancerSourceRanges": [f"{outside_ip}/32"]}}))
    wait_for("the outside host let in",
             lambda: not http(c, ip, timeout=1)[0].startswith("error"), timeout=10)


def test_deleting_the_service_withdraws_the_address(cluster):
    c = cluster
    ip = lb_ip(c, 221)
    c.kubectl("delete", "service", "lb-ranges")
    outside(c, "ip", "neigh", "flush", "dev", "eth0")
    time.sleep(1)
    assert http(c, ip, timeout=1)[0].startswith("error")
    assert neigh_mac(c, ip) is None


def test_local_policy_announces_from_a_node_with_an_endpoint(cluster):
    c = cluster
    ip = lb_ip(c, 222)
    loser = next(n for n in NODES if n != elect(NODES, ip))   # Cluster policy would pick the other
    c.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "local-app"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "local-app"}},
                 "template": {"metadata": {"labels": {"app": "local-app"}}, "spec": {
                     "nodeSelector": {"kubernetes.io/hostname": loser},
                     "containers": [{"name": "agnhost",
                                     "image": "registry.k8s.io/e2e-test-images/agnhost:2.47",
                                     "args": ["netexec", "--http-port=80", "--udp-port=80"]}]}}}}))
    c.kubectl("rollout", "status", "deployment/local-app", "--timeout=60s")
    svc = lb_service("lb-local", ip, externalTrafficPolicy="Local")
    svc["spec"]["selector"] = {"app": "local-app"}
    c.kubectl("apply", "-f", "-", input=json.dumps(svc))
    wait_for("a ready endpoint", lambda: len(endpoint_names(c, "lb-local")) == 1)
    ensure_status(c, "lb-local", ip)
    answers = wait_for("an answer", lambda: [a for a in http(c, ip, timeout=1)
                                             if not a.startswith("error")], timeout=10)
    assert answers[0].startswith("local-app-")
    assert neigh_mac(c, ip) == node_mac(c, loser)
    c.kubectl("delete", "service", "lb-local")
    c.kubectl("delete", "deployment", "local-app")
