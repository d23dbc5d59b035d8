"""Events as a Kubernetes user sees them: `kubectl describe` of a pod, deployment, replicaset
and node, and `kubectl get events`, from the scheduler, the controllers and the node agent
(kubelet); plus `kubectl auth can-i`."""
from __future__ import annotations

import os
import re

import pytest
import yaml

from harness import ClusterRun, leftovers, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")

AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.47"


def pod_spec(**extra) -> dict:
    return {"terminationGracePeriodSeconds": 1, **extra}


def manifests() -> str:
    web = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
           "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod_spec(
                        containers=[{"name": "web", "image": AGNHOST,
                                     "args": ["netexec", "--http-port=8080", "--udp-port=-1"]}])}}}
    unready = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "unready"},
               "spec": pod_spec(containers=[{
                   "name": "main", "image": AGNHOST, "args": ["pause"],
                   "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080},
                                      "periodSeconds": 1}}])}
    nowhere = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nowhere"},
               "spec": pod_spec(nodeSelector={"disktype": "ssd"},
                                containers=[{"name": "main", "image": AGNHOST,
                                             "args": ["pause"]}])}
    return "---\n".join(yaml.safe_dump(m) for m in (web, unready, nowhere))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = ClusterRun(tmp_path_factory.mktemp("events"), prefix="ev")
    try:
        c.nk("up", timeout=60)
        c.kubectl("apply", "-f", "-", input=manifests())
        c.kubectl("rollout", "status", "deployment/web", "--timeout=40s")
        yield c
    finally:
        c.nk("down", check=False)
    assert leftovers(c.name) == []


def events_section(text: str) -> list[list[str]]:
    """The rows of describe's Events table, split on runs of 2+ spaces."""
    lines = text.split("Events:", 1)[1].strip().splitlines()
    assert lines[0].split() == ["Type", "Reason", "Age", "From", "Message"], lines
    return [re.split(r"\s{2,}", line.strip()) for line in lines[2:]]


def rows_by_reason(rows: list[list[str]]) -> dict[str, list[str]]:
    return {row[1]: row for row in rows}


def test_describe_pod_shows_scheduler_and_kubelet_events(cluster):
    pod = cluster.get("pods", "-l", "app=web")["items"][0]
    name, node = pod["metadata"]["name"], pod["spec"]["nodeName"]
    rows = rows_by_reason(events_section(cluster.kubectl("describe", "pod", name).stdout))
    assert rows["Scheduled"][0] == "Normal" and rows["Scheduled"][3] == "default-scheduler"
    assert rows["Scheduled"][4] == f"Successfully assigned default/{name} to {node}"
    assert rows["Pulled"][3:] == ["kubelet", f'Container image "{AGNHOST}" already present on '
                                             "machine"]
    assert rows["Created"][3:] == ["kubelet", "Created container: web"]
    assert rows["Started"][3:] == ["kubelet", "Started container web"]
    # the kubelet's Events name the container and the node
    events = cluster.get("events", "--field-selector", f"involvedObject.name={name},"
                         "reason=Started")["items"]
    assert events[0]["involvedObject"]["fieldPath"] == "spec.containers{web}"
    assert events[0]["source"] == {"component": "kubelet", "host": node}


def test_describe_deployment_and_replicaset(cluster):
    rs = cluster.get("replicasets", "-l", "app=web")["items"][0]["metadata"]["name"]
    rows = events_section(cluster.kubectl("describe", "deployment", "web").stdout)
    assert ["Normal", "ScalingReplicaSet"] == rows[0][:2]
    assert rows[0][3:] == ["deployment-controller", f"Scaled up replica set {rs} from 0 to 2"]
    rows = events_section(cluster.kubectl("describe", "replicaset", rs).stdout)
    pods = {p["metadata"]["name"] for p in cluster.get("pods", "-l", "app=web")["items"]}
    assert {(r[1], r[3], r[4]) for r in rows} == {
        ("SuccessfulCreate", "replicaset-controller", f"Created pod: {p}") for p in pods}


def test_get_events_lists_them_with_kubectl_columns(cluster):
    out = cluster.kubectl("get", "events").stdout.splitlines()
    assert out[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    text = "\n".join(out)
    for reason, obj in (("ScalingReplicaSet", "deployment/web"), ("Scheduled", "pod/web-"),
                        ("Started", "pod/web-"), ("Starting", "node/node-1"),
                        ("RegisteredNode", "node/node-2")):
        assert re.search(rf"\b{reason}\s+{re.escape(obj)}", text), (reason, text)
    wide = cluster.kubectl("get", "events", "-o", "wide").stdout.splitlines()[0].split()
    assert wide == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "SUBOBJECT", "SOURCE",
                    "MESSAGE", "FIRST", "SEEN", "COUNT", "NAME"]


def describe_row(cluster, pod: str, reason: str) -> list[str]:
    """The row of `reason` in the pod's describe Events, once there is one."""
    def row():
        rows = events_section(cluster.kubectl("describe", "pod", pod).stdout)
        return next((r for r in rows if r[1] == reason), None)
    return wait_for(f"a {reason} event of {pod}", row, timeout=20, interval=0.5)


def test_failing_readiness_probe_is_unhealthy(cluster):
    row = describe_row(cluster, "unready", "Unhealthy")
    assert row[0] == "Warning" and row[3] == "kubelet"
    assert re.fullmatch(r'Readiness probe failed: Get "http://[\d.]+:8080/healthz": dial tcp '
                        r"[\d.]+:8080: connect: connection refused", row[4]), row


def test_unschedulable_pod_is_failed_scheduling(cluster):
    row = describe_row(cluster, "nowhere", "FailedScheduling")
    assert row[0] == "Warning" and row[3] == "default-scheduler"
    assert row[4] == ("0/2 nodes are available: 2 node(s) didn't match Pod's node "
                      "affinity/selector. preemption: 0/2 nodes are available: 2 Preemption "
                      "is not helpful for scheduling.")


def test_describe_node_and_node_events_in_default(cluster):
    rows = events_section(cluster.kubectl("describe", "node", "node-1").stdout)
    got = {(r[1], r[3], r[4]) for r in rows}
    assert ("Starting", "kubelet", "Starting kubelet.") in got
    assert ("NodeReady", "kubelet", "Node node-1 status is now: NodeReady") in got
    assert ("RegisteredNode", "node-controller",
            "Node node-1 event: Registered Node node-1 in Controller") in got
    events = cluster.get("events", "-A", "--field-selector", "involvedObject.kind=Node")["items"]
    assert events and {e["metadata"]["namespace"] for e in events} == {"default"}


def test_auth_can_i(cluster):
    assert cluster.kubectl("auth", "can-i", "create", "pods").stdout == "yes\n"
    listing = cluster.kubectl("auth", "can-i", "--list").stdout.splitlines()
    assert listing[1].split() == ["*.*", "[]", "[]", "[*]"]
