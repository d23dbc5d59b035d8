"""A Service without a selector plus a hand-written Endpoints (the "Services without selectors"
example of the Kubernetes docs) on a real cluster with real kubectl: the EndpointSliceMirroring
controller mirrors the Endpoints into an EndpointSlice, so the proxier sends the Service's
traffic to the listed pods; editing the Endpoints moves the traffic, deleting it refuses it; the
Endpoints of a selector Service carry skip-mirror and get no mirrored slice."""
from __future__ import annotations

import json
import os
import time

import pytest

from harness import ClusterRun, cluster_up, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")

AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.47"
MIRROR = "endpointslicemirroring-controller.k8s.io"
BACKEND = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "backend"},
           "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "backend"}},
                    "template": {"metadata": {"labels": {"app": "backend"}},
                                 "spec": {"terminationGracePeriodSeconds": 0, "containers": [
                                     {"name": "netexec", "image": AGNHOST,
                                      "args": ["netexec", "--http-port=8080",
                                               "--udp-port=-1"]}]}}}}
CLIENT = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client"},
          "spec": {"terminationGracePeriodSeconds": 0,
                   "containers": [{"name": "c", "image": AGNHOST, "args": ["pause"]}]}}
MANUAL = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "manual"},
          "spec": {"ports": [{"protocol": "TCP", "port": 80, "targetPort": 8080}]}}


def manual_endpoints(ips: list[str]) -> dict:
    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "manual", "labels": {"team": "net"}},
            "subsets": [{"addresses": [{"ip": ip} for ip in ips], "ports": [{"port": 8080}]}]}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with cluster_up(tmp_path_factory.mktemp("mirror"), "m") as c:
        yield c


def apply(c: ClusterRun, obj: dict) -> None:
    c.kubectl("apply", "-f", "-", input=json.dumps(obj))


def slices(c: ClusterRun, service: str) -> list[dict]:
    return c.get("endpointslices", "-l", f"kubernetes.io/service-name={service}")["items"]


def fetch(c: ClusterRun, host: str):
    return c.kubectl("exec", "client", "--", "wget", "-qO-", "-T", "3",
                     f"http://{host}/hostname", check=False)


def test_selectorless_service_with_manual_endpoints(cluster):
    c = cluster
    apply(c, BACKEND)
    apply(c, CLIENT)
    apply(c, MANUAL)
    c.kubectl("rollout", "status", "deploy/backend", "--timeout=60s")
    c.kubectl("wait", "--for=condition=Ready", "pod/client", "--timeout=30s")
    out = c.kubectl("get", "pods", "-l", "app=backend", "-o",
                    "jsonpath={range .items[*]}{.metadata.name} {.status.podIP}{\"\\n\"}{end}")
    pod_ip = dict(line.split() for line in out.stdout.strip().splitlines())
    assert len(pod_ip) == 2
    apply(c, manual_endpoints(sorted(pod_ip.values())))

    # the mirrored slice: one, labelled and owned as the controller makes it
    [sl] = wait_for("the mirrored slice", lambda: slices(c, "manual"), timeout=15)
    meta = sl["metadata"]
    assert meta["name"].startswith("manual-")
    assert meta["labels"] == {"kubernetes.io/service-name": "manual", "team": "net",
                              "endpointslice.kubernetes.io/managed-by": MIRROR}
    ep_uid = c.get("endpoints", "manual")["metadata"]["uid"]
    assert [(r["kind"], r["name"], r["uid"]) for r in meta["ownerReferences"]] == \
        [("Endpoints", "manual", ep_uid)]
    assert sl["addressType"] == "IPv4"
    assert sorted(e["addresses"][0] for e in sl["endpoints"]) == sorted(pod_ip.values())
    assert all(e["conditions"]["ready"] for e in sl["endpoints"])
    assert [(p["port"], p["protocol"]) for p in sl["ports"]] == [(8080, "TCP")]
    table = c.kubectl("get", "endpointslices", "-l", "kubernetes.io/service-name=manual",
                      "-L", "endpointslice.kubernetes.io/managed-by").stdout.splitlines()
    assert table[0].split()[-1] == "MANAGED-BY" and table[1].split()[0] == meta["name"]
    assert table[1].split()[-1] == MIRROR and len(table) == 2

    # traffic to the Service (by name and by ClusterIP) reaches both listed pods
    seen: set[str] = set()

    def both_answer():
        out = fetch(c, "manual")
        if out.returncode == 0:
            seen.add(out.stdout.strip())
        return seen == set(pod_ip)
    wait_for("both pods answering", both_answer, timeout=30)
    cluster_ip = c.get("svc", "manual")["spec"]["clusterIP"]
    out = fetch(c, cluster_ip)
    assert out.returncode == 0 and out.stdout.strip() in pod_ip

    # the Endpoints edited to one address: only that pod answers
    only = sorted(pod_ip)[0]
    apply(c, manual_endpoints([pod_ip[only]]))
    wait_for("the slice with one address", lambda: [
        e["addresses"] for s in slices(c, "manual") for e in s["endpoints"]] ==
        [[pod_ip[only]]], timeout=15)
    assert [s["metadata"]["name"] for s in slices(c, "manual")] == [meta["name"]]  # updated
    time.sleep(0.5)           # the proxier has applied the slice
    answers = {fetch(c, "manual").stdout.strip() for _ in range(4)}
    assert answers == {only}

    # the Endpoints deleted: the slice goes and the Service refuses
    c.kubectl("delete", "endpoints", "manual")
    wait_for("no mirrored slice", lambda: not slices(c, "manual"), timeout=15)
    wait_for("connection refused", lambda: fetch(c, cluster_ip).returncode != 0, timeout=10)
    c.kubectl("delete", "svc", "manual")


def test_selector_service_endpoints_are_not_mirrored(cluster):
    c = cluster
    apply(c, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "auto"},
              "spec": {"selector": {"app": "backend"}, "ports": [{"port": 80,
                                                                   "targetPort": 8080}]}})
    ep = wait_for("the controller's Endpoints", lambda: (
        c.kubectl("get", "endpoints", "auto", "-o", "json", check=False).stdout or None),
        timeout=15)
    labels = json.loads(ep)["metadata"]["labels"]
    assert labels["endpointslice.kubernetes.io/skip-mirror"] == "true"
    wait_for("the EndpointSlice controller's slice", lambda: slices(c, "auto"), timeout=15)
    time.sleep(1.0)            # a mirrored slice would have appeared by now
    found = slices(c, "auto")
    assert [s["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] for s in found] \
        == ["endpointslice-controller.k8s.io"]
    c.kubectl("delete", "svc", "auto")
    c.kubectl("delete", "deploy", "backend", "--wait=false")
    c.kubectl("delete", "pod", "client", "--wait=false")
