"""Issue 2 acceptance with the real kubectl: the seed's Services, apply semantics, errors."""
from __future__ import annotations

import ipaddress
import json
import subprocess
import time

import pytest

from harness import ROOT

pytestmark = pytest.mark.stores("sqlite", "etcd")

SEED = str(ROOT / "examples" / "seed")
VERBATIM = ROOT / "examples" / "seed-verbatim"


def svc_manifest(name: str, ports: list[dict], **spec) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                       "spec": {"ports": ports, **spec}})


def test_apply_seed_twice_get_describe_delete(kubectl):
    out = kubectl("apply", "-f", SEED).stdout
    for name in ("service/my-service", "service/my-nodeport-service",
                 "service/my-loadbalancer-service", "service/second-service",
                 "ingress.networking.k8s.io/my-ingress"):
        assert f"{name} created" in out
    again = kubectl("apply", "-f", SEED).stdout
    assert again.count("unchanged") == 5, again

    svcs = json.loads(kubectl("get", "services", "-o", "json").stdout)["items"]
    by_name = {s["metadata"]["name"]: s for s in svcs}
    net = ipaddress.ip_network("10.96.0.0/12")
    for s in by_name.values():
        assert ipaddress.ip_address(s["spec"]["clusterIP"]) in net
    assert by_name["kubernetes"]["spec"]["clusterIP"] == "10.96.0.1"
    assert by_name["my-service"]["spec"]["clusterIP"] == "10.96.0.100"

    table = kubectl("get", "services").stdout
    assert table.splitlines()[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP",
                                             "PORT(S)", "AGE"]
    assert "80:32000/TCP" in table
    lb_row = next(line for line in table.splitlines() if line.startswith("my-loadbalancer"))
    assert "<pending>" in lb_row

    described = kubectl("describe", "svc", "my-nodeport-service").stdout
    assert "NodePort:" in described and "32000/TCP" in described
    assert "Type:                     NodePort" in described

    # get -o yaml | apply -f - keeps every allocation.
    before = by_name["my-nodeport-service"]
    yaml_text = kubectl("get", "svc", "my-nodeport-service", "-o", "yaml").stdout
    kubectl("apply", "-f", "-", input=yaml_text)
    after = json.loads(kubectl("get", "svc", "my-nodeport-service", "-o", "json").stdout)
    assert after["spec"] == before["spec"]

    out = kubectl("delete", "-f", SEED).stdout
    assert 'service "my-nodeport-service" deleted' in out
    left = kubectl("get", "svc", "-o", "name").stdout.split()
    assert left == ["service/kubernetes"]
    # IP and nodePort were freed: the same requests succeed again.
    kubectl("apply", "-f", SEED)
    kubectl("delete", "-f", SEED)


def test_get_watch_streams_changes(kubectl, apiserver):
    env = kubectl.env
    proc = subprocess.Popen(["kubectl", "get", "svc", "-w"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        time.sleep(1.5)
        kubectl("create", "-f", "-", input=svc_manifest("watched", [{"port": 80}]))
        kubectl("delete", "svc", "watched")
        time.sleep(1.5)
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    lines = [l for l in out.splitlines() if l.startswith("watched")]
    assert len(lines) >= 2, (out, err)
    assert "kubernetes" in out


def test_server_side_apply(kubectl):
    manifest = svc_manifest("ssa", [{"name": "http", "port": 80}], selector={"app": "a"})
    out = kubectl("apply", "--server-side", "-f", "-", input=manifest).stdout
    assert "service/ssa serverside-applied" in out
    changed = manifest.replace('"app": "a"', '"app": "b"')
    kubectl("apply", "--server-side", "-f", "-", input=changed)
    got = json.loads(kubectl("get", "svc", "ssa", "-o", "json").stdout)
    assert got["spec"]["selector"] == {"app": "b"}


@pytest.mark.parametrize("name,manifest,expected", [
    ("np99", svc_manifest("np99", [{"port": 80, "nodePort": 99}], type="NodePort"),
     'The Service "np99" is invalid: spec.ports[0].nodePort: Invalid value: 99: provided port '
     'is not in the valid range. The range of valid ports is 30000-32767'),
    ("dup", svc_manifest("dup", [{"name": "a", "port": 80}, {"name": "b", "port": 80}]),
     # Kubernetes reports the (protocol, port) key it compared, not the whole port.
     'The Service "dup" is invalid: spec.ports[1]: Duplicate value: core.ServicePort{Name:"", '
     'Protocol:"TCP", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, '
     'IntVal:0, StrVal:""}, NodePort:0}'),
    ("noname", svc_manifest("noname", [{"port": 80}, {"port": 81}]),
     'The Service "noname" is invalid: \n* spec.ports[0].name: Required value\n'
     '* spec.ports[1].name: Required value'),
    ("range", svc_manifest("range", [{"port": 80}], clusterIP="123.123.123.123"),
     'The Service "range" is invalid: spec.clusterIPs: Invalid value: []string{'
     '"123.123.123.123"}: failed to allocate IP 123.123.123.123: the provided IP '
     '(123.123.123.123) is not in the valid range. The range of valid IPs is 10.96.0.0/12'),
])
def test_kubernetes_error_messages(kubectl, name, manifest, expected):
    proc = kubectl("create", "-f", "-", input=manifest, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == expected


def test_taken_node_port(kubectl):
    kubectl("create", "-f", "-", input=svc_manifest(
        "first", [{"port": 80, "nodePort": 30080}], type="NodePort"))
    proc = kubectl("create", "-f", "-", check=False, input=svc_manifest(
        "second", [{"port": 80, "nodePort": 30080}], type="NodePort"))
    assert proc.stderr.strip() == ('The Service "second" is invalid: spec.ports[0].nodePort: '
                                   'Invalid value: 30080: provided port is already allocated')


def test_seed_verbatim_snippets_get_clear_errors(kubectl):
    proc = kubectl("apply", "-f", str(VERBATIM / "clusterip-no-name.yaml"), check=False)
    assert proc.returncode == 1
    assert "resource name may not be empty" in proc.stderr     # kubectl's own check
    proc = kubectl("create", "-f", str(VERBATIM / "clusterip-no-name.yaml"), check=False)
    assert proc.stderr.strip() == ('The Service "" is invalid: metadata.name: Required value: '
                                   'name or generateName is required')

    proc = kubectl("apply", "-f", str(VERBATIM / "clusterip-misspelled.yaml"), check=False)
    assert proc.returncode == 1
    assert 'unknown field "spec.clusterIp"' in proc.stderr
    assert '"spec.clusterIP"' in proc.stderr   # the hint

    proc = kubectl("apply", "-f", str(VERBATIM / "clusterip-out-of-range.yaml"), check=False)
    assert proc.returncode == 1
    assert ("the provided IP (123.123.123.123) is not in the valid range. The range of valid "
            "IPs is 10.96.0.0/12") in proc.stderr
