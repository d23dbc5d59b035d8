"""Namespace deletion empties the namespace; ownerReferences garbage-collect dependents;
the `nanokube` CLI works against the real server."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from harness import ROOT


def _wait_gone(kubectl, *args, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if kubectl(*args, check=False).returncode != 0:
            return
        time.sleep(0.1)
    raise AssertionError(f"{args} still exists")


def test_deleting_a_namespace_deletes_its_content(kubectl):
    kubectl("create", "namespace", "doomed", check=False)  # protobuf body: may be refused
    kubectl("apply", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "doomed"}}))
    kubectl("apply", "-n", "doomed", "-f", str(ROOT / "examples" / "seed"))
    assert "my-service" in kubectl("get", "svc", "-n", "doomed").stdout
    kubectl("delete", "namespace", "doomed", "--wait=false")
    _wait_gone(kubectl, "get", "namespace", "doomed")
    assert kubectl("get", "svc", "-n", "doomed", "-o", "name").stdout.strip() == ""
    # The freed nodePort 32000 and clusterIP can be taken again in another namespace.
    kubectl("apply", "-f", str(ROOT / "examples" / "seed"))


def test_owner_references_garbage_collect_dependents(kubectl):
    owner = json.loads(kubectl("create", "-o", "json", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}})).stdout)
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
           "uid": owner["metadata"]["uid"]}
    for name in ("dep-a", "dep-b"):
        kubectl("create", "-f", "-", input=json.dumps(
            {"apiVersion": "v1", "kind": "Secret",
             "metadata": {"name": name, "ownerReferences": [ref]}}))
    orphan_owner = json.loads(kubectl("create", "-o", "json", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "orphan-owner"}})).stdout)
    kubectl("create", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "kept", "ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "orphan-owner",
             "uid": orphan_owner["metadata"]["uid"]}]}}))

    kubectl("delete", "configmap", "owner")
    _wait_gone(kubectl, "get", "secret", "dep-a")
    _wait_gone(kubectl, "get", "secret", "dep-b")

    kubectl("delete", "configmap", "orphan-owner", "--cascade=orphan")
    _wait_gone(kubectl, "get", "configmap", "orphan-owner")
    kept = json.loads(kubectl("get", "secret", "kept", "-o", "json").stdout)
    assert "ownerReferences" not in kept["metadata"]


def test_nanokube_cli_against_the_server(apiserver, tmp_path):
    env = dict(os.environ, KUBECONFIG=apiserver.kubeconfig)

    def nk(*args, check=True):
        proc = subprocess.run([sys.executable, "-m", "nanokube", *args], capture_output=True,
                              text=True, env=env, cwd=ROOT, timeout=30)
        if check:
            assert proc.returncode == 0, proc.stderr
        return proc
    out = nk("apply", "-f", "examples/seed/").stdout
    assert "service/my-service created" in out
    assert nk("apply", "-f", "examples/seed/").stdout.count("unchanged") == 5
    table = nk("get", "svc").stdout
    assert table.splitlines()[0].split()[:3] == ["NAME", "TYPE", "CLUSTER-IP"]
    assert "80:32000/TCP" in table
    assert "10.96.0.100" in nk("describe", "svc", "my-service").stdout
    got = json.loads(nk("get", "svc", "my-service", "-o", "json").stdout)
    assert got["spec"]["clusterIP"] == "10.96.0.100"
    bad = nk("apply", "-f", "examples/seed-verbatim/clusterip-out-of-range.yaml", check=False)
    assert bad.returncode == 1 and "is not in the valid range" in bad.stderr
    assert 'service "my-service" deleted' in nk("delete", "-f", "examples/seed/").stdout
