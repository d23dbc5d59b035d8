"""ReplicaSet controller logic."""
from __future__ import annotations

from nanokube.controllers.replicaset import (Expectations, new_pod, pods_to_delete,
                                             replica_set_status)

RS = {"metadata": {"name": "web-abc", "namespace": "default", "uid": "rs-uid",
                   "generation": 4},
      "spec": {"replicas": 3, "minReadySeconds": 10,
               "template": {"metadata": {"labels": {"app": "web"}, "annotations": {"a": "1"}},
                            "spec": {"containers": [{"name": "c", "image": "x"}]}}}}


def pod(name, node="n1", ready=True, created="2024-01-01T00:00:00Z",
        ready_since="2024-01-01T00:00:00Z", labels=None, phase="Running"):
    return {"metadata": {"name": name, "creationTimestamp": created,
                         "labels": {"app": "web"} if labels is None else labels},
            "spec": {"nodeName": node},
            "status": {"phase": phase, "conditions": [
                {"type": "Ready", "status": "True" if ready else "False",
                 "lastTransitionTime": ready_since}]}}


def test_deletion_prefers_unscheduled_then_not_ready_then_newest():
    pods = [pod("old-ready"), pod("new-ready", created="2024-01-02T00:00:00Z",
                                  ready_since="2024-01-02T00:00:00Z"),
            pod("not-ready", ready=False), pod("unscheduled", node=None, phase="Pending",
                                               ready=False)]
    order = [p["metadata"]["name"] for p in pods_to_delete(pods, 4)]
    assert order == ["unscheduled", "not-ready", "new-ready", "old-ready"]
    assert [p["metadata"]["name"] for p in pods_to_delete(pods, 1)] == ["unscheduled"]


def test_status_counts_and_min_ready_seconds():
    now = 1704067200.0 + 5          # 5 s after 2024-01-01T00:00:00Z
    pods = [pod("a"), pod("b", ready_since="2023-12-31T23:00:00Z"), pod("c", ready=False),
            pod("d", labels={})]
    status = replica_set_status(RS, pods, now)
    assert status == {"replicas": 4, "fullyLabeledReplicas": 3, "readyReplicas": 3,
                      "availableReplicas": 1, "observedGeneration": 4}
    assert replica_set_status(RS, [], now) == {"replicas": 0, "observedGeneration": 4}


def test_new_pod():
    p = new_pod(RS)
    assert p["metadata"]["generateName"] == "web-abc-"
    assert p["metadata"]["labels"] == {"app": "web"}
    assert p["metadata"]["annotations"] == {"a": "1"}
    assert p["metadata"]["ownerReferences"] == [{
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc", "uid": "rs-uid",
        "controller": True, "blockOwnerDeletion": True}]
    assert p["spec"] == RS["spec"]["template"]["spec"]
    assert p["spec"] is not RS["spec"]["template"]["spec"]


def test_expectations():
    clock = [0.0]
    e = Expectations(ttl=60, clock=lambda: clock[0])
    assert e.satisfied("k")
    e.expect("k", adds=2)
    assert not e.satisfied("k")
    e.creation_observed("k")
    assert not e.satisfied("k")
    e.creation_observed("k")
    assert e.satisfied("k")
    e.expect("k", dels=1)
    assert not e.satisfied("k")
    clock[0] = 61                   # a lost event does not block the controller forever
    assert e.satisfied("k")
    e.creation_observed("unknown")  # observing without expectations is harmless
