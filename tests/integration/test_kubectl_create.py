"""`kubectl create <kind>` with the real kubectl: its typed clients send Kubernetes protobuf
bodies (application/vnd.kubernetes.protobuf), which the server must decode. No root needed."""
from __future__ import annotations

import base64
import ipaddress
import json

import pytest

from harness import require_kubectl


@pytest.fixture(autouse=True)
def _kubectl_installed():
    require_kubectl()


def get_json(kubectl, *args) -> dict:
    return json.loads(kubectl("get", *args, "-o", "json").stdout)


def test_create_namespace(kubectl):
    assert "namespace/pb-ns created" in kubectl("create", "namespace", "pb-ns").stdout
    ns = get_json(kubectl, "namespace", "pb-ns")
    assert ns["metadata"]["name"] == "pb-ns"
    assert ns["status"]["phase"] == "Active"
    # and objects can be created in it
    kubectl("create", "configmap", "in-ns", "--from-literal=a=b", "-n", "pb-ns")
    assert get_json(kubectl, "configmap", "in-ns", "-n", "pb-ns")["data"] == {"a": "b"}


def test_create_service_clusterip(kubectl):
    out = kubectl("create", "service", "clusterip", "pb-svc", "--tcp=1234:5678").stdout
    assert "service/pb-svc created" in out
    svc = get_json(kubectl, "service", "pb-svc")
    spec = svc["spec"]
    assert ipaddress.ip_address(spec["clusterIP"]) in ipaddress.ip_network("10.96.0.0/12")
    assert spec["clusterIPs"] == [spec["clusterIP"]]
    assert spec["type"] == "ClusterIP"
    assert spec["sessionAffinity"] == "None"  # defaulted, as for an absent field
    assert spec["ports"] == [{"name": "1234-5678", "port": 1234, "protocol": "TCP",
                              "targetPort": 5678}]
    assert spec["selector"] == {"app": "pb-svc"}
    assert svc["metadata"]["labels"] == {"app": "pb-svc"}


def test_create_service_nodeport_and_headless(kubectl):
    kubectl("create", "service", "nodeport", "pb-np", "--tcp=1234:5678", "--node-port=30111")
    port = get_json(kubectl, "service", "pb-np")["spec"]["ports"][0]
    assert (port["port"], port["targetPort"], port["nodePort"]) == (1234, 5678, 30111)
    kubectl("create", "service", "clusterip", "pb-headless", "--clusterip=None")
    assert get_json(kubectl, "service", "pb-headless")["spec"]["clusterIP"] == "None"


def test_create_deployment(kubectl):
    out = kubectl("create", "deployment", "pb-dep", "--image=registry.example/pb-img:v7",
                  "--replicas=3", "--port=4321").stdout
    assert "deployment.apps/pb-dep created" in out
    dep = get_json(kubectl, "deployment", "pb-dep")
    spec = dep["spec"]
    assert dep["metadata"]["labels"] == {"app": "pb-dep"}
    assert spec["replicas"] == 3
    assert spec["selector"] == {"matchLabels": {"app": "pb-dep"}}
    assert spec["template"]["metadata"]["labels"] == {"app": "pb-dep"}
    (container,) = spec["template"]["spec"]["containers"]
    assert container["name"] == "pb-img"
    assert container["image"] == "registry.example/pb-img:v7"
    assert container["ports"][0]["containerPort"] == 4321
    assert spec["strategy"]["type"] == "RollingUpdate"  # defaulted


def test_create_configmap(kubectl):
    kubectl("create", "configmap", "pb-cm", "--from-literal=a=b", "--from-literal=k2=v2")
    assert get_json(kubectl, "configmap", "pb-cm")["data"] == {"a": "b", "k2": "v2"}


def test_create_secret_generic(kubectl):
    kubectl("create", "secret", "generic", "pb-secret", "--from-literal=a=b",
            "--from-literal=user=s3cr3t")
    secret = get_json(kubectl, "secret", "pb-secret")
    assert secret["type"] == "Opaque"
    assert {k: base64.b64decode(v).decode() for k, v in secret["data"].items()} == {
        "a": "b", "user": "s3cr3t"}


def test_create_serviceaccount(kubectl):
    assert "serviceaccount/pb-sa created" in kubectl("create", "serviceaccount",
                                                     "pb-sa").stdout
    assert get_json(kubectl, "serviceaccount", "pb-sa")["metadata"]["name"] == "pb-sa"


def test_create_ingress(kubectl):
    out = kubectl("create", "ingress", "pb-ing", "--class=nginxclass",
                  "--rule=host.example/pathx*=pb-svc:1234,tls=tlssec",
                  "--rule=h2.example/exact=other:portname").stdout
    assert "ingress.networking.k8s.io/pb-ing created" in out
    spec = get_json(kubectl, "ingress", "pb-ing")["spec"]
    assert spec["ingressClassName"] == "nginxclass"
    first, second = spec["rules"]
    assert first["host"] == "host.example"
    assert first["http"]["paths"] == [{
        "path": "/pathx", "pathType": "Prefix",
        "backend": {"service": {"name": "pb-svc", "port": {"number": 1234}}}}]
    assert second["http"]["paths"][0]["backend"] == {
        "service": {"name": "other", "port": {"name": "portname"}}}
    assert second["http"]["paths"][0]["pathType"] == "Exact"
    assert spec["tls"] == [{"hosts": ["host.example"], "secretName": "tlssec"}]


def test_create_dry_run_server_and_duplicate(kubectl):
    out = kubectl("create", "configmap", "pb-dry", "--from-literal=a=b",
                  "--dry-run=server", "-o", "json").stdout
    assert json.loads(out)["data"] == {"a": "b"}
    assert kubectl("get", "configmap", "pb-dry", check=False).returncode != 0
    kubectl("create", "serviceaccount", "pb-twice")
    again = kubectl("create", "serviceaccount", "pb-twice", check=False)
    assert again.returncode != 0
    assert 'serviceaccounts "pb-twice" already exists' in again.stderr


def test_create_token(kubectl):
    kubectl("create", "serviceaccount", "pb-token-sa")
    token = kubectl("create", "token", "pb-token-sa", "--audience=aud-one",
                    "--duration=1234s").stdout.strip()
    header, claims, _ = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    assert claims["aud"] == ["aud-one"]
    assert claims["sub"] == "system:serviceaccount:default:pb-token-sa"
    assert claims["exp"] - claims["iat"] == 1234
