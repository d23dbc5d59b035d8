"""The DaemonSet controller's decisions against fake state: one pod per matching node,
nodeSelector, nodes that go away, misscheduled pods, the rolling update node by node."""
from __future__ import annotations

from nanokube.controllers.daemonset import (DEFAULT_TOLERATIONS, new_pod, plan, should_run,
                                           target_node)
from nanokube.controllers.scheduler import choose_node
from nanokube.controllers.statefulset import REVISION_LABEL
from nanokube.registry.daemonset import DaemonSetStrategy, default_daemonset
from nanokube.registry.base import ServerConfig

NOW = 1704067200.0      # 2024-01-01T00:00:00Z


def daemonset(node_selector=None, **strategy):
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet",
          "metadata": {"name": "agent", "namespace": "default", "uid": "ds-uid",
                       "generation": 3},
          "spec": {"selector": {"matchLabels": {"app": "agent"}},
                   "template": {"metadata": {"labels": {"app": "agent"}},
                                "spec": {"containers": [{"name": "c", "image": "agnhost"}]}}}}
    if node_selector:
        ds["spec"]["template"]["spec"]["nodeSelector"] = node_selector
    if strategy:
        ds["spec"]["updateStrategy"] = {"type": "RollingUpdate", "rollingUpdate": strategy}
    default_daemonset(ds)
    return ds


def node(name, ready=True, taints=None, **labels):
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **labels}},
            "spec": {"taints": taints or []},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def running(ds, node_name, revision="h1", ready=True, phase="Running", name=None,
            terminating=False, created="2023-12-31T00:00:00Z"):
    pod = new_pod(ds, node_name, revision)
    pod["metadata"].update(name=name or f"agent-{node_name}-{revision}", uid=f"uid-{name}",
                           creationTimestamp=created)
    pod["spec"]["nodeName"] = node_name
    pod["status"] = {"phase": phase, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False",
         "lastTransitionTime": "2023-12-31T00:00:00Z"}]}
    if terminating:
        pod["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return pod


def verbs(p):
    return [(a.verb, a.node, a.pod.get("metadata", {}).get("name")) for a in p.actions]


NODES = [node("node-0"), node("node-1", role="edge")]


def test_one_pod_per_node():
    ds = daemonset()
    got = plan(ds, NODES, [], "h1", NOW)
    assert verbs(got) == [("create", "node-0", None), ("create", "node-1", None)]
    assert got.status == {"observedGeneration": 3, "desiredNumberScheduled": 2,
                          "currentNumberScheduled": 0, "numberMisscheduled": 0,
                          "numberReady": 0, "numberUnavailable": 2}
    pods = [running(ds, "node-0"), running(ds, "node-1")]
    done = plan(ds, NODES, pods, "h1", NOW)
    assert done.actions == []
    assert done.status["currentNumberScheduled"] == done.status["numberReady"] == 2
    assert done.status["updatedNumberScheduled"] == done.status["numberAvailable"] == 2
    assert "numberUnavailable" not in done.status


def test_the_pod_is_pinned_to_its_node_and_tolerates_the_defaults():
    ds = daemonset()
    ds["spec"]["template"]["spec"]["hostNetwork"] = True
    pod = new_pod(ds, "node-1", "h1")
    assert pod["metadata"]["generateName"] == "agent-"
    assert pod["metadata"]["labels"] == {"app": "agent", REVISION_LABEL: "h1"}
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet"
    assert target_node(pod) == "node-1"
    keys = {(t["key"], t["effect"]) for t in pod["spec"]["tolerations"]}
    assert {(t["key"], t["effect"]) for t in DEFAULT_TOLERATIONS} <= keys
    assert ("node.kubernetes.io/network-unavailable", "NoSchedule") in keys
    # the scheduler honours the matchFields affinity: only node-1 fits
    assert choose_node(pod, NODES, []) == ("node-1", "")


def test_node_selector():
    ds = daemonset({"role": "edge"})
    got = plan(ds, NODES, [], "h1", NOW)
    assert verbs(got) == [("create", "node-1", None)]
    assert got.status["desiredNumberScheduled"] == 1


def test_taints_are_respected_and_default_tolerations_apply():
    ds = daemonset()
    tainted = node("node-2", taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}])
    not_ready = node("node-3", ready=False,
                     taints=[{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}])
    assert should_run(ds, tainted) == (False, True)
    assert should_run(ds, not_ready) == (True, True)


def test_a_new_node_gets_a_pod():
    ds = daemonset()
    pods = [running(ds, "node-0"), running(ds, "node-1")]
    got = plan(ds, NODES + [node("node-2")], pods, "h1", NOW)
    assert verbs(got) == [("create", "node-2", None)]


def test_a_node_that_goes_away_loses_its_pod():
    ds = daemonset()
    pods = [running(ds, "node-0", name="a"), running(ds, "node-1", name="b")]
    got = plan(ds, NODES[:1], pods, "h1", NOW)
    assert verbs(got) == [("delete", "node-1", "b")]
    assert got.status["desiredNumberScheduled"] == 1


def test_misscheduled_pod_is_deleted():
    ds = daemonset({"role": "edge"})
    pods = [running(ds, "node-0", name="a"), running(ds, "node-1", name="b")]
    got = plan(ds, NODES, pods, "h1", NOW)
    assert verbs(got) == [("delete", "node-0", "a")]
    assert got.status["numberMisscheduled"] == 1
    assert got.status["desiredNumberScheduled"] == 1


def test_failed_pod_is_deleted_and_a_second_pod_removed():
    ds = daemonset()
    pods = [running(ds, "node-0", name="a", phase="Failed", ready=False),
            running(ds, "node-1", name="b"),
            running(ds, "node-1", name="c", created="2023-12-31T01:00:00Z")]
    assert verbs(plan(ds, NODES, pods, "h1", NOW)) == [("delete", "node-0", "a"),
                                                       ("delete", "node-1", "c")]


def test_a_terminating_pod_is_waited_for():
    ds = daemonset()
    pods = [running(ds, "node-0", terminating=True), running(ds, "node-1")]
    assert plan(ds, NODES, pods, "h1", NOW).actions == []


def test_rolling_update_one_node_at_a_time():
    ds = daemonset()
    old = [running(ds, "node-0", "h1", name="a"), running(ds, "node-1", "h1", name="b")]
    got = plan(ds, NODES, old, "h2", NOW)
    assert verbs(got) == [("delete", "node-0", "a")]
    assert got.status.get("updatedNumberScheduled", 0) == 0
    # node-0's old pod is going away: node-1 waits
    old[0]["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    assert plan(ds, NODES, old, "h2", NOW).actions == []
    # gone: the new pod is made on node-0; node-1 still waits until it is available
    got = plan(ds, NODES, old[1:], "h2", NOW)
    assert verbs(got) == [("create", "node-0", None)]
    fresh = running(ds, "node-0", "h2", name="c", ready=False)
    assert plan(ds, NODES, [fresh, old[1]], "h2", NOW).actions == []
    fresh = running(ds, "node-0", "h2", name="c")
    got = plan(ds, NODES, [fresh, old[1]], "h2", NOW)
    assert verbs(got) == [("delete", "node-1", "b")]
    assert got.status["updatedNumberScheduled"] == 1


def test_rolling_update_max_unavailable_two_replaces_both():
    ds = daemonset(maxUnavailable=2)
    old = [running(ds, "node-0", "h1", name="a"), running(ds, "node-1", "h1", name="b")]
    assert verbs(plan(ds, NODES, old, "h2", NOW)) == [("delete", "node-0", "a"),
                                                      ("delete", "node-1", "b")]


def test_rolling_update_with_max_surge_starts_the_new_pod_first():
    ds = daemonset(maxUnavailable=0, maxSurge=1)
    old = [running(ds, "node-0", "h1", name="a"), running(ds, "node-1", "h1", name="b")]
    assert verbs(plan(ds, NODES, old, "h2", NOW)) == [("create", "node-0", None)]
    new = running(ds, "node-0", "h2", name="c", created="2024-01-01T00:00:00Z")
    assert verbs(plan(ds, NODES, old + [new], "h2", NOW)) == [("delete", "node-0", "a")]


def test_on_delete_does_not_replace():
    ds = daemonset()
    ds["spec"]["updateStrategy"] = {"type": "OnDelete"}
    old = [running(ds, "node-0", "h1"), running(ds, "node-1", "h1")]
    assert plan(ds, NODES, old, "h2", NOW).actions == []


# ---- the kind ------------------------------------------------------------------------------

def test_defaults_and_validation_messages():
    s = DaemonSetStrategy(ServerConfig())
    ds = daemonset()
    assert ds["spec"]["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {
        "maxUnavailable": 1, "maxSurge": 0}}
    assert ds["spec"]["revisionHistoryLimit"] == 10
    assert s.validate(ds) == []
    bad = daemonset(maxUnavailable=0, maxSurge=0)
    assert [str(e) for e in s.validate(bad)] == [
        "spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when "
        "maxSurge is 0"]
    both = daemonset(maxUnavailable=1, maxSurge=1)
    assert "may not be set when maxUnavailable is non-zero" in str(s.validate(both)[0])
    mismatch = daemonset()
    mismatch["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    assert "`selector` does not match template `labels`" in str(s.validate(mismatch)[0])
    moved = daemonset()
    moved["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    moved["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    assert [str(e) for e in s.validate_update(moved, daemonset())][-1].endswith(
        "field is immutable")


def test_table_row():
    s = DaemonSetStrategy(ServerConfig())
    ds = daemonset({"role": "edge"})
    ds["metadata"]["creationTimestamp"] = None
    ds["status"] = {"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberReady": 1,
                    "updatedNumberScheduled": 2, "numberAvailable": 1}
    row = s.table_row(ds)
    assert row[:7] == ["agent", 2, 2, 1, 2, 1, "role=edge"]
    assert row[8:] == ["c", "agnhost", "app=agent"]
    assert [c.name for c in s.columns] == ["Name", "Desired", "Current", "Ready", "Up-to-date",
                                           "Available", "Node Selector", "Age", "Containers",
                                           "Images", "Selector"]


def test_only_node_changes_that_matter_wake_the_sets():
    from nanokube.controllers.daemonset import _placement
    before = node("node-0")
    heartbeat = node("node-0")
    heartbeat["status"]["conditions"][0]["lastHeartbeatTime"] = "2024-01-01T00:00:10Z"
    assert _placement(before) == _placement(heartbeat)
    assert _placement(before) != _placement(node("node-0", role="edge"))
    assert _placement(before) != _placement(node("node-0", ready=False))
