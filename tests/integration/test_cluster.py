"""Issue 3 acceptance: `nanokube up` makes a real 2-node cluster; pods are processes with IPs;
Deployments and EndpointSlices behave as in Kubernetes; `down` leaves nothing behind."""
from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import ClusterRun, leftovers, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")

AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.47"


def deployment(name: str, replicas: int, readiness: dict | None = None) -> str:
    container = {"name": "agnhost", "image": AGNHOST,
                 "args": ["netexec", "--http-port=8080", "--udp-port=-1"],
                 "ports": [{"name": "http", "containerPort": 8080}]}
    if readiness:
        container["readinessProbe"] = readiness
    return json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [container],
                                       "terminationGracePeriodSeconds": 1}}}})


def service(name: str) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                       "spec": {"selector": {"app": name},
                                "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})


class Cluster(ClusterRun):
    pass


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        out = c.nk("up", "--nodes", "2", timeout=60)
        assert "is ready" in out.stdout
        yield c
    finally:
        c.nk("down", check=False)
    assert leftovers(c.name) == []
    assert not (Path(c.env["NANOKUBE_HOME"]) / c.name).exists()


def ready_endpoints(c: Cluster, svc: str) -> list[dict]:
    slices = c.get("endpointslices", "-l", f"kubernetes.io/service-name={svc}")["items"]
    return [e for s in slices for e in (s.get("endpoints") or [])
            if e.get("conditions", {}).get("ready")]


def test_deployment_pods_endpointslices_scaling(cluster):
    c = cluster
    nodes = c.get("nodes")["items"]
    assert len(nodes) == 2
    cidrs = {n["metadata"]["name"]: ipaddress.ip_network(n["spec"]["podCIDR"]) for n in nodes}
    c.kubectl("apply", "-f", "-", input=deployment("echo", 3))
    c.kubectl("apply", "-f", "-", input=service("echo"))
    c.kubectl("rollout", "status", "deployment/echo", "--timeout=30s")
    pods = wait_for("3 ready pods", lambda: [
        p for p in c.get("pods", "-l", "app=echo")["items"]
        if any(x["type"] == "Ready" and x["status"] == "True"
               for x in p["status"].get("conditions", []))] if True else None)
    assert len(pods) == 3
    assert {p["spec"]["nodeName"] for p in pods} == set(cidrs), "replicas spread on both nodes"
    for p in pods:
        assert ipaddress.ip_address(p["status"]["podIP"]) in cidrs[p["spec"]["nodeName"]]

    eps = wait_for("3 ready endpoints", lambda: len(ready_endpoints(c, "echo")) == 3 and
                   ready_endpoints(c, "echo"))
    slice_ = c.get("endpointslices", "-l", "kubernetes.io/service-name=echo")["items"][0]
    assert slice_["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    assert {e["targetRef"]["name"] for e in eps} == {p["metadata"]["name"] for p in pods}

    # A pod reaches a pod on the other node by IP.
    a = next(p for p in pods if p["spec"]["nodeName"] == "node-1")
    b = next(p for p in pods if p["spec"]["nodeName"] == "node-2")
    out = c.nk("exec", a["metadata"]["name"], "--", sys.executable, "-c",
               "import urllib.request,sys;print(urllib.request.urlopen("
               f"'http://{b['status']['podIP']}:8080/hostname',timeout=5).read().decode())")
    assert out.stdout.strip() == b["metadata"]["name"]

    for replicas in (6, 1):
        c.kubectl("scale", "deployment/echo", f"--replicas={replicas}")
        t0 = time.monotonic()
        wait_for(f"{replicas} endpoints", lambda: len(ready_endpoints(c, "echo")) == replicas)
        assert time.monotonic() - t0 < 10


def test_restart_readiness_and_delete(cluster):
    c = cluster
    # Ready while /tmp/nk-unready-<pod name> does not exist (the exec probe runs in the
    # container's namespaces, where the hostname is the pod's name).
    c.kubectl("apply", "-f", "-", input=deployment("probe", 1, readiness={
        "exec": {"command": ["sh", "-c", "test ! -e /tmp/nk-unready-$(hostname)"]},
        "periodSeconds": 1, "failureThreshold": 1}))
    c.kubectl("apply", "-f", "-", input=service("probe"))
    c.kubectl("rollout", "status", "deployment/probe", "--timeout=30s")
    pod = c.get("pods", "-l", "app=probe")["items"][0]
    name = pod["metadata"]["name"]
    wait_for("ready endpoint", lambda: len(ready_endpoints(c, "probe")) == 1)

    # A failing readiness probe takes the pod out of the slice, a passing one brings it back.
    marker = Path(f"/tmp/nk-unready-{name}")
    marker.touch()
    try:
        wait_for("unready endpoint", lambda: len(ready_endpoints(c, "probe")) == 0, timeout=10)
    finally:
        marker.unlink()
    wait_for("ready again", lambda: len(ready_endpoints(c, "probe")) == 1, timeout=10)

    # Killing the container's process restarts it.
    pid = int(pod["status"]["containerStatuses"][0]["containerID"].split("://")[1])
    os.kill(pid, 9)
    wait_for("restart", lambda: c.get("pod", name)["status"]["containerStatuses"][0]
             .get("restartCount", 0) >= 1, timeout=30)

    # logs through kubectl
    assert c.kubectl("logs", name).returncode == 0

    # Deleting the Deployment removes its pods and their namespaces.
    c.kubectl("delete", "deployment", "probe")
    wait_for("pods gone", lambda: c.get("pods", "-l", "app=probe")["items"] == [], timeout=30)
    uid = pod["metadata"]["uid"].replace("-", "")[:12]
    wait_for("the pod's network namespace gone", lambda: f"nk-{c.name}-{uid}" not in
             subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout,
             timeout=10)


def test_two_clusters_side_by_side(tmp_path):
    """Two clusters with different names get different LANs, work at once, and go cleanly."""
    a, b = Cluster(tmp_path / "a"), Cluster(tmp_path / "b")
    a.name, b.name = f"{a.name}a", f"{b.name}b"
    try:
        for c in (a, b):
            c.nk("up", "--nodes", "1")
        lans = [json.loads((Path(c.env["NANOKUBE_HOME"]) / c.name / "cluster.json").read_text())
                ["network"]["lan_cidr"] for c in (a, b)]
        assert lans[0] != lans[1]
        for c in (a, b):
            assert len(c.get("nodes")["items"]) == 1
            status = c.nk("status").stdout
            assert "NOT RUNNING" not in status
    finally:
        for c in (a, b):
            c.nk("down", check=False)
    for c in (a, b):
        assert leftovers(c.name) == []
