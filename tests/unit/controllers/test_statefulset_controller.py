"""The StatefulSet controller's decisions against fake state: ordering, scale down, rolling
update with a partition, revisions."""
from __future__ import annotations

import copy

from nanokube.controllers.statefulset import (POD_INDEX_LABEL, POD_NAME_LABEL, REVISION_LABEL,
                                              apply_revision, fnv32, new_pod, new_revision,
                                              parent_and_ordinal, plan, revision_hash,
                                              revisions_to_prune)

NOW = 1704067200.0      # 2024-01-01T00:00:00Z


def statefulset(replicas=3, policy="OrderedReady", partition=0, strategy="RollingUpdate",
                image="agnhost", start=None, **spec):
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet",
           "metadata": {"name": "web", "namespace": "default", "uid": "sts-uid",
                        "generation": 2},
           "spec": {"replicas": replicas, "serviceName": "nginx", "podManagementPolicy": policy,
                    "selector": {"matchLabels": {"app": "nginx"}},
                    "updateStrategy": {"type": strategy},
                    "template": {"metadata": {"labels": {"app": "nginx"}},
                                 "spec": {"containers": [{"name": "c", "image": image}]}},
                    **spec}}
    if strategy == "RollingUpdate":
        sts["spec"]["updateStrategy"]["rollingUpdate"] = {"partition": partition}
    if start is not None:
        sts["spec"]["ordinals"] = {"start": start}
    return sts


def running(sts, ordinal, revision="rev-1", ready=True, phase="Running", terminating=False):
    """A pod of the set as the API would show it."""
    pod = new_pod(sts, ordinal, revision)
    pod["metadata"]["uid"] = f"uid-{ordinal}"
    pod["status"] = {"phase": phase, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False",
         "lastTransitionTime": "2023-12-31T00:00:00Z"}]}
    if terminating:
        pod["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return pod


def decide(sts, pods, current="rev-1", update="rev-1", current_set=None):
    p = plan(sts, current_set or sts, current, update, pods, now=NOW)
    return [(a.verb, a.pod["metadata"]["name"]) for a in p.actions], p


# ---- identity -----------------------------------------------------------------------------------

def test_pod_identity():
    sts = statefulset(volumeClaimTemplates=[{"metadata": {"name": "data"}}])
    sts["spec"]["template"]["spec"]["volumes"] = [{"name": "data", "emptyDir": {}},
                                                  {"name": "other", "emptyDir": {}}]
    pod = new_pod(sts, 1, "web-abc")
    assert pod["metadata"]["name"] == "web-1"
    assert pod["metadata"]["labels"] == {"app": "nginx", POD_NAME_LABEL: "web-1",
                                         POD_INDEX_LABEL: "1", REVISION_LABEL: "web-abc"}
    assert pod["spec"]["hostname"] == "web-1" and pod["spec"]["subdomain"] == "nginx"
    assert pod["metadata"]["ownerReferences"] == [{
        "apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "sts-uid",
        "controller": True, "blockOwnerDeletion": True}]
    # the claim template replaces the template's volume of that name
    assert pod["spec"]["volumes"] == [
        {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-1"}},
        {"name": "other", "emptyDir": {}}]
    assert sts["spec"]["template"]["spec"]["volumes"][0] == {"name": "data", "emptyDir": {}}


def test_parent_and_ordinal():
    assert parent_and_ordinal("web-12") == ("web", 12)
    assert parent_and_ordinal("my-web-0") == ("my-web", 0)
    assert parent_and_ordinal("web") == ("", -1)
    assert parent_and_ordinal("web-x") == ("", -1)


# ---- ordering -----------------------------------------------------------------------------------

def test_ordered_ready_creates_one_pod_at_a_time():
    sts = statefulset()
    assert decide(sts, [])[0] == [("create", "web-0")]
    # web-0 exists but is not Ready: nothing more
    assert decide(sts, [running(sts, 0, ready=False)])[0] == []
    assert decide(sts, [running(sts, 0, phase="Pending", ready=False)])[0] == []
    # web-0 Ready: web-1, and only web-1
    assert decide(sts, [running(sts, 0)])[0] == [("create", "web-1")]
    assert decide(sts, [running(sts, 0), running(sts, 1)])[0] == [("create", "web-2")]
    assert decide(sts, [running(sts, i) for i in range(3)])[0] == []


def test_a_missing_lower_ordinal_is_made_again_first():
    sts = statefulset()
    assert decide(sts, [running(sts, 1), running(sts, 2)])[0] == [("create", "web-0")]
    # while web-0 terminates (deleted by a user), nothing else happens
    pods = [running(sts, 0, terminating=True), running(sts, 1), running(sts, 2)]
    assert decide(sts, pods)[0] == []


def test_parallel_creates_all_at_once():
    sts = statefulset(policy="Parallel")
    assert decide(sts, [])[0] == [("create", "web-0"), ("create", "web-1"), ("create", "web-2")]
    assert decide(sts, [running(sts, 0, ready=False)])[0] == [("create", "web-1"),
                                                               ("create", "web-2")]


def test_ordinals_start():
    sts = statefulset(start=5, policy="Parallel", replicas=2)
    assert decide(sts, [])[0] == [("create", "web-5"), ("create", "web-6")]
    # web-0 is outside [5, 7): condemned
    actions, _ = decide(sts, [running(sts, 0), running(sts, 5), running(sts, 6)])
    assert actions == [("delete", "web-0")]


def test_failed_pod_is_deleted_and_made_again_with_the_same_name():
    sts = statefulset()
    actions, p = decide(sts, [running(sts, 0, phase="Failed", ready=False)])
    assert actions == [("delete", "web-0"), ("create", "web-0")]
    assert p.actions[0].why == "failed"


# ---- scale down ---------------------------------------------------------------------------------

def test_scale_down_from_the_highest_ordinal_one_at_a_time():
    sts = statefulset(replicas=1)
    pods = [running(sts, i) for i in range(3)]
    assert decide(sts, pods)[0] == [("delete", "web-2")]
    # web-2 terminating: wait for it before web-1
    pods[2] = running(sts, 2, terminating=True)
    assert decide(sts, pods)[0] == []
    assert decide(sts, pods[:2])[0] == [("delete", "web-1")]
    assert decide(sts, pods[:1])[0] == []


def test_scale_down_waits_while_a_pod_is_unhealthy():
    sts = statefulset(replicas=1)
    # web-0 not ready: the scale down does not proceed (OrderedReady)
    pods = [running(sts, 0, ready=False), running(sts, 1), running(sts, 2)]
    assert decide(sts, pods)[0] == []
    # the first unhealthy pod may itself be removed
    pods = [running(sts, 0), running(sts, 1), running(sts, 2, ready=False)]
    assert decide(sts, pods)[0] == [("delete", "web-2")]
    # as in Kubernetes, a healthy condemned pod above an unhealthy one still goes first...
    pods = [running(sts, 0), running(sts, 1, ready=False), running(sts, 2)]
    assert decide(sts, pods)[0] == [("delete", "web-2")]
    # ...and then the unhealthy one, being the first unhealthy pod
    assert decide(sts, pods[:2])[0] == [("delete", "web-1")]


def test_parallel_scale_down_removes_all_at_once():
    sts = statefulset(replicas=1, policy="Parallel")
    pods = [running(sts, i) for i in range(3)]
    assert decide(sts, pods)[0] == [("delete", "web-2"), ("delete", "web-1")]


# ---- rolling update -----------------------------------------------------------------------------

def test_rolling_update_from_the_highest_ordinal_one_at_a_time():
    sts = statefulset()
    pods = [running(sts, i, "rev-1") for i in range(3)]
    actions, p = decide(sts, pods, current="rev-1", update="rev-2")
    assert actions == [("delete", "web-2")] and p.actions[0].why == "update"
    # web-2 gone: made again at the update revision
    actions, p = decide(sts, pods[:2], current="rev-1", update="rev-2")
    assert actions == [("create", "web-2")]
    assert p.actions[0].pod["metadata"]["labels"][REVISION_LABEL] == "rev-2"
    # web-2 updated but not Ready yet: wait
    pods[2] = running(sts, 2, "rev-2", ready=False)
    assert decide(sts, pods, current="rev-1", update="rev-2")[0] == []
    pods[2] = running(sts, 2, "rev-2")
    assert decide(sts, pods, current="rev-1", update="rev-2")[0] == [("delete", "web-1")]


def test_rolling_update_stops_at_the_partition():
    sts = statefulset(partition=2)
    pods = [running(sts, 0, "rev-1"), running(sts, 1, "rev-1"), running(sts, 2, "rev-2")]
    actions, p = decide(sts, pods, current="rev-1", update="rev-2")
    assert actions == []
    assert p.status["updatedReplicas"] == 1 and p.status["currentReplicas"] == 2
    assert p.status["currentRevision"] == "rev-1" and p.status["updateRevision"] == "rev-2"
    # a pod below the partition is made again at the current revision, from its template
    current_set = statefulset(image="old")
    actions, p = decide(sts, pods[1:], current="rev-1", update="rev-2", current_set=current_set)
    assert actions == [("create", "web-0")]
    made = p.actions[0].pod
    assert made["metadata"]["labels"][REVISION_LABEL] == "rev-1"
    assert made["spec"]["containers"][0]["image"] == "old"


def test_on_delete_replaces_only_deleted_pods():
    sts = statefulset(strategy="OnDelete")
    pods = [running(sts, i, "rev-1") for i in range(3)]
    assert decide(sts, pods, current="rev-1", update="rev-2")[0] == []
    actions, p = decide(sts, pods[:2], current="rev-1", update="rev-2")
    assert actions == [("create", "web-2")]
    assert p.actions[0].pod["metadata"]["labels"][REVISION_LABEL] == "rev-2"


def test_status_completes_the_rolling_update():
    sts = statefulset()
    pods = [running(sts, i, "rev-2") for i in range(3)]
    _, p = decide(sts, pods, current="rev-1", update="rev-2")
    assert p.status == {"observedGeneration": 2, "replicas": 3, "readyReplicas": 3,
                        "availableReplicas": 3, "currentReplicas": 3, "updatedReplicas": 3,
                        "currentRevision": "rev-2", "updateRevision": "rev-2",
                        "collisionCount": 0}
    _, p = decide(sts, [], current="rev-1", update="rev-1")
    assert p.status == {"observedGeneration": 2, "replicas": 0, "availableReplicas": 0,
                        "currentRevision": "rev-1", "updateRevision": "rev-1",
                        "collisionCount": 0}


def test_being_deleted_does_nothing_but_status():
    sts = statefulset()
    sts["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    actions, p = decide(sts, [running(sts, 0)])
    assert actions == [] and p.status["replicas"] == 1


def test_min_ready_seconds_holds_the_next_pod():
    sts = statefulset(minReadySeconds=30)
    pod = running(sts, 0)
    pod["status"]["conditions"][0]["lastTransitionTime"] = "2023-12-31T23:59:50Z"   # 10 s ago
    actions, p = decide(sts, [pod])
    assert actions == [] and p.requeue == 20.0
    assert p.status["readyReplicas"] == 1 and p.status["availableReplicas"] == 0


# ---- revisions ----------------------------------------------------------------------------------

def test_revision_hash_follows_the_template():
    sts = statefulset()
    rev = new_revision(sts, 1)
    name = rev["metadata"]["name"]
    assert name.startswith("web-") and rev["revision"] == 1
    assert set(name[4:]) <= set("bcdfghjklmnpqrstvwxz2456789")
    assert rev["data"]["spec"]["template"]["$patch"] == "replace"
    # the same template: the same name; another template or a collision count: another
    assert new_revision(copy.deepcopy(sts), 5)["metadata"]["name"] == name
    assert new_revision(statefulset(image="other"), 1)["metadata"]["name"] != name
    assert revision_hash(rev["data"], 1) != revision_hash(rev["data"])
    # replicas and strategy are not part of a revision
    assert new_revision(statefulset(replicas=7, partition=2), 1)["metadata"]["name"] == name
    assert apply_revision(statefulset(image="new"), rev)["spec"]["template"] == \
        sts["spec"]["template"]


def test_fnv32_is_fnv1():
    assert fnv32(b"") == 0x811C9DC5
    assert fnv32(b"a") == 0x050C5D7E


def test_history_is_pruned_to_the_limit():
    sts = statefulset(revisionHistoryLimit=1)
    revs = [{"metadata": {"name": f"web-{i}"}, "revision": i} for i in range(1, 6)]
    pods = [running(sts, 0, "web-2")]
    pruned = revisions_to_prune(sts, revs, pods, current="web-4", update="web-5")
    # web-2 (a pod uses it), web-4 and web-5 stay; of web-1 and web-3 one is kept
    assert [r["metadata"]["name"] for r in pruned] == ["web-1"]
