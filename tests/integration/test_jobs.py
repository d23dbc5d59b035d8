"""Jobs on a real cluster with real kubectl: `kubectl create job` of busybox reaching a Service
by name, `kubectl wait --for=condition=complete`, `kubectl logs job/...`, completions and
parallelism, a failing Job hitting its backoffLimit, ttlSecondsAfterFinished."""
from __future__ import annotations

import json
import os
import time

import pytest

from harness import ClusterRun, leftovers, require_kubectl, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")

AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.47"
WEB = [
    {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"app": "web"}},
     "spec": {"terminationGracePeriodSeconds": 0,
              "containers": [{"name": "web", "image": AGNHOST,
                              "args": ["netexec", "--http-port=8080"]}]}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
     "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}},
]


def job(name: str, spec: dict, command: list[str]) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {**spec, "template": {"spec": {
                "restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                "containers": [{"name": "c", "image": "busybox", "command": command}]}}}}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    require_kubectl()
    c = ClusterRun(tmp_path_factory.mktemp("jobs"), prefix="j")
    try:
        c.nk("up", "--nodes", "1", timeout=60)
        for obj in WEB:     # the Service the smoke Job reaches (the last test)
            c.kubectl("apply", "-f", "-", input=json.dumps(obj))
        yield c
    finally:
        c.nk("down", check=False)
    assert leftovers(c.name) == []


def conditions(obj: dict) -> dict[str, dict]:
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}


def events(c: ClusterRun, name: str) -> list[tuple[str, str]]:
    items = c.get("events", "--field-selector", f"involvedObject.kind=Job,"
                  f"involvedObject.name={name}")["items"]
    return [(e["reason"], e["message"]) for e in items]


def test_completions_and_parallelism(cluster):
    c = cluster
    c.kubectl("apply", "-f", "-", input=json.dumps(
        job("three", {"completions": 3, "parallelism": 2}, ["sh", "-c", "sleep 1"])))
    seen_active = []

    def done():
        got = c.get("job", "three")
        seen_active.append(got["status"].get("active", 0))
        return "Complete" in conditions(got)
    wait_for("three completions", done, timeout=60)
    assert max(seen_active) <= 2
    pods = c.get("pods", "-l", "job-name=three")["items"]
    assert len(pods) == 3 and all(p["status"]["phase"] == "Succeeded" for p in pods)
    assert c.get("job", "three")["status"]["succeeded"] == 3
    c.kubectl("delete", "job", "three")


def test_backoff_limit_fails_the_job(cluster):
    c = cluster
    c.kubectl("apply", "-f", "-", input=json.dumps(
        job("broken", {"backoffLimit": 1}, ["sh", "-c", "exit 3"])))
    # one failure, the 10 s back-off Kubernetes has, a second failure: more than backoffLimit
    wait_for("the Failed condition", lambda: "Failed" in conditions(c.get("job", "broken")), timeout=60)
    got = c.get("job", "broken")
    failed = conditions(got)["Failed"]
    assert (failed["reason"], failed["message"]) == (
        "BackoffLimitExceeded", "Job has reached the specified backoff limit")
    assert got["status"]["failed"] == 2 and "completionTime" not in got["status"]
    assert len(c.get("pods", "-l", "job-name=broken")["items"]) == 2
    assert c.kubectl("get", "job", "broken").stdout.splitlines()[1].split()[1] == "Failed"
    wait_for("the event", lambda: ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
             in events(c, "broken"), timeout=10)
    c.kubectl("delete", "job", "broken")


def test_ttl_after_finished_deletes_job_and_pods(cluster):
    c = cluster
    c.kubectl("apply", "-f", "-", input=json.dumps(
        job("brief", {"ttlSecondsAfterFinished": 0}, ["true"])))
    started = time.monotonic()

    def gone():
        out = c.kubectl("get", "job", "brief", check=False)
        return out.returncode != 0 and "NotFound" in out.stderr
    wait_for("the job gone", gone, timeout=60)
    wait_for("its pods gone", lambda: not c.get("pods", "-l", "job-name=brief")["items"], timeout=30)
    assert time.monotonic() - started < 60


def test_create_job_reaches_a_service_and_wait_and_logs(cluster):
    c = cluster
    c.kubectl("wait", "--for=condition=Ready", "pod/web", "--timeout=60s")
    out = c.kubectl("create", "job", "smoke", "--image=busybox", "--",
                    "wget", "-qO-", "http://web/hostname")
    assert out.stdout.strip() == "job.batch/smoke created"
    out = c.kubectl("wait", "--for=condition=complete", "job/smoke", "--timeout=60s")
    assert out.stdout.strip() == "job.batch/smoke condition met"
    assert c.kubectl("logs", "job/smoke").stdout.strip() == "web"

    got = c.get("job", "smoke")
    assert got["status"]["succeeded"] == 1 and got["status"]["active"] == 0
    assert got["status"]["startTime"] <= got["status"]["completionTime"]
    conds = conditions(got)
    assert [k for k in conds] == ["SuccessCriteriaMet", "Complete"]
    assert conds["Complete"]["reason"] == "CompletionsReached"
    uid = got["metadata"]["uid"]
    assert got["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    pods = c.get("pods", "-l", "job-name=smoke")["items"]
    assert len(pods) == 1 and pods[0]["metadata"]["name"].startswith("smoke-")
    assert pods[0]["status"]["phase"] == "Succeeded"
    assert pods[0]["metadata"]["labels"]["batch.kubernetes.io/controller-uid"] == uid

    table = c.kubectl("get", "jobs").stdout.splitlines()
    assert table[0].split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert table[1].split()[:3] == ["smoke", "Complete", "1/1"]
    wide = c.kubectl("get", "job", "smoke", "-o", "wide").stdout.splitlines()
    assert wide[0].split()[5:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    describe = c.kubectl("describe", "job", "smoke").stdout
    assert "Pods Statuses:    0 Active (0 Ready) / 1 Succeeded / 0 Failed" in describe
    wait_for("the Completed event", lambda: ("Completed", "Job completed") in events(c, "smoke"), timeout=10)
    assert ("SuccessfulCreate", f"Created pod: {pods[0]['metadata']['name']}") in \
        events(c, "smoke")
    c.kubectl("delete", "job", "smoke")
    wait_for("the pods gone", lambda: not c.get("pods", "-l", "job-name=smoke")["items"], timeout=30)
