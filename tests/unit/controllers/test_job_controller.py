"""The Job controller's plan: parallelism and completions, back-off and backoffLimit, the
deadline, Indexed completions, suspend; and the TTL-after-finished timing."""
from __future__ import annotations

from nanokube.controllers.job import (format_indexes, new_pod, parse_indexes, plan, rfc3339)
from nanokube.controllers.ttlafterfinished import time_left
from nanokube.registry.job import JobStrategy

NOW = 1_800_000_000.0


def make_job(**spec) -> dict:
    job = {"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": "pi", "namespace": "default", "uid": "u-1"},
           "spec": {**spec, "template": {"spec": {
               "restartPolicy": spec.pop("restartPolicy", "Never"),
               "containers": [{"name": "c", "image": "busybox"}]}}}}
    s = JobStrategy()
    s.default(job)
    s.prepare_create(job)
    assert s.validate(job) == []
    return job


def pod(name: str, phase: str = "Running", finished: float | None = None, index: int | None = None,
        ready: bool = False, deleting: bool = False, restarts: int = 0) -> dict:
    meta = {"name": name, "namespace": "default", "uid": f"uid-{name}",
            "creationTimestamp": rfc3339(NOW - 100),
            "ownerReferences": [{"kind": "Job", "name": "pi", "uid": "u-1", "controller": True}]}
    if index is not None:
        meta["annotations"] = {"batch.kubernetes.io/job-completion-index": str(index)}
    if deleting:
        meta["deletionTimestamp"] = rfc3339(NOW)
    status = {"phase": phase, "conditions": [{"type": "Ready",
                                              "status": "True" if ready else "False",
                                              "lastTransitionTime": rfc3339(finished or NOW)}],
              "containerStatuses": [{"name": "c", "restartCount": restarts, "state": (
                  {"terminated": {"finishedAt": rfc3339(finished)}} if finished else
                  {"running": {}})}]}
    return {"metadata": meta, "status": status}


def with_status(job: dict, status: dict) -> dict:
    return {**job, "status": status}


def test_a_new_job_starts_parallelism_pods_and_its_clock():
    job = make_job(completions=5, parallelism=2)
    p = plan(job, [], NOW)
    assert len(p.create) == 2 and not p.delete
    assert p.status["startTime"] == rfc3339(NOW)
    assert (p.status["active"], p.status["succeeded"], p.status["failed"]) == (0, 0, 0)
    created = p.create[0]
    assert created["metadata"]["generateName"] == "pi-"
    assert created["metadata"]["labels"]["batch.kubernetes.io/controller-uid"] == "u-1"
    assert created["metadata"]["ownerReferences"][0]["kind"] == "Job"
    assert created["spec"]["restartPolicy"] == "Never"


def test_never_more_than_the_completions_left():
    job = with_status(make_job(completions=3, parallelism=2), {"startTime": rfc3339(NOW)})
    pods = [pod("a", "Succeeded", NOW - 5), pod("b", "Succeeded", NOW - 4), pod("c")]
    p = plan(job, pods, NOW)
    assert p.create == [] and p.status["active"] == 1 and p.status["succeeded"] == 2
    p = plan(job, pods[:2], NOW)
    assert len(p.create) == 1


def test_completion_writes_success_criteria_met_then_complete():
    job = with_status(make_job(completions=2, parallelism=2), {"startTime": rfc3339(NOW - 9)})
    p = plan(job, [pod("a", "Succeeded", NOW - 1), pod("b", "Succeeded", NOW)], NOW)
    conds = {c["type"]: c for c in p.status["conditions"]}
    assert list(conds) == ["SuccessCriteriaMet", "Complete"]
    assert conds["Complete"]["reason"] == "CompletionsReached"
    assert conds["Complete"]["message"] == "Reached expected number of succeeded pods"
    assert p.status["completionTime"] == rfc3339(NOW)
    assert ("Normal", "Completed", "Job completed") in p.events
    # a finished job is left alone
    assert plan(with_status(job, p.status), [], NOW + 5).status == p.status


def test_without_completions_one_success_and_no_pod_left_running():
    job = with_status(make_job(parallelism=2), {"startTime": rfc3339(NOW)})
    assert job["spec"].get("completions") is None
    p = plan(job, [pod("a", "Succeeded", NOW), pod("b")], NOW)
    assert p.create == [] and "conditions" not in p.status
    p = plan(job, [pod("a", "Succeeded", NOW), pod("b", "Succeeded", NOW)], NOW)
    assert [c["type"] for c in p.status["conditions"]] == ["SuccessCriteriaMet", "Complete"]


def test_failed_pods_are_replaced_after_a_doubling_backoff():
    job = with_status(make_job(backoffLimit=6), {"startTime": rfc3339(NOW - 60)})
    p = plan(job, [pod("a", "Failed", NOW - 4)], NOW)
    assert p.create == [] and abs(p.requeue - 6.0) < 0.01       # 10 s after the failure
    assert len(plan(job, [pod("a", "Failed", NOW - 10)], NOW).create) == 1
    two = [pod("a", "Failed", NOW - 30), pod("b", "Failed", NOW - 15)]
    p = plan(job, two, NOW)
    assert p.create == [] and abs(p.requeue - 5.0) < 0.01       # 20 s after the second
    assert p.status["failed"] == 2


def test_more_failures_than_backoff_limit_fail_the_job():
    job = with_status(make_job(backoffLimit=1), {"startTime": rfc3339(NOW - 60), "failed": 1})
    p = plan(job, [pod("a", "Failed", NOW - 20), pod("b", "Failed", NOW)], NOW)
    conds = {c["type"]: c for c in p.status["conditions"]}
    assert list(conds) == ["FailureTarget", "Failed"]
    assert (conds["Failed"]["reason"], conds["Failed"]["message"]) == (
        "BackoffLimitExceeded", "Job has reached the specified backoff limit")
    assert "completionTime" not in p.status and p.create == []
    assert ("Warning", "BackoffLimitExceeded",
            "Job has reached the specified backoff limit") in p.events


def test_on_failure_restarts_count_against_the_backoff_limit():
    job = with_status(make_job(backoffLimit=2, restartPolicy="OnFailure"),
                      {"startTime": rfc3339(NOW)})
    p = plan(job, [pod("a", restarts=2)], NOW)
    assert [d["metadata"]["name"] for d in p.delete] == ["a"]
    assert [c["type"] for c in p.status["conditions"]] == ["FailureTarget"]
    assert p.status["terminating"] == 1 and p.status["active"] == 0


def test_active_deadline_fails_the_job_and_deletes_its_pods():
    job = with_status(make_job(activeDeadlineSeconds=30), {"startTime": rfc3339(NOW - 20)})
    p = plan(job, [pod("a")], NOW)
    assert p.delete == [] and abs(p.requeue - 10) < 0.01
    p = plan(job, [pod("a")], NOW + 10)
    assert [d["metadata"]["name"] for d in p.delete] == ["a"]
    target = p.status["conditions"][0]
    assert (target["type"], target["reason"], target["message"]) == (
        "FailureTarget", "DeadlineExceeded", "Job was active longer than specified deadline")
    # the Failed condition once the pod is gone
    later = plan(with_status(job, p.status), [pod("a", deleting=True)], NOW + 11)
    assert [c["type"] for c in later.status["conditions"]] == ["FailureTarget"]
    done = plan(with_status(job, p.status), [], NOW + 12)
    assert [c["type"] for c in done.status["conditions"]] == ["FailureTarget", "Failed"]


def test_indexed_jobs_run_each_missing_index_once():
    job = with_status(make_job(completions=4, parallelism=2, completionMode="Indexed"),
                      {"startTime": rfc3339(NOW)})
    p = plan(job, [pod("a", "Succeeded", NOW, index=0), pod("b", index=1)], NOW)
    assert [c["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
            for c in p.create] == ["2"]
    made = p.create[0]
    assert made["metadata"]["generateName"] == "pi-2-"
    assert made["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] == "2"
    assert made["spec"]["hostname"] == "pi-2"
    assert made["spec"]["containers"][0]["env"] == [{"name": "JOB_COMPLETION_INDEX", "valueFrom": {
        "fieldRef": {"apiVersion": "v1",
                     "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}}]
    assert p.status["completedIndexes"] == "0" and p.status["succeeded"] == 1
    pods = [pod(n, "Succeeded", NOW, index=i) for i, n in enumerate("abcd")]
    p = plan(job, pods, NOW)
    assert p.status["completedIndexes"] == "0-3" and p.status["succeeded"] == 4
    assert p.status["conditions"][-1]["type"] == "Complete"


def test_completed_indexes_format():
    assert format_indexes({1, 3, 4, 5, 7}) == "1,3-5,7"
    assert format_indexes({0, 1}) == "0,1"
    assert parse_indexes("1,3-5,7", 6) == {1, 3, 4, 5}


def test_suspend_deletes_running_pods_and_resume_restarts_the_clock():
    job = with_status(make_job(parallelism=2, completions=2, suspend=True), {})
    p = plan(job, [pod("a"), pod("b")], NOW)
    assert len(p.delete) == 2 and p.create == [] and "startTime" not in p.status
    cond = p.status["conditions"][0]
    assert (cond["type"], cond["status"], cond["reason"]) == ("Suspended", "True", "JobSuspended")
    assert ("Normal", "Suspended", "Job suspended") in p.events
    resumed = {**job, "spec": {**job["spec"], "suspend": False}, "status": p.status}
    p = plan(resumed, [], NOW + 50)
    cond = p.status["conditions"][0]
    assert (cond["status"], cond["reason"], cond["message"]) == ("False", "JobResumed",
                                                                 "Job resumed")
    assert p.status["startTime"] == rfc3339(NOW + 50) and len(p.create) == 2


def test_counts_never_go_down():
    job = with_status(make_job(completions=3), {"startTime": rfc3339(NOW), "succeeded": 2})
    p = plan(job, [], NOW)
    assert p.status["succeeded"] == 2 and len(p.create) == 1


def test_new_pod_keeps_the_template():
    job = make_job()
    assert new_pod(job)["spec"]["containers"][0]["image"] == "busybox"


def test_ttl_after_finished():
    job = make_job(ttlSecondsAfterFinished=30)
    assert time_left(job, NOW) is None          # not finished
    job["status"] = {"conditions": [{"type": "Complete", "status": "True",
                                     "lastTransitionTime": rfc3339(NOW)}]}
    assert time_left(job, NOW + 10) == 20
    assert time_left(job, NOW + 40) == 0
    job["metadata"]["deletionTimestamp"] = rfc3339(NOW + 41)
    assert time_left(job, NOW + 50) is None
    assert time_left(make_job(), NOW) is None
