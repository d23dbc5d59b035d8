import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from nanokube.api import schema
from nanokube.api.schema import Field

REPO = Path(__file__).resolve().parents[3]


def service(**spec):
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "x", "namespace": "default", "labels": {"any.key/x": "y"}},
            "spec": {"ports": [{"port": 80, "targetPort": "http"}], **spec}}


# ---- root_type ---------------------------------------------------------------------------------

@pytest.mark.parametrize("group,version,kind,expected", [
    ("", "v1", "Service", "io.k8s.api.core.v1.Service"),
    ("", "v1", "ServiceList", "io.k8s.api.core.v1.ServiceList"),
    ("", "v1", "Event", "io.k8s.api.core.v1.Event"),
    ("", "v1", "Status", "io.k8s.apimachinery.pkg.apis.meta.v1.Status"),
    ("apps", "v1", "Deployment", "io.k8s.api.apps.v1.Deployment"),
    ("apps", "v1", "DeleteOptions", "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"),
    ("discovery.k8s.io", "v1", "EndpointSlice", "io.k8s.api.discovery.v1.EndpointSlice"),
    ("coordination.k8s.io", "v1", "Lease", "io.k8s.api.coordination.v1.Lease"),
    ("networking.k8s.io", "v1", "IngressClass", "io.k8s.api.networking.v1.IngressClass"),
    ("networking.k8s.io", "v1beta1", "Ingress", "io.k8s.api.networking.v1beta1.Ingress"),
    ("", "v1", "Ingress", None),
    ("apps", "v1beta1", "Deployment", None),
])
def test_root_type(group, version, kind, expected):
    assert schema.root_type(group, version, kind) == expected


def test_nested_types_get_kubernetes_package_names():
    types = schema.raw()["types"]
    # core types used by other groups stay core; meta types are meta
    assert schema.field("io.k8s.api.apps.v1.DeploymentSpec", "template").type == \
        "io.k8s.api.core.v1.PodTemplateSpec"
    assert schema.field("io.k8s.api.apps.v1.DeploymentSpec", "selector").type == \
        "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"
    assert schema.field("io.k8s.api.discovery.v1.EndpointSlice", "ports").type == \
        "io.k8s.api.discovery.v1.EndpointPort"
    assert schema.field("io.k8s.api.core.v1.EndpointSubset", "ports").type == \
        "io.k8s.api.core.v1.EndpointPort"
    assert schema.field("io.k8s.api.discovery.v1.Endpoint", "targetRef").type == \
        "io.k8s.api.core.v1.ObjectReference"
    assert "io.k8s.api.core.v1.ServicePort" in types
    assert not any(name.startswith("io.k8s.api.apps.v1.Pod") for name in types)


# ---- field -------------------------------------------------------------------------------------

@pytest.mark.parametrize("type_name,json_field,strategy,key", [
    ("io.k8s.api.core.v1.PodSpec", "containers", "merge", "name"),
    ("io.k8s.api.core.v1.PodSpec", "initContainers", "merge", "name"),
    ("io.k8s.api.core.v1.PodSpec", "ephemeralContainers", "merge", "name"),
    ("io.k8s.api.core.v1.PodSpec", "volumes", "merge,retainKeys", "name"),
    ("io.k8s.api.core.v1.PodSpec", "imagePullSecrets", "merge", "name"),
    ("io.k8s.api.core.v1.PodSpec", "hostAliases", "merge", "ip"),
    ("io.k8s.api.core.v1.PodSpec", "topologySpreadConstraints", "merge", "topologyKey"),
    ("io.k8s.api.core.v1.PodSpec", "tolerations", None, None),
    ("io.k8s.api.core.v1.Container", "env", "merge", "name"),
    ("io.k8s.api.core.v1.Container", "ports", "merge", "containerPort"),
    ("io.k8s.api.core.v1.Container", "volumeMounts", "merge", "mountPath"),
    ("io.k8s.api.core.v1.Container", "envFrom", None, None),
    ("io.k8s.api.core.v1.ServiceSpec", "ports", "merge", "port"),
    ("io.k8s.api.core.v1.ServiceStatus", "conditions", "merge", "type"),
    ("io.k8s.api.core.v1.NodeStatus", "addresses", "merge", "type"),
    ("io.k8s.api.core.v1.PodStatus", "conditions", "merge", "type"),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "ownerReferences", "merge", "uid"),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "finalizers", "merge", None),
    ("io.k8s.api.apps.v1.DeploymentSpec", "strategy", "retainKeys", None),
    ("io.k8s.api.apps.v1.DeploymentStatus", "conditions", "merge", "type"),
])
def test_patch_metadata(type_name, json_field, strategy, key):
    f = schema.field(type_name, json_field)
    assert (f.patch_strategy, f.patch_merge_key) == (strategy, key)


def test_list_types():
    ports = schema.field("io.k8s.api.core.v1.ServiceSpec", "ports")
    assert ports == Field("list", "io.k8s.api.core.v1.ServicePort", "merge", "port",
                          "map", ("port", "protocol"))
    assert schema.field("io.k8s.api.core.v1.Container", "ports").list_map_keys == \
        ("containerPort", "protocol")
    assert schema.field("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
                        "finalizers").list_type == "set"


def test_field_kinds():
    f = schema.field
    assert f("io.k8s.api.core.v1.Service", "spec") == \
        Field("object", "io.k8s.api.core.v1.ServiceSpec", None, None)
    assert f("io.k8s.api.core.v1.ServiceSpec", "clusterIP").kind == "scalar"
    assert f("io.k8s.api.core.v1.ServiceSpec", "clusterIPs") == \
        Field("list", None, None, None, "atomic")
    assert f("io.k8s.api.core.v1.ServiceSpec", "selector") == Field("map", None, None, None)
    for type_name, name in [("io.k8s.api.core.v1.ServicePort", "targetPort"),
                            ("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
                             "creationTimestamp"),
                            ("io.k8s.apimachinery.pkg.apis.meta.v1.ManagedFieldsEntry",
                             "fieldsV1"),
                            ("io.k8s.api.core.v1.EmptyDirVolumeSource", "sizeLimit"),
                            ("io.k8s.api.coordination.v1.LeaseSpec", "renewTime")]:
        assert f(type_name, name) == Field("any", None, None, None), (type_name, name)
    # a map of Quantity: its elements are not objects
    assert f("io.k8s.api.core.v1.ResourceRequirements", "limits") == \
        Field("map", None, None, None)
    assert f("io.k8s.api.core.v1.ServiceSpec", "clusterIp") is None
    assert f("io.k8s.api.core.v1.NoSuchType", "x") is None


def test_special_types_are_marked():
    fields = schema.raw()["types"]
    special = schema.raw()["special"]
    assert fields["io.k8s.api.core.v1.ServicePort"]["fields"]["targetPort"]["t"] == \
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
    assert fields["io.k8s.api.core.v1.ResourceRequirements"]["fields"]["limits"]["t"] == \
        "io.k8s.apimachinery.pkg.api.resource.Quantity"
    assert fields["io.k8s.api.coordination.v1.LeaseSpec"]["fields"]["acquireTime"]["t"] == \
        "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime"
    assert fields["io.k8s.api.core.v1.Event"]["fields"]["eventTime"]["t"] == \
        "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime"
    assert fields["io.k8s.api.core.v1.Event"]["fields"]["lastTimestamp"]["t"] == \
        "io.k8s.apimachinery.pkg.apis.meta.v1.Time"
    assert special["io.k8s.apimachinery.pkg.util.intstr.IntOrString"][
        "x-kubernetes-int-or-string"] is True


def test_ingress_v1beta1_types():
    f = schema.field
    backend = "io.k8s.api.networking.v1beta1.IngressBackend"
    assert f("io.k8s.api.networking.v1beta1.HTTPIngressPath", "backend").type == backend
    assert f(backend, "serviceName").kind == "scalar"
    assert f(backend, "servicePort").kind == "any"
    assert f(backend, "resource").type == "io.k8s.api.core.v1.TypedLocalObjectReference"
    spec = "io.k8s.api.networking.v1beta1.IngressSpec"
    assert {"backend", "ingressClassName", "rules", "tls"} <= set(schema.raw()["types"][spec]
                                                                  ["fields"])
    assert f("io.k8s.api.networking.v1beta1.Ingress", "status").type == \
        "io.k8s.api.networking.v1.IngressStatus"


# ---- unknown_fields ----------------------------------------------------------------------------

def test_known_service_has_no_unknown_fields():
    obj = service(clusterIP="10.96.0.1", type="NodePort", selector={"app": "x"},
                  sessionAffinityConfig={"clientIP": {"timeoutSeconds": 10}})
    obj["status"] = {"loadBalancer": {"ingress": [{"ip": "1.2.3.4", "ipMode": "VIP"}]}}
    obj["metadata"]["annotations"] = {"a": "b"}
    obj["metadata"]["managedFields"] = [{"manager": "m", "fieldsV1": {"f:spec": {"x": {}}},
                                         "time": "2024-01-01T00:00:00Z"}]
    assert schema.unknown_fields("", "v1", "Service", obj) == []


def test_unknown_fields_in_document_order():
    obj = service(clusterIp="10.96.0.1")
    obj["metadata"]["labelz"] = {}
    obj["spec"]["ports"].append({"port": 81, "nodeport": 30000, "foo": {"bar": 1}})
    obj["extra"] = 1
    assert schema.unknown_fields("", "v1", "Service", obj) == [
        "metadata.labelz", "spec.ports[1].nodeport", "spec.ports[1].foo", "spec.clusterIp",
        "extra"]


def test_unknown_fields_deep_in_pod_template():
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}},
                    "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
                    "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [
                        {"name": "c", "image": "i", "env": [{"name": "A", "valu": "1"}],
                         "resources": {"limits": {"cpu": "1", "memory": 10}},
                         "readinessProbe": {"httpGet": {"port": "http"}}}]}}}}
    assert schema.unknown_fields("apps", "v1", "Deployment", dep) == [
        "spec.template.spec.containers[0].env[0].valu"]


def test_unknown_fields_per_version():
    backend = {"serviceName": "s", "servicePort": 80}
    ing = {"apiVersion": "networking.k8s.io/v1beta1", "kind": "Ingress",
           "metadata": {"name": "i"},
           "spec": {"rules": [{"host": "a.b", "http": {"paths": [
               {"path": "/", "pathType": "Prefix", "backend": backend}]}}]}}
    assert schema.unknown_fields("networking.k8s.io", "v1beta1", "Ingress", ing) == []
    assert schema.unknown_fields("networking.k8s.io", "v1", "Ingress", ing) == [
        "spec.rules[0].http.paths[0].backend.serviceName",
        "spec.rules[0].http.paths[0].backend.servicePort"]


def test_unknown_fields_tolerates_wrong_shapes_and_nulls():
    obj = service(ports="not-a-list", sessionAffinityConfig=None)
    obj["metadata"]["labels"] = None
    assert schema.unknown_fields("", "v1", "Service", obj) == []
    assert schema.unknown_fields("", "v1", "NoSuchKind", {"x": 1}) == []


# ---- case_hint ---------------------------------------------------------------------------------

def test_case_hint():
    assert schema.case_hint("", "v1", "Service", "spec.clusterIp") == \
        'did you mean "spec.clusterIP"?'
    assert schema.case_hint("", "v1", "Service", "spec.ports[0].nodeport") == \
        'did you mean "spec.ports[0].nodePort"?'
    assert schema.case_hint("", "v1", "Service", "metadata.Labels") == \
        'did you mean "metadata.labels"?'
    assert schema.case_hint("", "v1", "Service", "spec.foo") is None
    assert schema.case_hint("", "v1", "Service", "spec.clusterIP") is None
    assert schema.case_hint("", "v1", "Service", "spex.clusterIp") is None


# ---- the generated file ------------------------------------------------------------------------

def test_schemas_json_has_every_patch_tag_of_the_generator():
    spec = importlib.util.spec_from_file_location("gen_schemas", REPO / "tools/gen_schemas.py")
    gen = importlib.util.module_from_spec(spec)
    pytest.importorskip("kubernetes")
    spec.loader.exec_module(gen)
    by_short = {}
    for name in schema.raw()["types"]:
        by_short.setdefault(name.rsplit(".", 1)[1], []).append(name)
    for (short, json_field), (ps, pk, lt, lk) in gen.PATCH.items():
        for type_name in by_short[short]:
            f = schema.raw()["types"][type_name]["fields"][json_field]
            assert (f.get("ps"), f.get("pk"), f.get("lt"), f.get("lk")) == (ps, pk, lt, lk)


def test_import_does_not_load_the_json():
    code = ("import nanokube.api.schema as s, sys; assert s._DATA is None; "
            "assert 'kubernetes' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
