import json
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

import pytest

from nanokube.api import openapi

REF = "#/components/schemas/"
META = "io.k8s.apimachinery.pkg.apis.meta.v1"


@dataclass
class FakeStrategy:
    group: str
    kind: str
    plural: str
    namespaced: bool = True
    has_status: bool = False
    served_versions: tuple = ("v1",)


STRATEGIES = [
    FakeStrategy("", "Service", "services", has_status=True),
    FakeStrategy("", "Namespace", "namespaces", namespaced=False, has_status=True),
    FakeStrategy("", "ConfigMap", "configmaps"),
    FakeStrategy("apps", "Deployment", "deployments", has_status=True),
    FakeStrategy("networking.k8s.io", "Ingress", "ingresses", has_status=True,
                 served_versions=("v1", "v1beta1")),
    FakeStrategy("networking.k8s.io", "IngressClass", "ingressclasses", namespaced=False),
]
GROUPS = [("", "v1"), ("apps", "v1"), ("networking.k8s.io", "v1"),
          ("networking.k8s.io", "v1beta1")]


def refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def patch_operation_for(doc, gvk):
    """What kubectl's query-param verifier looks for: a PATCH with the GVK and fieldValidation."""
    for item in doc["paths"].values():
        op = item.get("patch")
        if op and op["x-kubernetes-group-version-kind"] == gvk and \
                any(p["name"] == "fieldValidation" for p in op["parameters"]):
            return op
    return None


# ---- index -------------------------------------------------------------------------------------

def test_index_paths_and_hashes():
    idx = openapi.index(GROUPS, STRATEGIES)
    assert set(idx["paths"]) == {"api/v1", "apis/apps/v1", "apis/networking.k8s.io/v1",
                                 "apis/networking.k8s.io/v1beta1"}
    url = idx["paths"]["api/v1"]["serverRelativeURL"]
    doc = openapi.group_version_doc(STRATEGIES, "", "v1")
    assert url == f"/openapi/v3/api/v1?hash={openapi.doc_hash(doc)}"
    assert idx["paths"]["apis/apps/v1"]["serverRelativeURL"].startswith(
        "/openapi/v3/apis/apps/v1?hash=")
    assert openapi.index(GROUPS, STRATEGIES) == idx     # stable


def test_hash_changes_with_the_document():
    before = openapi.index([("", "v1")], STRATEGIES)["paths"]["api/v1"]
    changed = [FakeStrategy("", "Service", "services", has_status=False)] + STRATEGIES[1:]
    after = openapi.index([("", "v1")], changed)["paths"]["api/v1"]
    assert before != after
    # without strategies the URL still carries a hash, distinct per group version
    plain = openapi.index(GROUPS)["paths"]
    assert len({p["serverRelativeURL"].split("hash=")[1] for p in plain.values()}) == 4


# ---- paths -------------------------------------------------------------------------------------

def test_namespaced_resource_paths():
    doc = openapi.group_version_doc(STRATEGIES, "", "v1")
    paths = doc["paths"]
    coll = "/api/v1/namespaces/{namespace}/services"
    assert set(paths[coll]) == {"get", "post", "delete", "parameters"}
    assert set(paths[coll + "/{name}"]) == {"get", "put", "patch", "delete", "parameters"}
    assert set(paths[coll + "/{name}/status"]) == {"get", "put", "patch", "parameters"}
    assert paths["/api/v1/services"]["get"]["operationId"] == \
        "listCoreV1ServiceForAllNamespaces"
    assert paths[coll]["delete"]["x-kubernetes-action"] == "deletecollection"
    assert paths[coll + "/{name}"]["patch"]["operationId"] == "patchCoreV1NamespacedService"
    assert [p["name"] for p in paths[coll + "/{name}"]["parameters"]] == \
        ["name", "namespace", "pretty"]
    # ConfigMap has no status subresource; other groups are not in the core document
    assert "/api/v1/namespaces/{namespace}/configmaps/{name}/status" not in paths
    assert not any("deployments" in p for p in paths)


def test_cluster_scoped_resource_paths():
    paths = openapi.group_version_doc(STRATEGIES, "", "v1")["paths"]
    assert "/api/v1/namespaces/{name}" in paths
    assert "/api/v1/namespaces/{name}/status" in paths
    assert paths["/api/v1/namespaces"]["get"]["operationId"] == "listCoreV1Namespace"
    paths = openapi.group_version_doc(STRATEGIES, "networking.k8s.io", "v1")["paths"]
    assert paths["/apis/networking.k8s.io/v1/ingressclasses/{name}"]["patch"][
        "operationId"] == "patchNetworkingV1IngressClass"


def test_patch_operation_as_kubectl_needs_it():
    doc = openapi.group_version_doc(STRATEGIES, "", "v1")
    op = patch_operation_for(doc, {"group": "", "kind": "Service", "version": "v1"})
    assert op is not None
    assert set(op["requestBody"]["content"]) == {
        "application/json-patch+json", "application/merge-patch+json",
        "application/strategic-merge-patch+json", "application/apply-patch+yaml"}
    assert {p["name"] for p in op["parameters"]} == \
        {"dryRun", "fieldManager", "fieldValidation", "force"}
    assert op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"] == \
        REF + "io.k8s.api.core.v1.Service"
    for method in ("post", "put"):
        ops = [item[method] for item in doc["paths"].values() if method in item]
        assert ops and all(any(p["name"] == "fieldValidation" for p in o["parameters"])
                           for o in ops)
    apps = openapi.group_version_doc(STRATEGIES, "apps", "v1")
    assert patch_operation_for(apps, {"group": "apps", "kind": "Deployment", "version": "v1"})
    assert patch_operation_for(apps, {"group": "", "kind": "Service", "version": "v1"}) is None


def test_versions_are_separate_documents():
    v1 = openapi.group_version_doc(STRATEGIES, "networking.k8s.io", "v1")
    beta = openapi.group_version_doc(STRATEGIES, "networking.k8s.io", "v1beta1")
    gvk = {"group": "networking.k8s.io", "kind": "Ingress", "version": "v1beta1"}
    assert patch_operation_for(beta, gvk)
    assert not any("ingressclasses" in p for p in beta["paths"])
    assert "io.k8s.api.networking.v1beta1.IngressBackend" in beta["components"]["schemas"]
    assert "io.k8s.api.networking.v1beta1.Ingress" not in v1["components"]["schemas"]
    backend = beta["components"]["schemas"]["io.k8s.api.networking.v1beta1.IngressBackend"]
    assert backend["properties"]["servicePort"]["allOf"] == [
        {"$ref": REF + "io.k8s.apimachinery.pkg.util.intstr.IntOrString"}]


# ---- components.schemas ------------------------------------------------------------------------

def test_every_ref_resolves():
    for group, version in GROUPS:
        doc = openapi.group_version_doc(STRATEGIES, group, version)
        schemas = doc["components"]["schemas"]
        for ref in refs(doc):
            assert ref.startswith(REF) and ref[len(REF):] in schemas, ref


def test_service_schemas():
    schemas = openapi.group_version_doc(STRATEGIES, "", "v1")["components"]["schemas"]
    svc = schemas["io.k8s.api.core.v1.Service"]
    assert svc["x-kubernetes-group-version-kind"] == [
        {"group": "", "kind": "Service", "version": "v1"}]
    assert svc["properties"]["spec"]["allOf"] == [{"$ref": REF + "io.k8s.api.core.v1.ServiceSpec"}]
    assert schemas["io.k8s.api.core.v1.ServiceList"]["x-kubernetes-group-version-kind"][0][
        "kind"] == "ServiceList"
    ports = schemas["io.k8s.api.core.v1.ServiceSpec"]["properties"]["ports"]
    assert ports["type"] == "array"
    assert ports["items"] == {"allOf": [{"$ref": REF + "io.k8s.api.core.v1.ServicePort"}]}
    assert ports["x-kubernetes-patch-merge-key"] == "port"
    assert ports["x-kubernetes-patch-strategy"] == "merge"
    assert ports["x-kubernetes-list-type"] == "map"
    assert ports["x-kubernetes-list-map-keys"] == ["port", "protocol"]
    port = schemas["io.k8s.api.core.v1.ServicePort"]
    assert port["required"] == ["port"]
    assert port["properties"]["port"]["type"] == "integer"
    assert port["properties"]["name"]["type"] == "string"
    assert port["properties"]["targetPort"]["allOf"] == [
        {"$ref": REF + "io.k8s.apimachinery.pkg.util.intstr.IntOrString"}]
    assert schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"][
        "x-kubernetes-int-or-string"] is True
    selector = schemas["io.k8s.api.core.v1.ServiceSpec"]["properties"]["selector"]
    assert selector == {"type": "object", "additionalProperties": {"type": "string"},
                        "description": selector["description"]}
    meta = schemas[f"{META}.ObjectMeta"]["properties"]
    assert meta["creationTimestamp"]["allOf"] == [{"$ref": REF + f"{META}.Time"}]
    assert meta["ownerReferences"]["x-kubernetes-patch-merge-key"] == "uid"
    assert {"group": "", "kind": "DeleteOptions", "version": "v1"} in \
        schemas[f"{META}.DeleteOptions"]["x-kubernetes-group-version-kind"]
    assert f"{META}.Patch" in schemas and f"{META}.Status" in schemas


def test_deployment_schemas_carry_pod_merge_keys():
    schemas = openapi.group_version_doc(STRATEGIES, "apps", "v1")["components"]["schemas"]
    pod_spec = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]
    assert pod_spec["containers"]["x-kubernetes-patch-merge-key"] == "name"
    assert pod_spec["volumes"]["x-kubernetes-patch-strategy"] == "merge,retainKeys"
    container = schemas["io.k8s.api.core.v1.Container"]["properties"]
    assert container["env"]["x-kubernetes-patch-merge-key"] == "name"
    assert container["ports"]["x-kubernetes-patch-merge-key"] == "containerPort"
    limits = schemas["io.k8s.api.core.v1.ResourceRequirements"]["properties"]["limits"]
    assert limits["additionalProperties"] == {
        "allOf": [{"$ref": REF + "io.k8s.apimachinery.pkg.api.resource.Quantity"}]}
    assert schemas["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["strategy"][
        "x-kubernetes-patch-strategy"] == "retainKeys"
    assert "io.k8s.api.core.v1.Service" not in schemas


def test_document_is_openapi_3():
    doc = openapi.group_version_doc(STRATEGIES, "", "v1")
    assert doc["openapi"].startswith("3.0")
    assert doc["info"]["title"] == "Kubernetes"
    json.dumps(doc)      # plain JSON
    doc["paths"].clear()  # a copy: the cache is not affected
    assert openapi.group_version_doc(STRATEGIES, "", "v1")["paths"]


def test_validates_with_openapi_spec_validator_when_installed():
    validator = pytest.importorskip("openapi_spec_validator")
    for group, version in GROUPS:
        validator.validate(openapi.group_version_doc(STRATEGIES, group, version))


# ---- with the real kubectl (loopback only) -----------------------------------------------------

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


class FakeServer(BaseHTTPRequestHandler):
    """Just enough of an API server for kubectl explain and client-side apply."""
    live: dict = {}
    patches: list = []

    def reply(self, obj, code=200):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = urlparse(self.path).path
        groups = [g for g, _ in GROUPS if g]
        if path == "/api":
            return self.reply({"kind": "APIVersions", "versions": ["v1"]})
        if path == "/apis":
            return self.reply({"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": g, "versions": [{"groupVersion": f"{g}/v1", "version": "v1"}],
                 "preferredVersion": {"groupVersion": f"{g}/v1", "version": "v1"}}
                for g in dict.fromkeys(groups)]})
        for group, version in GROUPS:
            if path == "/" + openapi.gv_path(group, version):
                return self.reply({"kind": "APIResourceList",
                                   "groupVersion": f"{group}/{version}".lstrip("/"),
                                   "resources": [
                    {"name": s.plural, "singularName": s.kind.lower(), "kind": s.kind,
                     "namespaced": s.namespaced, "verbs": ["get", "list", "patch", "create"]}
                    for s in STRATEGIES if s.group == group]})
            if path == "/openapi/v3/" + openapi.gv_path(group, version):
                return self.reply(openapi.group_version_doc(STRATEGIES, group, version))
        if path == "/openapi/v3":
            return self.reply(openapi.index(GROUPS, STRATEGIES))
        if path in self.live:
            return self.reply(self.live[path])
        self.reply({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "reason": "NotFound", "code": 404}, 404)

    def do_PATCH(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.patches.append((self.path, self.headers["Content-Type"], json.loads(body)))
        self.reply(self.live[urlparse(self.path).path])

    def log_message(self, *args):
        pass


@pytest.fixture
def kubectl(tmp_path):
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {**os.environ, "HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "none")}

    def run(*args, stdin=None):
        return subprocess.run(["kubectl", f"--server=http://127.0.0.1:{server.server_port}",
                               *args], input=stdin, capture_output=True, text=True, env=env,
                              timeout=60)
    yield run
    server.shutdown()
    server.server_close()


def test_kubectl_explain(kubectl):
    out = kubectl("explain", "service.spec")
    assert out.returncode == 0, out.stderr
    assert "FIELD: spec <ServiceSpec>" in out.stdout
    assert "clusterIP\t<string>" in out.stdout and "ports\t<[]ServicePort>" in out.stdout
    out = kubectl("explain", "service.spec.ports.targetPort")
    assert "<IntOrString>" in out.stdout, out.stderr


def test_kubectl_apply_builds_strategic_merge_patch_from_our_schemas(kubectl):
    applied = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "x", "namespace": "default"},
               "spec": {"ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}]}}
    live = json.loads(json.dumps(applied))
    live["metadata"].update(resourceVersion="5", annotations={LAST_APPLIED: json.dumps(applied)})
    live["spec"]["clusterIP"] = "10.96.0.5"
    FakeServer.live = {"/api/v1/namespaces/default/services/x": live}
    FakeServer.patches = []
    manifest = json.dumps({**applied, "spec": {"ports": [
        {"name": "https", "port": 443, "targetPort": 8443}, {"name": "m", "port": 9090}]}})
    out = kubectl("apply", "-f", "-", stdin=manifest)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "service/x configured"
    [(url, content_type, patch)] = FakeServer.patches
    assert "fieldValidation=Strict" in url      # found fieldValidation in our PATCH operation
    assert content_type == "application/strategic-merge-patch+json"
    spec = patch["spec"]
    assert spec["$setElementOrder/ports"] == [{"port": 443}, {"port": 9090}]
    assert {"$patch": "delete", "port": 80} in spec["ports"]
    assert {"port": 443, "targetPort": 8443} in spec["ports"]
