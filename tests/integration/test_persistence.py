"""Objects, resourceVersions and allocations survive a restart of the server, also kill -9."""
from __future__ import annotations

import json
import signal

import pytest

from harness import ApiServerProcess

pytestmark = pytest.mark.stores("sqlite", "etcd")

MANIFEST = json.dumps({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "keep"},
                       "spec": {"type": "NodePort", "ports": [{"port": 80}]}})


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_restart_keeps_objects_and_allocations(tmp_path, kubectl, apiserver, sig):
    kubectl("create", "-f", "-", input=MANIFEST)
    before = json.loads(kubectl("get", "svc", "keep", "-o", "json").stdout)
    apiserver.stop(sig)
    restarted = ApiServerProcess(apiserver.data_dir, apiserver.port, apiserver.extra).start()
    try:
        after = json.loads(kubectl("get", "svc", "keep", "-o", "json").stdout)
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
        assert after["metadata"]["uid"] == before["metadata"]["uid"]
        assert after["spec"] == before["spec"]
        # The allocations were rebuilt: the same IP and nodePort cannot be taken twice.
        for field, value, message in (
                ("clusterIP", before["spec"]["clusterIP"], "provided IP is already allocated"),
                ("nodePort", before["spec"]["ports"][0]["nodePort"],
                 "provided port is already allocated")):
            spec = {"type": "NodePort", "ports": [{"port": 80}]}
            if field == "clusterIP":
                spec["clusterIP"] = value
            else:
                spec["ports"][0]["nodePort"] = value
            clash = json.dumps({"apiVersion": "v1", "kind": "Service",
                                "metadata": {"name": "clash"}, "spec": spec})
            proc = kubectl("create", "-f", "-", input=clash, check=False)
            assert message in proc.stderr
    finally:
        restarted.stop()
