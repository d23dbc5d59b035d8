"""The CronJob controller's decisions with a fake clock: schedule times, missed runs,
startingDeadlineSeconds, concurrency policies, suspend, history pruning, time zones."""
from __future__ import annotations

import copy
from datetime import datetime, timezone

import pytest

from nanokube.controllers.cronjob import (SCHEDULED_TIMESTAMP, job_name, most_recent_schedule,
                                          plan)
from nanokube.controllers.job import rfc3339
from nanokube.registry.cronjob import default_cronjob, location, parse_schedule

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=timezone.utc).timestamp()   # a minute boundary
POD = {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}


def cronjob(created: float = T0 - 30, **spec) -> dict:
    obj = {"apiVersion": "batch/v1", "kind": "CronJob",
           "metadata": {"name": "tick", "namespace": "default", "uid": "cj-uid",
                        "creationTimestamp": rfc3339(created)},
           "spec": {"schedule": "* * * * *",
                    "jobTemplate": {"metadata": {"labels": {"app": "tick"}},
                                    "spec": {"template": copy.deepcopy(POD)}}, **spec}}
    default_cronjob(obj)
    return obj


def job(name: str, condition: str | None = None, start: float = T0) -> dict:
    status: dict = {"startTime": rfc3339(start)}
    if condition:
        status["conditions"] = [{"type": condition, "status": "True"}]
        if condition == "Complete":
            status["completionTime"] = rfc3339(start + 5)
    return {"metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}",
                         "creationTimestamp": rfc3339(start)}, "status": status}


def ref(j: dict) -> dict:
    return {"kind": "Job", "name": j["metadata"]["name"], "uid": j["metadata"]["uid"]}


def reasons(p) -> list[str]:
    return [r for _, r, _ in p.events]


def test_nothing_due_before_the_first_schedule_time():
    p = plan(cronjob(), [], T0 - 10)
    assert p.create is None
    assert p.requeue == pytest.approx(10.1)


def test_due_run_creates_a_named_job():
    p = plan(cronjob(), [], T0 + 5)
    assert p.create["metadata"]["name"] == f"tick-{int(T0 // 60)}"
    assert p.create["metadata"]["labels"] == {"app": "tick"}
    assert p.create["metadata"]["annotations"][SCHEDULED_TIMESTAMP] == \
        "2024-03-01T12:00:00+00:00"
    owner = p.create["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("CronJob", "cj-uid", True)
    assert p.status["lastScheduleTime"] == "2024-03-01T12:00:00Z"
    assert p.requeue == pytest.approx(55.1)


def test_a_run_is_created_once():
    cj = cronjob()
    existing = job(job_name(cj, T0))
    assert plan(cj, [existing], T0 + 5).create is None


def test_missed_runs_start_only_the_most_recent():
    cj = cronjob()
    cj["status"] = {"lastScheduleTime": rfc3339(T0)}
    p = plan(cj, [], T0 + 5 * 60 + 1)
    assert p.status["lastScheduleTime"] == rfc3339(T0 + 5 * 60)
    assert "TooManyMissedTimes" not in reasons(p)


def test_too_many_missed_start_times():
    cj = cronjob(created=T0 - 500 * 60)
    p = plan(cj, [], T0 + 1)
    assert "TooManyMissedTimes" in reasons(p)
    assert p.create["metadata"]["name"] == f"tick-{int(T0 // 60)}"   # still the latest
    # a starting deadline bounds the walk: no warning
    p = plan(cronjob(created=T0 - 500 * 60, startingDeadlineSeconds=200), [], T0 + 1)
    assert "TooManyMissedTimes" not in reasons(p) and p.create is not None


def test_starting_deadline_passed_misses_the_run():
    cj = cronjob(schedule="0 * * * *", startingDeadlineSeconds=60)
    cj["metadata"]["creationTimestamp"] = rfc3339(T0 - 3600)
    assert plan(cj, [], T0 + 30).create is not None
    p = plan(cj, [], T0 + 120)
    assert p.create is None and "MissSchedule" not in reasons(p)   # outside the window
    assert p.requeue == pytest.approx(3600 - 120 + 0.1)


def test_suspend_starts_nothing():
    p = plan(cronjob(suspend=True), [], T0 + 5)
    assert p.create is None and p.requeue is None


def test_forbid_skips_while_a_job_is_active():
    cj = cronjob(concurrencyPolicy="Forbid")
    running = job("tick-1")
    cj["status"] = {"active": [ref(running)], "lastScheduleTime": rfc3339(T0 - 60)}
    p = plan(cj, [running], T0 + 5)
    assert p.create is None and reasons(p) == ["JobAlreadyActive"]


def test_replace_deletes_the_active_job():
    cj = cronjob(concurrencyPolicy="Replace")
    running = job("tick-1")
    cj["status"] = {"active": [ref(running)], "lastScheduleTime": rfc3339(T0 - 60)}
    p = plan(cj, [running], T0 + 5)
    assert p.delete == [running] and p.create is not None
    assert "active" not in p.status


def test_allow_runs_alongside():
    cj = cronjob()
    running = job("tick-1")
    cj["status"] = {"active": [ref(running)], "lastScheduleTime": rfc3339(T0 - 60)}
    p = plan(cj, [running], T0 + 5)
    assert p.create is not None and p.delete == [] and p.status["active"] == [ref(running)]


def test_finished_job_leaves_active_and_sets_last_successful_time():
    cj = cronjob()
    done = job("tick-1", "Complete")
    cj["status"] = {"active": [ref(done)], "lastScheduleTime": rfc3339(T0)}
    p = plan(cj, [done], T0 + 30)
    assert "active" not in p.status
    assert p.status["lastSuccessfulTime"] == rfc3339(T0 + 5)
    assert reasons(p) == ["SawCompletedJob"]


def test_history_limits_prune_the_oldest():
    cj = cronjob(successfulJobsHistoryLimit=2, failedJobsHistoryLimit=0)
    ok = [job(f"ok-{i}", "Complete", start=T0 - 600 + i) for i in range(4)]
    bad = [job("bad", "Failed")]
    p = plan(cj, ok + bad + [job("running")], T0 - 10)
    assert [j["metadata"]["name"] for j in p.prune] == ["ok-0", "ok-1", "bad"]


def test_time_zone_schedule():
    # 09:00 in Berlin on 1 March 2024 is 08:00 UTC
    cj = cronjob(schedule="0 9 * * *", timeZone="Europe/Berlin",
                 created=datetime(2024, 3, 1, 7, 0, tzinfo=timezone.utc).timestamp())
    now = datetime(2024, 3, 1, 8, 0, 30, tzinfo=timezone.utc).timestamp()
    p = plan(cj, [], now)
    assert p.status["lastScheduleTime"] == "2024-03-01T08:00:00Z"
    assert p.create["metadata"]["annotations"][SCHEDULED_TIMESTAMP] == \
        "2024-03-01T09:00:00+01:00"


def test_most_recent_schedule_counts():
    sched, tz = parse_schedule("*/10 * * * *"), location(None)
    assert most_recent_schedule(sched, tz, T0 - 1, T0 + 35 * 60) == (T0 + 30 * 60, 4)
    assert most_recent_schedule(sched, tz, T0, T0 + 5) == (None, 0)
    recent, missed = most_recent_schedule(parse_schedule("* * * * *"), tz, T0, T0 + 3 * 86400)
    assert recent == T0 + 3 * 86400 and missed == 101
