"""Scheduler filters, scoring and messages."""
from __future__ import annotations

from nanokube.controllers.scheduler import choose_node, node_selector_matches, tolerates


def node(name, ready=True, taints=None, labels=None, unschedulable=False):
    return {"metadata": {"name": name, "labels": labels or {}},
            "spec": {"taints": taints or [], "unschedulable": unschedulable},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def pod(owner="rs-1", **spec):
    meta = {"name": "p", "namespace": "default"}
    if owner:
        meta["ownerReferences"] = [{"kind": "ReplicaSet", "uid": owner, "controller": True}]
    return {"metadata": meta, "spec": {"containers": [{"name": "c"}], **spec}}


def test_tolerations():
    taint = {"key": "k", "value": "v", "effect": "NoSchedule"}
    assert tolerates({"key": "k", "value": "v"}, taint)
    assert tolerates({"key": "k", "operator": "Exists", "effect": "NoSchedule"}, taint)
    assert tolerates({"operator": "Exists"}, taint)
    assert not tolerates({"key": "k", "value": "x"}, taint)
    assert not tolerates({"key": "k", "operator": "Exists", "effect": "NoExecute"}, taint)


def test_spread_by_owner_then_by_pod_count_then_name():
    nodes = [node("n1"), node("n2"), node("n3")]
    placed = [("n1", "rs-1"), ("n2", "other"), ("n2", "other")]
    assert choose_node(pod(), nodes, placed) == ("n3", "")
    placed.append(("n3", "rs-1"))
    assert choose_node(pod(), nodes, placed)[0] == "n2"      # fewest of rs-1
    assert choose_node(pod(owner=None), nodes, [])[0] == "n1"


def test_filters_and_unschedulable_message():
    nodes = [node("a", taints=[{"key": "node.kubernetes.io/unreachable",
                                "effect": "NoSchedule"}]),
             node("b", labels={"disk": "hdd"}), node("c", unschedulable=True),
             node("d", ready=False)]
    name, message = choose_node(pod(nodeSelector={"disk": "ssd"}), nodes, [])
    assert name is None
    assert message == (
        "0/4 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
        "1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, "
        "1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }, "
        "1 node(s) were unschedulable. preemption: 0/4 nodes are available: "
        "4 Preemption is not helpful for scheduling.")
    assert choose_node(pod(), [], []) == (None, "no nodes available to schedule pods")


def test_tolerated_taint_and_prefer_no_schedule_are_fine():
    nodes = [node("a", taints=[{"key": "dedicated", "value": "x", "effect": "NoSchedule"},
                               {"key": "soft", "effect": "PreferNoSchedule"}])]
    tolerant = pod(tolerations=[{"key": "dedicated", "operator": "Equal", "value": "x"}])
    assert choose_node(tolerant, nodes, [])[0] == "a"


def test_required_node_affinity():
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "zone", "operator": "In", "values": ["z1", "z2"]},
            {"key": "gpu", "operator": "DoesNotExist"}]}]}}}
    p = pod(affinity=affinity)
    assert node_selector_matches(p, node("a", labels={"zone": "z1"}))
    assert not node_selector_matches(p, node("a", labels={"zone": "z3"}))
    assert not node_selector_matches(p, node("a", labels={"zone": "z1", "gpu": "1"}))
