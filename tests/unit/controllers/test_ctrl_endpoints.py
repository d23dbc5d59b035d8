"""Endpoints (core/v1) subsets."""
from __future__ import annotations

from nanokube.controllers.endpoints import endpoint_subsets, endpoints_labels

SERVICE = {"metadata": {"name": "web", "namespace": "default", "labels": {"a": "b"}},
           "spec": {"selector": {"app": "web"}, "clusterIP": "None",
                    "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}


def pod(name, ip, ready=True, deleting=False, port=8080):
    p = {"metadata": {"name": name, "namespace": "default", "uid": name},
         "spec": {"nodeName": "node-1",
                  "containers": [{"name": "c", "ports": [{"name": "http",
                                                          "containerPort": port}]}]},
         "status": {"phase": "Running", "podIP": ip,
                    "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}
    if deleting:
        p["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return p


def test_ready_and_not_ready_addresses_share_a_subset_by_ports():
    subsets = endpoint_subsets(SERVICE, [pod("b", "10.0.0.2"), pod("a", "10.0.0.1"),
                                         pod("c", "10.0.0.3", ready=False),
                                         pod("d", "10.0.0.4", deleting=True)])
    assert len(subsets) == 1
    s = subsets[0]
    assert [a["ip"] for a in s["addresses"]] == ["10.0.0.1", "10.0.0.2"]
    assert [a["ip"] for a in s["notReadyAddresses"]] == ["10.0.0.3"]
    assert s["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    assert s["addresses"][0]["targetRef"] == {"kind": "Pod", "namespace": "default",
                                              "name": "a", "uid": "a"}
    assert s["addresses"][0]["nodeName"] == "node-1"


def test_different_ports_make_different_subsets_and_publish_not_ready():
    svc = {**SERVICE, "spec": {**SERVICE["spec"], "publishNotReadyAddresses": True}}
    subsets = endpoint_subsets(svc, [pod("a", "10.0.0.1", ready=False),
                                     pod("b", "10.0.0.2", port=9090)])
    assert len(subsets) == 2
    assert all("notReadyAddresses" not in s for s in subsets)


def test_no_pods_no_subsets_and_headless_label():
    assert endpoint_subsets(SERVICE, []) == []
    assert endpoints_labels(SERVICE) == {"a": "b", "service.kubernetes.io/headless": "",
                                         "endpointslice.kubernetes.io/skip-mirror": "true"}
