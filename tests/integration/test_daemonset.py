"""A DaemonSet on a real two-node cluster: one Ready pod per node, `kubectl rollout status`,
`kubectl get ds` columns, a nodeSelector, a rolling update node by node, cascading deletion.
Real kubectl throughout."""
from __future__ import annotations

import json
import os

import pytest

from harness import ClusterRun, cluster_up, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")

AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.47"


def daemonset(name: str, node_selector: dict | None = None) -> dict:
    spec = {"terminationGracePeriodSeconds": 0,
            "containers": [{"name": "netexec", "image": AGNHOST,
                            "args": ["netexec", "--http-port=8080"],
                            "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080},
                                               "periodSeconds": 1}}]}
    if node_selector:
        spec["nodeSelector"] = node_selector
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with cluster_up(tmp_path_factory.mktemp("ds"), "ds", nodes=2, timeout=90) as c:
        yield c


def pods(c: ClusterRun, app: str) -> list[dict]:
    return c.get("pods", "-l", f"app={app}")["items"]


def test_daemonset_one_pod_per_node_update_and_delete(cluster):
    c = cluster
    c.kubectl("apply", "-f", "-", input=json.dumps(daemonset("agent")))
    out = c.kubectl("rollout", "status", "ds/agent", "--timeout=60s")
    assert out.stdout.strip().endswith('daemon set "agent" successfully rolled out')
    got = pods(c, "agent")
    assert sorted(p["spec"]["nodeName"] for p in got) == ["node-1", "node-2"]
    for pod in got:
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet"
        assert any(t["key"] == "node.kubernetes.io/not-ready" for t in pod["spec"]["tolerations"])
    table = c.kubectl("get", "ds", "agent").stdout.split("\n")
    assert table[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE",
                                "AVAILABLE", "NODE", "SELECTOR", "AGE"]
    assert table[1].split()[:7] == ["agent", "2", "2", "2", "2", "2", "<none>"]
    wide = c.kubectl("get", "ds", "agent", "-o", "wide").stdout.split("\n")
    assert wide[0].split()[-3:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    assert wide[1].split()[-3:] == ["netexec", AGNHOST, "app=agent"]
    events = c.get("events", "--field-selector", "involvedObject.kind=DaemonSet")["items"]
    created = sorted(e["message"] for e in events if e["reason"] == "SuccessfulCreate")
    assert created == sorted(f"Created pod: {p['metadata']['name']}" for p in got)

    # updating the template replaces the pods, one node at a time (maxUnavailable 1)
    old_names = {p["metadata"]["name"] for p in got}
    c.kubectl("set", "env", "ds/agent", "WAVE=2")
    out = c.kubectl("rollout", "status", "ds/agent", "--timeout=60s")
    assert 'daemon set "agent" successfully rolled out' in out.stdout
    updated = [p for p in pods(c, "agent") if not p["metadata"].get("deletionTimestamp")]
    assert sorted(p["spec"]["nodeName"] for p in updated) == ["node-1", "node-2"]
    assert not old_names & {p["metadata"]["name"] for p in updated}
    assert all(p["spec"]["containers"][0]["env"] == [{"name": "WAVE", "value": "2"}]
               for p in updated)
    hashes = {p["metadata"]["labels"]["controller-revision-hash"] for p in updated}
    assert len(hashes) == 1
    revisions = c.get("controllerrevisions")["items"]
    assert {r["metadata"]["name"] for r in revisions} >= {f"agent-{h}" for h in hashes}
    # one node at a time: the second new pod was made after the first was Ready
    first, second = sorted(updated, key=lambda p: p["metadata"]["creationTimestamp"])
    ready_at = [cond["lastTransitionTime"] for cond in first["status"]["conditions"]
                if cond["type"] == "Ready"][0]
    assert second["metadata"]["creationTimestamp"] >= ready_at

    # deleting the DaemonSet removes its pods
    c.kubectl("delete", "ds", "agent", "--wait=true", "--timeout=60s")
    wait_for("agent pods gone", lambda: pods(c, "agent") == [], timeout=30)


def test_node_selector_picks_one_node(cluster):
    c = cluster
    c.kubectl("label", "node", "node-1", "edge=true", "--overwrite")
    c.kubectl("apply", "-f", "-", input=json.dumps(daemonset("edge", {"edge": "true"})))
    out = c.kubectl("rollout", "status", "ds/edge", "--timeout=60s")
    assert 'daemon set "edge" successfully rolled out' in out.stdout
    got = pods(c, "edge")
    assert [p["spec"]["nodeName"] for p in got] == ["node-1"]
    row = c.kubectl("get", "ds", "edge").stdout.split("\n")[1].split()
    assert row[:7] == ["edge", "1", "1", "1", "1", "1", "edge=true"]
    # the label taken away: the pod is misscheduled and goes
    c.kubectl("label", "node", "node-1", "edge-")
    wait_for("edge pod gone", lambda: all(p["metadata"].get("deletionTimestamp")
                                          for p in pods(c, "edge")), timeout=30)
    status = c.get("ds", "edge")["status"]
    assert status["desiredNumberScheduled"] == 0
    c.kubectl("delete", "ds", "edge")
