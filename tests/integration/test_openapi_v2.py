"""GET /openapi/v2 as kubectl uses it: `kubectl apply -f` of a `kind: List` (what
`kubectl get -o yaml` prints) validates every item client-side against the swagger 2.0
definitions, fetched as gnostic protobuf."""
from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request

import pytest

from harness import require_kubectl

LIST = """\
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: settings}
  data: {mode: fast}
- apiVersion: v1
  kind: Service
  metadata: {name: web}
  spec:
    selector: {app: web}
    ports: [{port: 80, targetPort: 8080}]
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: web}
  spec:
    replicas: 1
    selector: {matchLabels: {app: web}}
    template:
      metadata: {labels: {app: web}}
      spec:
        containers: [{name: web, image: nginx, ports: [{containerPort: 8080}]}]
"""


def test_apply_list_creates_every_item(kubectl):
    require_kubectl()
    out = kubectl("apply", "-f", "-", input=LIST).stdout
    assert "configmap/settings created" in out
    assert "service/web created" in out
    assert "deployment.apps/web created" in out
    got = json.loads(kubectl("get", "configmap/settings", "service/web", "deployment/web",
                             "-o", "json").stdout)
    assert [i["kind"] for i in got["items"]] == ["ConfigMap", "Service", "Deployment"]
    # What `kubectl get -o yaml` prints applies back (creationTimestamp, status, ...).
    printed = kubectl("get", "configmap/settings", "service/web", "deployment/web",
                      "-o", "yaml").stdout
    assert "kind: List" in printed
    kubectl("apply", "-f", "-", input=printed)


def test_unknown_field_in_an_item_is_refused_by_kubectl(kubectl):
    require_kubectl()
    bad = LIST.replace("    selector: {app: web}\n", "    selector: {app: web}\n    bogus: 1\n")
    proc = kubectl("apply", "-f", "-", input=bad, check=False)
    assert proc.returncode != 0
    assert 'unknown field "bogus" in io.k8s.api.core.v1.ServiceSpec' in proc.stderr
    assert "--validate=false" in proc.stderr
    assert kubectl("get", "configmap/settings", check=False).returncode != 0   # nothing made
    out = kubectl("apply", "--validate=false", "-f", "-", input=bad).stdout
    assert "service/web created" in out and "configmap/settings created" in out


def _get(apiserver, accept: str, etag: str | None = None):
    token = (apiserver.data_dir / "pki" / "tokens.csv").read_text().split(",")[0]
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    headers = {"Authorization": f"Bearer {token}", "Accept": accept}
    if etag:
        headers["If-None-Match"] = etag
    req = urllib.request.Request(f"{apiserver.url}/openapi/v2", headers=headers)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def test_json_document_and_etag(apiserver):
    status, headers, body = _get(apiserver, "application/json")
    assert status == 200 and headers["Content-Type"] == "application/json"
    doc = json.loads(body)
    assert doc["swagger"] == "2.0"
    assert doc["definitions"]["io.k8s.api.core.v1.Service"][
        "x-kubernetes-group-version-kind"] == [{"group": "", "kind": "Service", "version": "v1"}]
    assert "/api/v1/namespaces/{namespace}/services" in doc["paths"]
    assert _get(apiserver, "application/json", headers["ETag"])[0] == 304
    status, pb_headers, pb = _get(
        apiserver, "application/com.github.proto-openapi.spec.v2@v1.0+protobuf")
    assert status == 200 and pb[:5] == b"\x0a\x032.0"          # Document.swagger = "2.0"
    assert pb_headers["Content-Type"] == \
        "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    assert _get(apiserver, "text/html")[0] == 406


def test_python_client_still_works(k8s_client):
    kubernetes = pytest.importorskip("kubernetes")
    core = kubernetes.client.CoreV1Api(k8s_client)
    core.create_namespaced_config_map("default", {"metadata": {"name": "py"},
                                                  "data": {"a": "b"}})
    assert core.read_namespaced_config_map("py", "default").data == {"a": "b"}
    names = [s.metadata.name for s in core.list_namespaced_service("default").items]
    assert "kubernetes" in names
