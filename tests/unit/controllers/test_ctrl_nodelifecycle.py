"""Node lifecycle decisions."""
from __future__ import annotations

from nanokube.controllers.nodelifecycle import (last_heartbeat, unknown_conditions,
                                                wanted_taints)


def node(ready="True", taints=None):
    return {"metadata": {"name": "n", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"taints": taints or []},
            "status": {"conditions": [
                {"type": "Ready", "status": ready, "reason": "KubeletReady",
                 "lastHeartbeatTime": "2024-01-01T00:00:10Z"},
                {"type": "MemoryPressure", "status": "False"},
                {"type": "NetworkUnavailable", "status": "False"}]}}


def test_heartbeat_is_the_latest_sign_of_life():
    lease = {"spec": {"renewTime": "2024-01-01T00:00:20.500000Z"}}
    assert last_heartbeat(node(), lease) == 1704067220.5
    assert last_heartbeat(node(), None) == 1704067210.0


def test_conditions_turn_unknown_once():
    conds = unknown_conditions(node(), "2024-01-01T00:01:00Z")
    by_type = {c["type"]: c for c in conds}
    assert by_type["Ready"]["status"] == "Unknown"
    assert by_type["Ready"]["reason"] == "NodeStatusUnknown"
    assert by_type["Ready"]["message"] == "Kubelet stopped posting node status."
    assert by_type["MemoryPressure"]["status"] == "Unknown"
    assert by_type["NetworkUnavailable"]["status"] == "False"      # not the kubelet's
    already = node()
    already["status"]["conditions"] = conds
    assert unknown_conditions(already, "x") is None


def test_taints_follow_the_state():
    other = {"key": "dedicated", "effect": "NoSchedule"}
    stale = wanted_taints(node(taints=[other]), stale=True)
    assert sorted((t["key"], t["effect"]) for t in stale) == [
        ("dedicated", "NoSchedule"), ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoSchedule")]
    assert all("timeAdded" in t for t in stale if t["effect"] == "NoExecute"
               and t["key"] != "dedicated")
    assert wanted_taints(node(taints=stale), stale=False) == [other]
    not_ready = wanted_taints(node(ready="False"), stale=False)
    assert {t["key"] for t in not_ready} == {"node.kubernetes.io/not-ready"}
    # renewed lease but the agent has not said Ready yet: keep the taints
    assert wanted_taints(node(ready="Unknown", taints=stale), stale=False) == stale
