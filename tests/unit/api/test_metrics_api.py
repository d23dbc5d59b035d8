"""metrics.k8s.io on the API server: quantities, NodeMetrics/PodMetrics from agent summaries,
selectors, not found and verbs, discovery; the agents replaced by a fake summaries()."""
from __future__ import annotations

import asyncio

import pytest

from nanokube.api import discovery, errors as E, metrics as m
from nanokube.api.rest import parse_path


@pytest.mark.parametrize("nanocores,text", [
    (0, "0"), (1234, "1234n"), (5_000, "5u"), (974_123_000, "974123u"),
    (700_000_000, "700m"), (1_500_000_000, "1500m"), (2_000_000_000, "2")])
def test_format_cpu(nanocores, text):
    assert m.format_cpu(nanocores) == text


@pytest.mark.parametrize("n,text", [(0, "0"), (1000, "1000"), (3072, "3Ki"),
                                    (1536 * 1024, "1536Ki"), (1 << 20, "1Mi"),
                                    (5 << 30, "5Gi")])
def test_format_memory(n, text):
    assert m.format_memory(n) == text


@pytest.mark.parametrize("seconds,text", [(15, "15s"), (15.0024, "15.002s"), (2.5, "2.5s"),
                                          (60.5, "1m0.5s"), (0, "0s"), (3600, "1h0m0s")])
def test_go_duration(seconds, text):
    assert m.go_duration(seconds) == text


def node(name: str, ready: bool = True, labels: dict | None = None) -> dict:
    return {"metadata": {"name": name, "labels": labels or {}},
            "status": {"addresses": [{"type": "InternalIP", "address": "10.9.0.2"}],
                       "conditions": [{"type": "Ready",
                                       "status": "True" if ready else "False"}]}}


def pod(name: str, ns: str, uid: str, node_name: str | None = "n1",
        labels: dict | None = None) -> dict:
    return {"metadata": {"name": name, "namespace": ns, "uid": uid, "labels": labels or {}},
            "spec": {"nodeName": node_name} if node_name else {}}


def stats(nanocores: int | None, memory: int) -> dict:
    cpu = {"time": "2026-01-01T00:00:15Z", "usageCoreNanoSeconds": 9}
    if nanocores is not None:
        cpu["usageNanoCores"] = nanocores
    return {"cpu": cpu, "memory": {"time": "2026-01-01T00:00:15Z", "workingSetBytes": memory}}


def summary(pods: list[tuple[str, list[tuple[str, int | None]]]]) -> dict:
    return {"node": {"nodeName": "n1", **stats(1_200_000_000, 1 << 30)}, "window": 15.002,
            "pods": [{"podRef": {"uid": uid}, "containers": [
                {"name": c, **stats(cpu, 21 << 20)} for c, cpu in containers]}
                for uid, containers in pods]}


def test_node_metrics_object():
    got = m.node_metrics(node("n1", labels={"zone": "a"}), summary([]))
    assert got["kind"] == "NodeMetrics" and got["apiVersion"] == "metrics.k8s.io/v1beta1"
    assert got["metadata"]["name"] == "n1" and got["metadata"]["labels"] == {"zone": "a"}
    assert got["timestamp"] == "2026-01-01T00:00:15Z" and got["window"] == "15.002s"
    assert got["usage"] == {"cpu": "1200m", "memory": "1Gi"}
    assert m.node_metrics(node("n1"), {"node": stats(None, 5)}) is None   # one sample only


def test_pod_metrics_object_and_incomplete_pods():
    s = summary([("u1", [("a", 3_000_000), ("b", 0)]), ("u2", [("c", None)])])
    got = m.pod_metrics(pod("web", "default", "u1", labels={"app": "web"}), s)
    assert got["metadata"] == {"name": "web", "namespace": "default", "labels": {"app": "web"},
                               "creationTimestamp": got["metadata"]["creationTimestamp"]}
    assert got["containers"] == [{"name": "a", "usage": {"cpu": "3m", "memory": "21Mi"}},
                                 {"name": "b", "usage": {"cpu": "0", "memory": "21Mi"}}]
    assert got["window"] == "15.002s"
    assert m.pod_metrics(pod("new", "default", "u2"), s) is None        # no rate yet
    assert m.pod_metrics(pod("elsewhere", "default", "u3"), s) is None  # not on that node


class FakeStorage:
    def __init__(self, objs: list[dict]):
        self.objs = objs

    async def list(self, namespace):
        return [o for o in self.objs if namespace in (None, o["metadata"].get("namespace"))], \
            1, None, None

    async def get(self, namespace, name):
        for o in self.objs:
            if o["metadata"]["name"] == name and o["metadata"].get("namespace") == namespace:
                return o
        raise E.not_found_error("pods", "", name)


class FakeRequest:
    def __init__(self, query: dict | None = None, method: str = "GET"):
        self.query = query or {}
        self.method = method


@pytest.fixture
def api(monkeypatch):
    asked: list[list[str]] = []

    async def fake_summaries(nodes):
        asked.append(sorted(n["metadata"]["name"] for n in nodes))
        s = summary([("u1", [("main", 400_000_000)]), ("u2", [("main", 1_000_000)]),
                     ("u3", [("main", 0)])])
        return {n["metadata"]["name"]: s for n in nodes if m._ready(n)}
    monkeypatch.setattr(m, "summaries", fake_summaries)
    storages = {("", "nodes"): FakeStorage([node("n1"), node("n2", ready=False)]),
                ("", "pods"): FakeStorage([
                    pod("busy", "default", "u1", labels={"app": "busy"}),
                    pod("idle", "default", "u2", labels={"app": "idle"}),
                    pod("other", "kube-system", "u3", labels={"app": "idle"}),
                    pod("pending", "default", "u4", node_name=None)])}
    api = m.MetricsAPI(storages)
    api.asked = asked
    return api


def call(api, path: str, query: dict | None = None, method: str = "GET") -> dict:
    import json
    resp = asyncio.run(api.handle(FakeRequest(query, method), parse_path(path)))
    return json.loads(resp.body)


def names(doc: dict) -> list[str]:
    return sorted(i["metadata"]["name"] for i in doc["items"])


def test_list_pods_everywhere_in_a_namespace_and_by_selector(api):
    base = "/apis/metrics.k8s.io/v1beta1"
    got = call(api, f"{base}/pods")
    assert got["kind"] == "PodMetricsList" and names(got) == ["busy", "idle", "other"]
    assert names(call(api, f"{base}/namespaces/default/pods")) == ["busy", "idle"]
    assert names(call(api, f"{base}/pods", {"labelSelector": "app=idle"})) == ["idle", "other"]
    assert names(call(api, f"{base}/pods", {"labelSelector": "app in (busy),tier!=x"})) == \
        ["busy"]
    assert names(call(api, f"{base}/pods", {"fieldSelector": "metadata.namespace=kube-system"})) \
        == ["other"]
    with pytest.raises(E.StatusError) as err:
        call(api, f"{base}/pods", {"fieldSelector": "spec.nodeName=n1"})
    assert err.value.code == 400 and "field label not supported: spec.nodeName" in str(err.value)
    # only the nodes of the pods asked about are asked
    assert api.asked[-2] == ["n1"]


def test_get_pod_and_not_found(api):
    got = call(api, "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/busy")
    assert got["kind"] == "PodMetrics"
    assert got["containers"] == [{"name": "main", "usage": {"cpu": "400m", "memory": "21Mi"}}]
    for name in ("nosuch", "pending"):     # no pod; a pod with no node yet
        with pytest.raises(E.StatusError) as err:
            call(api, f"/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/{name}")
        assert err.value.code == 404
        assert f'podmetrics.metrics.k8s.io "default/{name}" not found' in str(err.value)


def test_nodes_leave_out_those_without_metrics(api):
    got = call(api, "/apis/metrics.k8s.io/v1beta1/nodes")
    assert got["kind"] == "NodeMetricsList" and names(got) == ["n1"]   # n2 is not Ready
    assert call(api, "/apis/metrics.k8s.io/v1beta1/nodes/n1")["usage"]["cpu"] == "1200m"
    for name in ("n2", "n3"):
        with pytest.raises(E.StatusError) as err:
            call(api, f"/apis/metrics.k8s.io/v1beta1/nodes/{name}")
        assert err.value.code == 404
        assert f'nodemetrics.metrics.k8s.io "{name}" not found' in str(err.value)


def test_only_get_and_list(api):
    with pytest.raises(E.StatusError) as err:
        call(api, "/apis/metrics.k8s.io/v1beta1/pods", method="POST")
    assert err.value.code == 405
    with pytest.raises(E.StatusError) as err:
        call(api, "/apis/metrics.k8s.io/v1beta1/pods", {"watch": "true"})
    assert err.value.code == 405
    with pytest.raises(E.StatusError) as err:
        call(api, "/apis/metrics.k8s.io/v1beta1/containers")
    assert err.value.code == 404


def test_discovery_lists_the_group():
    from nanokube.registry import default_registry
    from nanokube.registry.base import ServerConfig
    reg = default_registry(ServerConfig())
    legacy = discovery.legacy_groups(reg)
    group = next(g for g in legacy["groups"] if g["name"] == "metrics.k8s.io")
    assert group["preferredVersion"] == {"groupVersion": "metrics.k8s.io/v1beta1",
                                         "version": "v1beta1"}
    agg = discovery.aggregated(reg, core=False)
    item = next(i for i in agg["items"] if i["metadata"]["name"] == "metrics.k8s.io")
    resources = {r["resource"]: r for r in item["versions"][0]["resources"]}
    assert resources["pods"]["scope"] == "Namespaced" and resources["nodes"]["scope"] == \
        "Cluster"
    assert resources["pods"]["verbs"] == ["get", "list"]
    assert "metrics.k8s.io" not in [i["metadata"]["name"]
                                    for i in discovery.aggregated(reg, core=True)["items"]]
    doc = discovery.resource_list(reg, "metrics.k8s.io", "v1beta1")
    assert {r["name"]: r["kind"] for r in doc["resources"]} == {"nodes": "NodeMetrics",
                                                                "pods": "PodMetrics"}
