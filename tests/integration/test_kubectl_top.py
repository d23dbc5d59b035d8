"""`kubectl top nodes` and `kubectl top pods` against a real two-node cluster: a pod that burns
CPU and an idle one with two containers, after the sampling window; --containers, -l, -A, one
pod by name; and metrics.k8s.io through the Python client (lists, get, not found)."""
from __future__ import annotations

import asyncio
import os
import re

import pytest
import yaml

from harness import ClusterRun, leftovers, processes_under, require_kubectl, wait_for
from nanokube.api.errors import StatusError
from nanokube.client import Client

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")

RESOLUTION = "2"            # seconds between samples: keeps the test short


def pod(name: str, namespace: str, labels: dict, containers: dict[str, str]) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"terminationGracePeriodSeconds": 0, "containers": [
                {"name": c, "image": "busybox", "command": ["sh", "-c", script]}
                for c, script in containers.items()]}}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    require_kubectl()
    c = ClusterRun(tmp_path_factory.mktemp("top"), prefix="m")
    c.env["NANOKUBE_METRIC_RESOLUTION"] = RESOLUTION
    objs = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}},
        pod("busy", "default", {"app": "busy"}, {"burn": "while :; do :; done"}),
        pod("idle", "default", {"app": "idle"}, {"a": "sleep 3600", "b": "sleep 3600"}),
        pod("elsewhere", "other", {"app": "idle"}, {"main": "sleep 3600"}),
    ]
    try:
        c.nk("up", "--nodes", "2", timeout=90)
        c.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objs))
        c.kubectl("wait", "--for=condition=Ready", "pod/busy", "pod/idle", "--timeout=60s")
        c.kubectl("wait", "--for=condition=Ready", "-n", "other", "pod/elsewhere",
                  "--timeout=60s")
        yield c
    finally:
        c.nk("down", check=False)
    assert leftovers(c.name) == []
    assert processes_under(c.home) == []     # the shells' `sleep` children too


def rows(output: str) -> list[list[str]]:
    return [line.split() for line in output.strip().splitlines()]


def top(c: ClusterRun, *args: str) -> list[list[str]]:
    """`kubectl top ...` once every pod and node has metrics (the first samples need a
    window to pass)."""
    def ready():
        proc = c.kubectl("top", *args, check=False)
        return proc.returncode == 0 and "<unknown>" not in proc.stdout and proc.stdout
    return rows(wait_for(f"kubectl top {' '.join(args)}", ready, timeout=40, interval=1))


def millicores(text: str) -> int:
    assert re.fullmatch(r"\d+m", text), text
    return int(text[:-1])


def mebibytes(text: str) -> int:
    assert re.fullmatch(r"\d+Mi", text), text
    return int(text[:-2])


def test_top_pods(cluster):
    table = top(cluster, "pods")
    assert table[0] == ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    by_name = {r[0]: r for r in table[1:]}
    assert set(by_name) == {"busy", "idle"}
    # a busy loop gets most of a core even on a shared two-core machine; sleep gets nothing
    assert millicores(by_name["busy"][1]) >= 200, table
    assert millicores(by_name["idle"][1]) <= 20, table
    for name in ("busy", "idle"):
        assert mebibytes(by_name[name][2]) < 100, table


def test_top_pods_containers_and_selector(cluster):
    table = top(cluster, "pods", "--containers")
    assert table[0] == ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert sorted((r[0], r[1]) for r in table[1:]) == [("busy", "burn"), ("idle", "a"),
                                                       ("idle", "b")]
    table = top(cluster, "pods", "-l", "app=busy")
    assert [r[0] for r in table[1:]] == ["busy"]
    table = top(cluster, "pod", "idle")
    assert [r[0] for r in table[1:]] == ["idle"]


def test_top_pods_all_namespaces(cluster):
    table = top(cluster, "pods", "-A", "-l", "app=idle")
    assert table[0] == ["NAMESPACE", "NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert sorted((r[0], r[1]) for r in table[1:]) == [("default", "idle"),
                                                       ("other", "elsewhere")]


def test_top_pod_missing(cluster):
    proc = cluster.kubectl("top", "pod", "nosuch", check=False)
    assert proc.returncode != 0
    assert 'podmetrics.metrics.k8s.io "default/nosuch" not found' in proc.stderr


def test_top_nodes(cluster):
    table = top(cluster, "nodes")
    assert table[0] == ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]
    nodes = {n["metadata"]["name"] for n in cluster.get("nodes")["items"]}
    assert {r[0] for r in table[1:]} == nodes and len(nodes) == 2
    for _, cpu, cpu_pct, memory, memory_pct in table[1:]:
        millicores(cpu)
        assert mebibytes(memory) > 0
        # both nodes are this machine: the busy pod alone makes it a tenth of two cores
        assert 0 <= int(cpu_pct.rstrip("%")) <= 100
        assert 0 < int(memory_pct.rstrip("%")) <= 100


def test_python_client(cluster):
    async def main():
        client = Client.from_kubeconfig(str(cluster.dir / "kubeconfig"))
        try:
            found = await client.get("/apis/metrics.k8s.io/v1beta1/pods")
            one = await client.get(
                "/apis/metrics.k8s.io/v1beta1/namespaces/other/pods/elsewhere")
            node_list = await client.get("/apis/metrics.k8s.io/v1beta1/nodes")
            with pytest.raises(StatusError) as missing:
                await client.get("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/no")
            groups = await client.get("/apis")
            return found, one, node_list, missing.value, groups
        finally:
            await client.close()
    top(cluster, "pods", "-A")     # every pod has its window by now
    found, one, node_list, missing, groups = asyncio.run(main())
    assert found["kind"] == "PodMetricsList"
    assert found["apiVersion"] == "metrics.k8s.io/v1beta1"
    # every namespace: ours and the addons' (DNS, ...)
    assert {(i["metadata"]["namespace"], i["metadata"]["name"]) for i in found["items"]} >= {
        ("default", "busy"), ("default", "idle"), ("other", "elsewhere")}
    assert "kube-system" in {i["metadata"]["namespace"] for i in found["items"]}
    assert one["kind"] == "PodMetrics" and one["metadata"]["labels"] == {"app": "idle"}
    assert re.fullmatch(r"[\d.]+s", one["window"]) and one["timestamp"].endswith("Z")
    assert [c["name"] for c in one["containers"]] == ["main"]
    assert set(one["containers"][0]["usage"]) == {"cpu", "memory"}
    assert node_list["kind"] == "NodeMetricsList" and len(node_list["items"]) == 2
    assert missing.code == 404
    assert 'podmetrics.metrics.k8s.io "default/no" not found' in str(missing)
    assert "metrics.k8s.io" in [g["name"] for g in groups["groups"]]
