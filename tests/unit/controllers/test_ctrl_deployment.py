"""Rolling-update arithmetic, scaling, hashing and status of the Deployment controller."""
from __future__ import annotations

import copy

from nanokube.controllers.deployment import (
    cleanup_candidates, deployment_status, equal_ignore_hash, find_new_replica_set,
    is_scaling_event, max_surge, max_unavailable, new_replica_set, pod_template_hash,
    resolve_fenceposts, rolling_step, scale_plan, scaled_value)

TEMPLATE = {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "web:1"}]}}


def deployment(replicas=3, surge="25%", unavailable="25%", strategy="RollingUpdate", **spec):
    d = {"metadata": {"name": "web", "namespace": "default", "uid": "d-uid", "generation": 1},
         "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                  "template": copy.deepcopy(TEMPLATE), "strategy": {"type": strategy},
                  "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600, **spec},
         "status": {}}
    if strategy == "RollingUpdate":
        d["spec"]["strategy"]["rollingUpdate"] = {"maxSurge": surge, "maxUnavailable": unavailable}
    return d


def rs(name, replicas, available=None, created="2024-01-01T00:00:00Z", annotations=None):
    available = replicas if available is None else available
    return {"metadata": {"name": name, "namespace": "default", "uid": f"{name}-uid",
                         "creationTimestamp": created, "annotations": annotations or {},
                         "generation": 1},
            "spec": {"replicas": replicas},
            "status": {"replicas": replicas, "availableReplicas": available,
                       "readyReplicas": available, "observedGeneration": 1}}


def test_percentages_round_surge_up_and_unavailable_down():
    assert scaled_value("25%", 10, True) == 3
    assert scaled_value("25%", 10, False) == 2
    assert scaled_value(4, 10, True) == 4
    assert resolve_fenceposts(deployment(10)) == (3, 2)
    assert resolve_fenceposts(deployment(1, "20%", "20%")) == (1, 0)


def test_both_fenceposts_zero_means_one_unavailable():
    assert resolve_fenceposts(deployment(3, 0, "10%")) == (0, 1)
    assert max_unavailable(deployment(3, 0, "10%")) == 1


def test_recreate_has_no_surge_or_unavailability():
    d = deployment(3, strategy="Recreate")
    assert max_surge(d) == 0 and max_unavailable(d) == 0


def test_max_unavailable_is_capped_by_replicas_and_zero_without_replicas():
    assert max_unavailable(deployment(2, 0, 5)) == 2
    assert max_unavailable(deployment(0)) == 0


def simulate_rollout(d, old, ready=True, steps=50):
    """Apply rolling steps, pods becoming available at once; record the extremes."""
    new = rs("web-new", 0, created="2024-01-02T00:00:00Z")
    olds = [old]
    totals, availables = [], []
    for _ in range(steps):
        changes = rolling_step(d, new, olds)
        if not changes:
            break
        for r in [new, *olds]:
            if r["metadata"]["name"] in changes:
                r["spec"]["replicas"] = changes[r["metadata"]["name"]]
            # pods go away at once; new ones become available only if `ready`
            keep = r["spec"]["replicas"] if (ready or r is not new) else 0
            r["status"]["availableReplicas"] = min(keep, r["spec"]["replicas"])
            r["status"]["replicas"] = r["spec"]["replicas"]
        totals.append(sum(r["spec"]["replicas"] for r in [new, *olds]))
        availables.append(sum(r["status"]["availableReplicas"] for r in [new, *olds]))
    return new, olds, totals, availables


def test_rolling_update_respects_surge_and_unavailable():
    d = deployment(4, surge=1, unavailable=1)
    new, olds, totals, availables = simulate_rollout(d, rs("web-old", 4))
    assert new["spec"]["replicas"] == 4 and olds[0]["spec"]["replicas"] == 0
    assert max(totals) <= 5
    assert min(availables) >= 3


def test_default_rolling_update_of_three_replicas():
    d = deployment(3)                                    # surge ceil(.75)=1, unavailable 0
    first = rolling_step(d, rs("web-new", 0, created="2024-01-02T00:00:00Z"),
                         [rs("web-old", 3)])
    assert first == {"web-new": 1}
    new, olds, totals, availables = simulate_rollout(d, rs("web-old", 3))
    assert (new["spec"]["replicas"], olds[0]["spec"]["replicas"]) == (3, 0)
    assert max(totals) == 4 and min(availables) == 3


def test_rollout_waits_while_new_pods_are_not_available():
    d = deployment(3)
    new, olds, _, _ = simulate_rollout(d, rs("web-old", 3), ready=False)
    assert new["spec"]["replicas"] == 1 and olds[0]["spec"]["replicas"] == 3


def test_unhealthy_old_replicas_are_scaled_down_first():
    d = deployment(4, surge=0, unavailable=1)
    old_sick = rs("web-a", 2, available=0, created="2024-01-01T00:00:00Z")
    old_ok = rs("web-b", 2, available=2, created="2024-01-01T00:00:01Z")
    new = rs("web-new", 0, created="2024-01-02T00:00:00Z")
    # total 4, min available 3, nothing new unavailable: 1 may go, taken from the sick RS
    assert rolling_step(d, new, [old_sick, old_ok]) == {"web-a": 1}


def test_new_replica_set_shrinks_when_deployment_shrinks():
    d = deployment(2)
    assert rolling_step(d, rs("web-new", 5), []) == {"web-new": 2}


def test_single_active_replica_set_takes_the_whole_scale():
    d = deployment(6)
    current = rs("web-new", 3, annotations={"deployment.kubernetes.io/desired-replicas": "3"})
    assert is_scaling_event(d, [current])
    assert scale_plan(d, current, [rs("web-old", 0)]) == {"web-new": 6}
    assert not is_scaling_event(deployment(3), [current])


def test_scaling_during_a_rollout_is_proportional():
    d = deployment(15, surge=3, unavailable=2)
    ann = {"deployment.kubernetes.io/desired-replicas": "10",
           "deployment.kubernetes.io/max-replicas": "13"}
    old = rs("web-old", 8, created="2024-01-01T00:00:00Z", annotations=ann)
    new = rs("web-new", 5, available=0, created="2024-01-02T00:00:00Z", annotations=ann)
    assert scale_plan(d, new, [old]) == {"web-old": 11, "web-new": 7}


def test_template_hash_is_stable_and_label_safe():
    h = pod_template_hash(TEMPLATE)
    assert h == pod_template_hash(copy.deepcopy(TEMPLATE))
    assert h != pod_template_hash(TEMPLATE, 1)
    changed = copy.deepcopy(TEMPLATE)
    changed["spec"]["containers"][0]["image"] = "web:2"
    assert h != pod_template_hash(changed)
    assert set(h) <= set("bcdfghjklmnpqrstvwxz2456789") and 1 <= len(h) <= 10


def test_new_replica_set_shape():
    d = deployment(3)
    made = new_replica_set(d, [], 1)
    h = pod_template_hash(TEMPLATE)
    assert made["metadata"]["name"] == f"web-{h}"
    assert made["metadata"]["labels"] == {"app": "web", "pod-template-hash": h}
    assert made["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": h}
    assert made["spec"]["template"]["metadata"]["labels"]["pod-template-hash"] == h
    assert made["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    ref = made["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["uid"], ref["controller"], ref["blockOwnerDeletion"]) == \
        ("Deployment", "d-uid", True, True)
    assert made["spec"]["replicas"] == 3           # nothing else exists: up to replicas
    assert equal_ignore_hash(made["spec"]["template"], d["spec"]["template"])
    assert find_new_replica_set(d, [made]) is made
    # with an old RS of 3 and surge 1 the new one starts at 1
    assert new_replica_set(d, [rs("web-old", 3)], 2)["spec"]["replicas"] == 1


def test_status_complete_and_in_progress():
    d = deployment(3)
    new = rs("web-new", 3)
    status = deployment_status(d, [new], new, 0.0)
    assert status["replicas"] == status["updatedReplicas"] == status["availableReplicas"] == 3
    assert "unavailableReplicas" not in status and status["observedGeneration"] == 1
    reasons = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert reasons == {"Available": ("True", "MinimumReplicasAvailable"),
                       "Progressing": ("True", "NewReplicaSetAvailable")}
    msg = next(c["message"] for c in status["conditions"] if c["type"] == "Progressing")
    assert msg == 'ReplicaSet "web-new" has successfully progressed.'

    rolling = rs("web-new", 1, available=0)
    status = deployment_status(d, [rs("web-old", 3), rolling], rolling, 0.0)
    assert status["unavailableReplicas"] == 1 and status["updatedReplicas"] == 1
    reasons = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert reasons["Progressing"] == ("True", "ReplicaSetUpdated")
    assert reasons["Available"] == ("True", "MinimumReplicasAvailable")


def test_progress_deadline_exceeded():
    d = deployment(3, progressDeadlineSeconds=10)
    d["status"] = {"updatedReplicas": 1, "replicas": 4, "readyReplicas": 3,
                   "availableReplicas": 3, "conditions": [{
        "type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
        "lastUpdateTime": "2024-01-01T00:00:00Z", "lastTransitionTime": "2024-01-01T00:00:00Z"}]}
    stuck = rs("web-new", 1, available=0)
    status = deployment_status(d, [rs("web-old", 3), stuck], stuck, 1704067300.0)
    cond = next(c for c in status["conditions"] if c["type"] == "Progressing")
    assert (cond["status"], cond["reason"]) == ("False", "ProgressDeadlineExceeded")


def test_cleanup_keeps_revision_history_limit():
    d = deployment(3, revisionHistoryLimit=1)
    olds = [rs(f"web-{i}", 0, annotations={"deployment.kubernetes.io/revision": str(i)})
            for i in (3, 1, 2)]
    assert [r["metadata"]["name"] for r in cleanup_candidates(d, olds)] == ["web-1", "web-2"]
    olds[1]["spec"]["replicas"] = 1                 # never delete one that still has pods
    assert [r["metadata"]["name"] for r in cleanup_candidates(d, olds)] == ["web-2"]
