"""A StatefulSet behind a headless Service on a real cluster: stable names, hostnames and DNS
records, ordered creation, scale down from the highest ordinal, a deleted pod made again with
its name, cascading deletion. Real kubectl throughout."""
from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
import yaml

from harness import ROOT, ClusterRun, cluster_up, stop_process, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")

AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.47"
EXAMPLE = ROOT / "examples" / "apps" / "statefulset.yaml"   # headless Service nginx + web
STATEFULSET = [d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d["kind"] == "StatefulSet"][0]
CLIENT = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "dns-client"},
          "spec": {"terminationGracePeriodSeconds": 0,
                   "containers": [{"name": "c", "image": AGNHOST, "args": ["pause"]}]}}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with cluster_up(tmp_path_factory.mktemp("sts"), "s") as c:
        yield c


def pods(c: ClusterRun) -> dict[str, dict]:
    return {p["metadata"]["name"]: p for p in c.get("pods", "-l", "app=nginx")["items"]}


def ready(pod: dict) -> str | None:
    """lastTransitionTime of the Ready condition when the pod is Ready."""
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond["type"] == "Ready" and cond["status"] == "True":
            return cond["lastTransitionTime"]
    return None


def resolve(c: ClusterRun, name: str) -> set[str]:
    out = c.kubectl("exec", "dns-client", "--", "getent", "ahostsv4", name, check=False)
    return {line.split()[0] for line in out.stdout.splitlines() if line.strip()}


def json_stream(text: str) -> list[dict]:
    """The objects of concatenated JSON documents (what `kubectl get -w -o json` prints)."""
    decoder, out, i = json.JSONDecoder(), [], 0
    while (i := len(text) - len(text[i:].lstrip())) < len(text):
        obj, i = decoder.raw_decode(text, i)
        out.append(obj)
    return out


def events(c: ClusterRun, reason: str) -> list[str]:
    items = c.get("events", "--field-selector", "involvedObject.kind=StatefulSet")["items"]
    items.sort(key=lambda e: (e.get("firstTimestamp") or "", e["metadata"]["name"]))
    return [e["message"] for e in items if e["reason"] == reason]


def test_statefulset_identity_order_dns_and_scaling(cluster):
    c = cluster
    c.kubectl("apply", "-f", "-", input=json.dumps(CLIENT))
    c.kubectl("apply", "-f", str(EXAMPLE))
    out = c.kubectl("rollout", "status", "sts/web", "--timeout=60s")
    assert out.stdout.strip().endswith("partitioned roll out complete: 3 new pods have been "
                                       "updated...")
    table = c.kubectl("get", "sts", "web").stdout.split("\n")
    assert table[0].split() == ["NAME", "READY", "AGE"] and table[1].split()[:2] == ["web", "3/3"]

    # names, hostnames, subdomain and identity labels
    got = pods(c)
    assert sorted(got) == ["web-0", "web-1", "web-2"]
    for name, pod in got.items():
        assert pod["spec"]["hostname"] == name and pod["spec"]["subdomain"] == "nginx"
        labels = pod["metadata"]["labels"]
        assert labels["statefulset.kubernetes.io/pod-name"] == name
        assert labels["apps.kubernetes.io/pod-index"] == name[-1]
        assert labels["controller-revision-hash"].startswith("web-")
        ref = pod["metadata"]["ownerReferences"][0]
        assert (ref["kind"], ref["name"], ref["controller"]) == ("StatefulSet", "web", True)
    assert c.kubectl("exec", "web-1", "--", "hostname").stdout.strip() == "web-1"
    # OrderedReady: each pod was made only once the one before was Ready
    for lower, higher in (("web-0", "web-1"), ("web-1", "web-2")):
        assert got[higher]["metadata"]["creationTimestamp"] >= ready(got[lower])
    assert events(c, "SuccessfulCreate") == [
        f"create Pod web-{i} in StatefulSet web successful" for i in range(3)]
    sts = c.get("sts", "web")
    assert sts["status"]["currentRevision"] == sts["status"]["updateRevision"] == \
        got["web-0"]["metadata"]["labels"]["controller-revision-hash"]
    history = c.kubectl("rollout", "history", "sts/web").stdout.split("\n")
    assert history[1].split() == ["REVISION", "CHANGE-CAUSE"] and history[2].split()[0] == "1"

    # DNS: each pod by its stable name, the headless Service as all of them
    c.kubectl("wait", "--for=condition=Ready", "pod/dns-client", "--timeout=30s")
    ips = {name: pod["status"]["podIP"] for name, pod in got.items()}
    wait_for("web-1's record", lambda: resolve(c, "web-1.nginx.default.svc.cluster.local")
             == {ips["web-1"]}, timeout=15)
    assert resolve(c, "web-0.nginx") == {ips["web-0"]}        # through the search path
    assert resolve(c, "nginx") == set(ips.values())

    # a rolling update replaces the pods from the highest ordinal down, one at a time
    c.kubectl("rollout", "restart", "sts/web")
    out = c.kubectl("rollout", "status", "sts/web", "--timeout=60s")
    assert "partitioned roll out complete: 3 new pods have been updated..." in out.stdout
    updated = pods(c)
    new_rev = c.get("sts", "web")["status"]["updateRevision"]
    assert new_rev != sts["status"]["updateRevision"]
    assert {p["metadata"]["labels"]["controller-revision-hash"] for p in updated.values()} == \
        {new_rev}
    assert ready(updated["web-2"]) <= updated["web-1"]["metadata"]["creationTimestamp"]
    assert ready(updated["web-1"]) <= updated["web-0"]["metadata"]["creationTimestamp"]
    assert len(c.kubectl("rollout", "history", "sts/web").stdout.strip().split("\n")) == 4

    # scale down: web-2 goes (terminating, then deleted) before web-1 starts terminating
    watch = subprocess.Popen(["kubectl", "get", "pods", "-l", "app=nginx", "--watch-only",
                              "--output-watch-events", "-o", "json"], stdout=subprocess.PIPE,
                             text=True, env=dict(c.env, KUBECONFIG=str(c.dir / "kubeconfig")))
    try:
        time.sleep(0.5)      # the watch has started
        c.kubectl("scale", "sts", "web", "--replicas=1")
        wait_for("only web-0", lambda: sorted(pods(c)) == ["web-0"], timeout=30)
        time.sleep(0.2)
    finally:
        stop_process(watch)
    seen = [(e["type"], e["object"]["metadata"]["name"],
             bool(e["object"]["metadata"].get("deletionTimestamp")))
            for e in json_stream(watch.stdout.read())]
    going = [name for kind, name, terminating in seen if kind == "DELETED" or terminating]
    assert going and going.index("web-1") > max(i for i, n in enumerate(going) if n == "web-2")
    # (the order is the watch's; repeats of an Event are counted into one)
    assert {"delete Pod web-2 in StatefulSet web successful",
            "delete Pod web-1 in StatefulSet web successful"} <= set(events(c, "SuccessfulDelete"))

    # a deleted pod comes back with its name and its DNS name
    old_uid = updated["web-0"]["metadata"]["uid"]
    c.kubectl("delete", "pod", "web-0", "--wait=false")
    back = wait_for("web-0 again", lambda: [
        p for p in pods(c).values()
        if p["metadata"]["uid"] != old_uid and ready(p)], timeout=30)[0]
    assert back["metadata"]["name"] == "web-0" and back["spec"]["hostname"] == "web-0"
    wait_for("web-0's record", lambda: resolve(c, "web-0.nginx") ==
             {back["status"]["podIP"]}, timeout=15)

    # deleting the set removes its pods (garbage collection through ownerReferences)
    c.kubectl("delete", "sts", "web", "--wait=false")
    wait_for("no pods", lambda: not pods(c), timeout=30)
    c.kubectl("delete", "svc", "nginx")
    c.kubectl("delete", "pod", "dns-client", "--wait=false")


def test_validation_in_kubernetes_words(cluster):
    bad = json.loads(json.dumps(STATEFULSET))
    bad["metadata"]["name"] = "bad"
    bad["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    out = cluster.kubectl("apply", "-f", "-", input=json.dumps(bad), check=False)
    assert out.returncode != 0
    assert "spec.template.metadata.labels: Invalid value: " in out.stderr
    assert "`selector` does not match template `labels`" in out.stderr
    good = json.loads(json.dumps(STATEFULSET))
    good["metadata"]["name"] = "imm"
    good["spec"]["replicas"] = 0
    cluster.kubectl("apply", "-f", "-", input=json.dumps(good))
    try:
        out = cluster.kubectl("patch", "sts", "imm", "-p", '{"spec":{"serviceName":"x"}}',
                              check=False)
        assert "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', " \
               "'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' " \
               "and 'minReadySeconds' are forbidden" in out.stderr
    finally:
        cluster.kubectl("delete", "sts", "imm")


def test_volume_claim_templates_are_accepted_but_make_no_claim(cluster):
    claims = json.loads(json.dumps(STATEFULSET))
    claims["metadata"]["name"] = "claims"
    claims["spec"].update(replicas=1, selector={"matchLabels": {"app": "claims"}})
    claims["spec"]["template"]["metadata"]["labels"] = {"app": "claims"}
    claims["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "data", "mountPath": "/data"}]
    claims["spec"]["volumeClaimTemplates"] = [{
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]
    cluster.kubectl("apply", "-f", "-", input=json.dumps(claims))
    try:
        cluster.kubectl("rollout", "status", "sts/claims", "--timeout=30s")
        pod = cluster.get("pod", "claims-0")
        assert {"name": "data", "persistentVolumeClaim": {"claimName": "data-claims-0"}} in \
            pod["spec"]["volumes"]
        warning = wait_for("the warning", lambda: [
            e for e in cluster.get("events", "--field-selector",
                                   "involvedObject.name=claims")["items"]
            if e["reason"] == "VolumeClaimTemplatesIgnored"])[0]
        assert warning["type"] == "Warning"
        assert "no PersistentVolumeClaim is made for volumeClaimTemplates [data]" in \
            warning["message"]
    finally:
        cluster.kubectl("delete", "sts", "claims", "--wait=false")
