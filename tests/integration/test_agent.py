"""The node agent for real: one node namespace on a LAN bridge, a `nanokube server`, and
`nanokube agent` inside the node. Pods are bound by setting spec.nodeName (no scheduler) and
the Node's podCIDR is set by the test (no controller manager).

Needs root. Everything made here (namespaces, links, processes) is removed in finally."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from harness import ROOT, ApiServerProcess, free_port, stop_process
from nanokube.api.errors import StatusError
from nanokube.client import Client

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)")

CLUSTER = "agenttest"
NODE = "node-1"
POD_CIDR = "10.244.1.0/24"
AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.53"


def pods_path(name: str | None = None, sub: str | None = None) -> str:
    return Client.resource_path("", "v1", "pods", "default", name, sub)


async def eventually(fn, timeout: float = 15.0, interval: float = 0.05):
    """Call fn (sync or async) until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if asyncio.iscoroutine(last):
                last = await last
            if last:
                return last
        except Exception as e:       # not there yet: StatusError, connection refused, ...
            last = e
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out; last: {last!r}")


def in_node(netns: str, *argv: str, timeout: float = 10) -> subprocess.CompletedProcess:
    return subprocess.run(["nsenter", f"--net=/run/netns/{netns}", "--", *argv],
                          capture_output=True, text=True, timeout=timeout)


def http_from_node(netns: str, url: str) -> str:
    code = ("import sys, urllib.request; "
            "print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode(), end='')")
    proc = in_node(netns, sys.executable, "-c", code, url)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def pod_pids(state_dir: Path) -> list[int]:
    pids = []
    for f in state_dir.glob("pods/*/pids"):
        pids += [int(line.split()[1]) for line in f.read_text().splitlines() if line.strip()]
    return pids


class Agent:
    def __init__(self, netns: str, node_ip: str, kubeconfig: str, state_dir: Path, log: Path):
        self.cmd = ["nsenter", f"--net=/run/netns/{netns}", "--", sys.executable, "-m",
                    "nanokube", "agent", "--kubeconfig", kubeconfig, "--node", NODE,
                    "--node-ip", node_ip, "--state-dir", str(state_dir), "--cluster", CLUSTER,
                    "--lease-duration", "4"]
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.cmd, stdout=open(self.log, "ab"),
                                     stderr=subprocess.STDOUT, cwd=ROOT)

    def stop(self) -> None:
        stop_process(self.proc)


@pytest.fixture
def cluster(tmp_path):
    from nanokube.cluster import network
    index = max(network.used_indexes() | {200}) + 1
    net = network.plan(CLUSTER, index, 1)
    node = net.nodes[0]
    state_dir = tmp_path / "node"
    port = free_port()
    # the kubeconfig names the advertised address with the first port: the same on the LAN
    server = ApiServerProcess(tmp_path / "data", port=port, extra=[
        "--listen", f"{net.host_ip}:{port}", "--advertise-address", net.host_ip])
    agent = Agent(node.netns, node.ip, server.kubeconfig, state_dir, tmp_path / "agent.log")
    try:
        network.create(net)
        server.start()
        agent.start()
        yield {"net": net, "node": node, "server": server, "agent": agent,
               "state_dir": state_dir}
    finally:
        agent.stop()
        for pid in pod_pids(state_dir):
            for kill in (os.killpg, os.kill):
                try:
                    kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        server.stop()
        network.destroy(net)
        log = tmp_path / "agent.log"
        if log.exists():
            print(log.read_text()[-5000:])


def container_status(pod: dict, name: str = "c") -> dict:
    return next(c for c in pod["status"]["containerStatuses"] if c["name"] == name)


def condition(pod: dict, ctype: str) -> str:
    return next((c["status"] for c in pod["status"].get("conditions") or []
                 if c["type"] == ctype), "")


def pid_of(pod: dict, name: str = "c") -> int:
    return int(container_status(pod, name)["containerID"].split("://")[1])


async def test_agent_runs_pods(cluster):
    node, state_dir = cluster["node"], cluster["state_dir"]
    client = Client.from_kubeconfig(cluster["server"].kubeconfig)
    try:
        # ---- registration and lease
        node_path = Client.resource_path("", "v1", "nodes", None, NODE)
        registered = await eventually(lambda: client.get(node_path))
        assert registered["metadata"]["labels"]["kubernetes.io/hostname"] == NODE
        addresses = {a["type"]: a["address"] for a in registered["status"]["addresses"]}
        assert addresses == {"InternalIP": node.ip, "Hostname": NODE}
        assert registered["status"]["nodeInfo"]["kubeletVersion"] == "v1.32.0-nanokube"
        assert registered["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == 10250
        assert condition(registered, "Ready") == "True"
        lease_path = Client.resource_path("coordination.k8s.io", "v1", "leases",
                                          "kube-node-lease", NODE)
        lease = await eventually(lambda: client.get(lease_path))
        assert lease["spec"]["holderIdentity"] == NODE
        first_renew = lease["spec"]["renewTime"]
        renewed = await eventually(
            lambda: _renewed(client, lease_path, first_renew), timeout=5)
        assert renewed

        # ---- the pod network comes with the podCIDR
        await client.patch(node_path, {"spec": {"podCIDR": POD_CIDR, "podCIDRs": [POD_CIDR]}})

        # ---- a netexec pod: Running and Ready, its IP, its hostname, its environment
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "web", "namespace": "default"},
               "spec": {"nodeName": NODE, "terminationGracePeriodSeconds": 1,
                        "containers": [{
                            "name": "c", "image": AGNHOST,
                            "args": ["netexec", "--http-port=8080"],
                            "env": [{"name": "MY_POD", "valueFrom": {"fieldRef": {
                                        "fieldPath": "metadata.name"}}},
                                    {"name": "MY_IP", "valueFrom": {"fieldRef": {
                                        "fieldPath": "status.podIP"}}},
                                    {"name": "MY_NODE", "valueFrom": {"fieldRef": {
                                        "fieldPath": "spec.nodeName"}}}],
                            "livenessProbe": {"exec": {"command": ["true"]},
                                              "periodSeconds": 1}}]}}
        await client.create(pods_path(), pod)
        web = await eventually(lambda: _ready_pod(client, "web"), timeout=30)
        ip = web["status"]["podIP"]
        assert ip.startswith("10.244.1.")
        assert web["status"]["hostIP"] == node.ip
        cs = container_status(web)
        assert cs["ready"] and cs["started"] and cs["restartCount"] == 0
        hostname = await eventually(lambda: _try(http_from_node, node.netns,
                                                 f"http://{ip}:8080/hostname"))
        assert hostname == "web"
        pid = pid_of(web)
        environ = dict(item.split("=", 1) for item in
                       Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in item)
        assert environ["MY_POD"] == "web" and environ["MY_IP"] == ip
        assert environ["MY_NODE"] == NODE and environ["HOSTNAME"] == "web"
        assert environ["KUBERNETES_SERVICE_HOST"] and environ["KUBERNETES_SERVICE_PORT"]
        pod_dir = state_dir / "pods" / web["metadata"]["uid"]
        assert (pod_dir / "resolv.conf").read_text().startswith("nameserver 10.96.0.10\n")
        assert (pod_dir / "pids").read_text() == f"c {pid}\n"

        # ---- killing the process restarts the container
        os.kill(pid, signal.SIGKILL)
        restarted = await eventually(lambda: _restarted(client, "web"), timeout=20)
        last = container_status(restarted)["lastState"]["terminated"]
        assert last["exitCode"] == 137 and last["reason"] == "Error"
        assert pid_of(restarted) != pid

        # ---- a failing readiness probe keeps a pod unready
        unready = {"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": "unready", "namespace": "default"},
                   "spec": {"nodeName": NODE, "terminationGracePeriodSeconds": 1,
                            "containers": [{"name": "c", "image": AGNHOST, "args": ["pause"],
                                            "readinessProbe": {
                                                "httpGet": {"path": "/", "port": 9999},
                                                "periodSeconds": 1}}]}}
        await client.create(pods_path(), unready)
        got = await eventually(lambda: _phase(client, "unready", "Running"))
        await asyncio.sleep(1.5)
        got = await client.get(pods_path("unready"))
        assert condition(got, "Ready") == "False"
        assert condition(got, "ContainersReady") == "False"
        assert not container_status(got)["ready"]

        # ---- an image nobody knows
        bad = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "bad", "namespace": "default"},
               "spec": {"nodeName": NODE, "containers": [{"name": "c",
                                                         "image": "example.com/nope:1"}]}}
        await client.create(pods_path(), bad)
        got = await eventually(lambda: _waiting(client, "bad"))
        assert got["status"]["phase"] == "Pending"
        assert container_status(got)["state"]["waiting"]["reason"] == "ErrImagePull"

        # ---- logs on :10250
        talker = {"apiVersion": "v1", "kind": "Pod",
                  "metadata": {"name": "talker", "namespace": "default"},
                  "spec": {"nodeName": NODE, "terminationGracePeriodSeconds": 1,
                           "containers": [{"name": "c", "image": "busybox", "command": [
                               "sh", "-c", "echo hello; echo oops >&2; hostname; exec sleep 600"]}]}}
        await client.create(pods_path(), talker)
        await eventually(lambda: _ready_pod(client, "talker"), timeout=30)
        base = f"http://{node.ip}:10250/containerLogs/default/talker/c"
        text = await eventually(lambda: _try(_fetch, base + "?follow=false"))
        assert sorted(text.splitlines()) == ["hello", "oops", "talker"]
        stamped = _fetch(base + "?timestamps=true&tailLines=1")
        assert stamped.startswith("20") and "Z " in stamped and stamped.count("\n") == 1

        # ---- an agent restart leaves healthy pods alone
        talker_pod = await client.get(pods_path("talker"))
        talker_pid = pid_of(talker_pod)
        cluster["agent"].stop()
        cluster["agent"].start()
        await asyncio.sleep(2)
        again = await eventually(lambda: _ready_pod(client, "talker"), timeout=20)
        assert pid_of(again) == talker_pid and container_status(again)["restartCount"] == 0
        assert os.path.exists(f"/proc/{talker_pid}")

        # ---- deletion ends the processes and removes the sandbox
        web = await client.get(pods_path("web"))
        web_pid, uid = pid_of(web), web["metadata"]["uid"]
        netns = f"nk-{CLUSTER}-{uid.replace('-', '')[:12]}"
        assert os.path.exists(f"/run/netns/{netns}")
        await client.delete(pods_path("web"), {"gracePeriodSeconds": 0})
        await eventually(lambda: not os.path.exists(f"/proc/{web_pid}"), timeout=15)
        await eventually(lambda: not os.path.exists(f"/run/netns/{netns}"), timeout=15)
        await eventually(lambda: _gone(client, "web"), timeout=15)

        # ---- a graceful deletion: the agent stops the containers, then removes the object
        await client.delete(pods_path("talker"))
        await eventually(lambda: not os.path.exists(f"/proc/{talker_pid}"), timeout=15)
        await eventually(lambda: _gone(client, "talker"), timeout=15)
    finally:
        await client.close()


async def _renewed(client, path, first):
    lease = await client.get(path)
    return lease["spec"]["renewTime"] != first


async def _ready_pod(client, name):
    pod = await client.get(pods_path(name))
    status = pod.get("status") or {}
    if status.get("phase") == "Running" and condition(pod, "Ready") == "True":
        return pod
    return None


async def _restarted(client, name):
    pod = await client.get(pods_path(name))
    if pod["status"]["containerStatuses"][0]["restartCount"] >= 1 and \
            condition(pod, "Ready") == "True":
        return pod
    return None


async def _phase(client, name, phase):
    pod = await client.get(pods_path(name))
    return pod if (pod.get("status") or {}).get("phase") == phase else None


async def _waiting(client, name):
    pod = await client.get(pods_path(name))
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return pod if statuses and "waiting" in statuses[0]["state"] and \
        statuses[0]["state"]["waiting"].get("reason") == "ErrImagePull" else None


async def _gone(client, name):
    try:
        await client.get(pods_path(name))
    except StatusError as e:
        return e.code == 404
    return False


def _try(fn, *args):
    try:
        return fn(*args)
    except (AssertionError, OSError):
        return None


def _fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.read().decode()
