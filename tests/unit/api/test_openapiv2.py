"""GET /openapi/v2: the swagger 2.0 document and its gnostic protobuf encoding.

The protobuf is read back with a wire-format walker written here (not nanokube's own decoder),
using the field numbers of gnostic-models' openapiv2/OpenAPIv2.proto."""
from __future__ import annotations

import gzip
import hashlib
import json

import pytest
import yaml

from nanokube.api import discovery, openapiv2, schema
from nanokube.registry import default_registry
from nanokube.registry.base import ServerConfig

KUBECTL_ACCEPT = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"


# ---- an independent protobuf reader ---------------------------------------------------------

def varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos


def fields(data: bytes) -> list[tuple[int, object]]:
    """[(field number, int or bytes)] in wire order; only varint and length-delimited occur."""
    out, pos = [], 0
    while pos < len(data):
        key, pos = varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = varint(data, pos)
        elif wire == 2:
            length, pos = varint(data, pos)
            value, pos = data[pos:pos + length], pos + length
            assert len(value) == length, "truncated"
        else:
            raise AssertionError(f"unexpected wire type {wire} for field {number}")
        out.append((number, value))
    return out


def one(data: bytes, number: int):
    values = [v for n, v in fields(data) if n == number]
    assert len(values) == 1, (number, len(values))
    return values[0]


def opt(data: bytes, number: int, default=None):
    values = [v for n, v in fields(data) if n == number]
    return values[0] if values else default


def many(data: bytes, number: int) -> list:
    return [v for n, v in fields(data) if n == number]


def named(data: bytes, number: int) -> dict[str, bytes]:
    """gnostic's repeated Named<T> {string name = 1; T value = 2} as a dict."""
    return {one(e, 1).decode(): one(e, 2) for e in many(data, number)}


def extensions(data: bytes, number: int) -> dict:
    """repeated NamedAny at `number`; Any {string yaml = 2} parsed as YAML, as kubectl does."""
    return {name: yaml.safe_load(one(value, 2).decode())
            for name, value in named(data, number).items()}


def schema_to_json(data: bytes) -> dict:
    """openapi.v2.Schema back to JSON: _ref 1, format 2, description 4, required 19,
    additional_properties 21 (AdditionalPropertiesItem {schema 1}), type 22 (TypeItem
    {value 1}), items 23 (ItemsItem {schema 1}), properties 25 (Properties {NamedSchema 1}),
    vendor_extension 31."""
    out: dict = {}
    for key, number in (("$ref", 1), ("format", 2), ("description", 4)):
        value = opt(data, number)
        if value is not None:
            out[key] = value.decode()
    if many(data, 19):
        out["required"] = [v.decode() for v in many(data, 19)]
    if (ap := opt(data, 21)) is not None:
        out["additionalProperties"] = schema_to_json(one(ap, 1))
    if (t := opt(data, 22)) is not None:
        (value,) = many(t, 1)
        out["type"] = value.decode()
    if (items := opt(data, 23)) is not None:
        out["items"] = schema_to_json(one(items, 1))
    if (props := opt(data, 25)) is not None:
        out["properties"] = {k: schema_to_json(v) for k, v in named(props, 1).items()}
    out.update(extensions(data, 31))
    return out


# ---- fixtures -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def served():
    registry = default_registry(ServerConfig())
    groups = [(g, v) for g, vs in discovery.group_versions(registry).items() for v in vs]
    return openapiv2.Served(registry.strategies, groups)


@pytest.fixture(scope="module")
def doc(served):
    return json.loads(served.bodies[(openapiv2.JSON, False)])


@pytest.fixture(scope="module")
def pb(served):
    return served.bodies[(openapiv2.PROTOBUF, False)]


# ---- the JSON document ----------------------------------------------------------------------

def test_every_kind_has_a_definition_with_its_group_version_kind(doc):
    """kubectl finds an item's definition by its GVK. schemas.json also maps the Status that
    every group's endpoints return to meta's Status, whose GVK kube-apiserver gives as v1
    only."""
    checked = 0
    for key, type_name in schema.raw()["kinds"].items():
        group, version, kind = key.split("/")
        gvks = doc["definitions"][type_name]["x-kubernetes-group-version-kind"]
        if kind == "Status":
            assert gvks == [{"group": "", "kind": "Status", "version": "v1"}]
            continue
        assert {"group": group, "version": version, "kind": kind} in gvks, key
        checked += 1
    assert checked > 50


def test_service_definition_as_kube_apiserver_writes_it(doc):
    svc = doc["definitions"]["io.k8s.api.core.v1.Service"]
    assert svc["type"] == "object"
    assert svc["properties"]["spec"]["$ref"] == "#/definitions/io.k8s.api.core.v1.ServiceSpec"
    ports = doc["definitions"]["io.k8s.api.core.v1.ServiceSpec"]["properties"]["ports"]
    assert ports["type"] == "array"
    assert ports["items"] == {"$ref": "#/definitions/io.k8s.api.core.v1.ServicePort"}
    assert ports["x-kubernetes-patch-merge-key"] == "port"
    assert ports["x-kubernetes-patch-strategy"] == "merge"
    assert ports["x-kubernetes-list-map-keys"] == ["port", "protocol"]
    assert doc["definitions"]["io.k8s.api.core.v1.ServicePort"]["required"] == ["port"]
    data = doc["definitions"]["io.k8s.api.core.v1.ConfigMap"]["properties"]["data"]
    assert data["additionalProperties"] == {"type": "string"}
    ios = doc["definitions"]["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
    assert ios["type"] == "string" and ios["format"] == "int-or-string" and "oneOf" not in ios


def walk(node, path=""):
    if isinstance(node, dict):
        yield path, node
        for k, v in node.items():
            yield from walk(v, f"{path}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, f"{path}/{i}")


def test_references_resolve_and_are_what_kubectls_parser_accepts(doc):
    """kube-openapi's proto parser rejects a dangling $ref, a $ref beside a type or properties,
    and arrays whose items are not one schema; swagger 2.0 has no oneOf/allOf for these."""
    refs = 0
    for path, node in walk(doc["definitions"]):
        if "$ref" in node and isinstance(node["$ref"], str):
            refs += 1
            assert node["$ref"].removeprefix("#/definitions/") in doc["definitions"], path
            assert "type" not in node and "properties" not in node, path
        if node.get("type") == "array" and not path.endswith("/properties"):
            assert isinstance(node["items"], dict), path
        assert "oneOf" not in node and "allOf" not in node, path
    assert refs > 400


def test_paths_carry_operations_with_their_kind(doc):
    item = doc["paths"]["/api/v1/namespaces/{namespace}/services/{name}"]
    assert item["patch"]["x-kubernetes-group-version-kind"] == {
        "group": "", "kind": "Service", "version": "v1"}
    assert "application/strategic-merge-patch+json" in item["patch"]["consumes"]
    body = item["put"]["parameters"][0]
    assert body == {"name": "body", "in": "body", "required": True,
                    "schema": {"$ref": "#/definitions/io.k8s.api.core.v1.Service"}}
    namespace = next(p for p in item["parameters"] if p["name"] == "namespace")
    assert namespace["in"] == "path" and namespace["required"] is True
    listing = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments"]["get"]
    assert listing["responses"]["200"]["schema"] == {
        "$ref": "#/definitions/io.k8s.api.apps.v1.DeploymentList"}
    assert listing["x-kubernetes-action"] == "list"


# ---- the protobuf ---------------------------------------------------------------------------

def test_protobuf_document_fields(pb):
    assert one(pb, 1) == b"2.0"                                   # swagger
    info = one(pb, 2)
    assert one(info, 1) == b"Kubernetes"                          # Info.title
    security_defs = named(one(pb, 13), 1)                         # SecurityDefinitions
    api_key = one(security_defs["BearerToken"], 2)                # api_key_security
    assert one(api_key, 1) == b"apiKey" and one(api_key, 3) == b"header"
    (requirement,) = many(pb, 12)
    assert named(requirement, 1) == {"BearerToken": b""}          # empty StringArray


def test_protobuf_definitions_equal_the_json_ones(pb, doc):
    decoded = {name: schema_to_json(s) for name, s in named(one(pb, 9), 1).items()}
    assert list(decoded) == list(doc["definitions"])
    for name, s in doc["definitions"].items():
        assert decoded[name] == s, name


def test_protobuf_paths(pb):
    paths = named(one(pb, 8), 2)                                  # Paths.path (NamedPathItem)
    item = paths["/api/v1/namespaces/{namespace}/services/{name}"]
    patch = one(item, 8)                                          # PathItem.patch
    assert b"application/strategic-merge-patch+json" in many(patch, 7)   # consumes
    assert one(patch, 5) == b"patchCoreV1NamespacedService"       # operationId
    ext = extensions(patch, 13)
    assert ext["x-kubernetes-group-version-kind"] == {"group": "", "kind": "Service",
                                                      "version": "v1"}
    assert ext["x-kubernetes-action"] == "patch"
    # PathItem.parameters: ParametersItem.parameter(1) -> Parameter.non_body_parameter(2) ->
    # path_parameter_sub_schema(4) {required 1, in 2, name 4, type 5}
    non_body = [one(one(p, 1), 2) for p in many(item, 9)]
    path_params = [one(p, 4) for p in non_body if opt(p, 4) is not None]
    ns = next(p for p in path_params if one(p, 4) == b"namespace")
    assert one(ns, 1) == 1 and one(ns, 2) == b"path" and one(ns, 5) == b"string"
    # Operation.parameters: the body (Parameter.body_parameter 1 {name 2, in 3, required 4,
    # schema 5}) and queries (non_body 2 -> query_parameter_sub_schema 3 {name 4, type 6})
    put = one(item, 3)
    body = one(one(many(put, 8)[0], 1), 1)
    assert one(body, 2) == b"body" and one(body, 3) == b"body" and one(body, 4) == 1
    assert schema_to_json(one(body, 5)) == {"$ref": "#/definitions/io.k8s.api.core.v1.Service"}
    queries = [one(one(one(p, 1), 2), 3) for p in many(put, 8)[1:]]
    assert {one(q, 4) for q in queries} >= {b"dryRun", b"fieldManager", b"fieldValidation"}
    # Operation.responses (9): NamedResponseValue -> ResponseValue.response(1) ->
    # Response {description 1, schema 2 (SchemaItem.schema 1)}
    ok = one(named(one(put, 9), 1)["200"], 1)
    assert one(ok, 1) == b"OK"
    assert schema_to_json(one(one(ok, 2), 1))["$ref"].endswith("core.v1.Service")


# ---- serving --------------------------------------------------------------------------------

@pytest.mark.parametrize("accept, wanted", [
    (KUBECTL_ACCEPT, openapiv2.PROTOBUF),
    ("application/com.github.proto-openapi.spec.v2.v1.0+protobuf", openapiv2.PROTOBUF),
    ("application/json", openapiv2.JSON),
    ("", openapiv2.JSON),
    ("*/*", openapiv2.JSON),
    ("application/json;q=0.5, " + KUBECTL_ACCEPT, openapiv2.PROTOBUF),
    ("text/html", None),
    ("application/json;q=0", None),
])
def test_negotiate(accept, wanted):
    assert openapiv2.negotiate(accept) == wanted


def test_etag_gzip_and_not_modified(served, doc):
    status, body, headers = served.response(KUBECTL_ACCEPT, "", "")
    assert status == 200 and headers["Content-Type"] == openapiv2.PROTOBUF
    etag = headers["ETag"]
    plain_json = json.dumps(doc, separators=(",", ":")).encode()
    assert etag == '"' + hashlib.sha512(plain_json).hexdigest().upper() + '"'
    assert served.response(KUBECTL_ACCEPT, "", etag)[:2] == (304, b"")
    status, zipped, headers = served.response("application/json", "gzip, deflate", "")
    assert headers["Content-Encoding"] == "gzip" and headers["ETag"] == etag[:-1] + '-gzip"'
    assert json.loads(gzip.decompress(zipped)) == doc
    assert served.response("application/json", "gzip", etag)[0] == 200   # other encoding
    assert served.response("image/png", "", "")[0] == 406
