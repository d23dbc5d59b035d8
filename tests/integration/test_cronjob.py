"""CronJobs on a real cluster with real kubectl: `kubectl create cronjob`, `kubectl get
cronjobs` columns, `kubectl create job --from=cronjob/...` (the template path, no waiting for a
minute), the controller's own run at the next minute boundary (at most one real minute), and a
suspended CronJob that starts nothing across the same boundary."""
from __future__ import annotations

import os
from datetime import datetime, timezone

import pytest

from harness import ClusterRun, cluster_up, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")

SCHEDULED = "batch.kubernetes.io/cronjob-scheduled-timestamp"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with cluster_up(tmp_path_factory.mktemp("cronjob"), "cj") as c:
        yield c


def complete(job: dict) -> bool:
    return any(c["type"] == "Complete" and c["status"] == "True"
               for c in (job.get("status") or {}).get("conditions") or [])


def owned_jobs(c: ClusterRun, cronjob: str) -> list[dict]:
    return [j for j in c.get("jobs")["items"]
            if any(r.get("kind") == "CronJob" and r.get("name") == cronjob
                   for r in j["metadata"].get("ownerReferences") or [])
            and SCHEDULED in (j["metadata"].get("annotations") or {})]


def test_cronjob_lifecycle(cluster):
    c = cluster
    # A suspended CronJob first, so that the boundary the next one waits for is after both.
    c.kubectl("create", "cronjob", "paused", "--image=busybox", "--schedule=* * * * *",
              "--", "echo", "never")
    c.kubectl("patch", "cronjob", "paused", "-p", '{"spec":{"suspend":true}}')
    c.kubectl("create", "cronjob", "tick", "--image=busybox", "--schedule=* * * * *",
              "--", "echo", "hi")

    table = c.kubectl("get", "cronjobs").stdout.splitlines()
    assert table[0].split() == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST",
                                "SCHEDULE", "AGE"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows["paused"][7:10] == ["true", "0", "<none>"]
    assert rows["tick"][7:9] == ["false", "0"]
    wide = c.kubectl("get", "cj", "tick", "-o", "wide").stdout.splitlines()
    assert wide[0].split()[-3:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    assert wide[1].split()[-3:] == ["tick", "busybox", "<none>"]
    bad = c.kubectl("create", "cronjob", "bad", "--image=busybox", "--schedule=bogus",
                    check=False)
    assert bad.returncode != 0
    assert 'spec.schedule: Invalid value: "bogus": expected exactly 5 fields, found 1: ' \
           '[bogus]' in bad.stderr

    # The template path, at once: kubectl reads the CronJob and creates a Job from it.
    c.kubectl("create", "job", "--from=cronjob/tick", "tick-manual")
    manual = c.get("job", "tick-manual")
    assert manual["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    wait_for("manual job complete", lambda: complete(c.get("job", "tick-manual")), timeout=60)
    assert c.kubectl("logs", "job/tick-manual").stdout.strip() == "hi"

    # The controller's own run: at the next minute boundary (at most a minute away).
    wait_for("scheduled job", lambda: owned_jobs(c, "tick"), timeout=80)
    job = owned_jobs(c, "tick")[0]
    name = job["metadata"]["name"]
    minutes = int(name.rsplit("-", 1)[1])
    stamp = datetime.fromtimestamp(minutes * 60, timezone.utc).isoformat()
    assert job["metadata"]["annotations"][SCHEDULED] == stamp
    status = c.get("cronjob", "tick")["status"]
    assert status.get("lastScheduleTime")
    wait_for("scheduled job complete", lambda: complete(c.get("job", name)), timeout=60)
    assert c.kubectl("logs", f"job/{name}").stdout.strip() == "hi"

    def saw_completion():
        got = c.get("cronjob", "tick")["status"]
        return not got.get("active") and got.get("lastSuccessfulTime")
    wait_for("lastSuccessfulTime", saw_completion, timeout=30)
    reasons = {(e["reason"], e["message"]) for e in c.get(
        "events", "--field-selector", "involvedObject.kind=CronJob,involvedObject.name=tick")[
        "items"]}
    assert ("SuccessfulCreate", f"Created job {name}") in reasons

    # The suspended one started nothing across that boundary.
    assert owned_jobs(c, "paused") == []
    assert "lastScheduleTime" not in (c.get("cronjob", "paused").get("status") or {})
    c.kubectl("delete", "cronjob", "tick", "paused")
    wait_for("jobs gone with their CronJob", lambda: not c.get("jobs")["items"], timeout=60)
