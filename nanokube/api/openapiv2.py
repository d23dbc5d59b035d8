"""The OpenAPI v2 (swagger 2.0) document, as kube-apiserver serves it at GET /openapi/v2.

kubectl needs it for client-side validation: when the /openapi/v3 document has no PATCH operation
with `fieldValidation` for a kind (always so for `kind: List`, what `kubectl get -o yaml` prints),
kubectl validates each item of the List against the v2 definitions, found by their
`x-kubernetes-group-version-kind`. client-go's OpenAPISchema() asks only for the gnostic protobuf
encoding (Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf) and fails on
anything but a 200 it can decode, so the document is served both as JSON and as protobuf.

    document(strategies, groups) -> the swagger 2.0 document (a dict)
    to_protobuf(doc)             -> the same document as gnostic's openapi.v2.Document message
    Served(strategies, groups)   -> both encodings (plain and gzipped) and their ETag, built once

The definitions are every type of schemas.json, in swagger 2.0's form (a `$ref` sits beside its
description, not in allOf; IntOrString and Quantity are strings). The paths are those of the
/openapi/v3 documents (nanokube.api.openapi), rewritten for swagger 2.0.
"""
from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json

from nanokube.api import openapi, schema

REF = "#/definitions/"
RAW_EXTENSION = "io.k8s.apimachinery.pkg.runtime.RawExtension"
JSON = "application/json"
PROTOBUF = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
# What clients may ask for (the first is the spelling client-go sends) -> what we answer with.
PROTOBUF_ACCEPTED = ("com.github.proto-openapi.spec.v2@v1.0+protobuf",
                     "com.github.proto-openapi.spec.v2.v1.0+protobuf")
PRODUCES = ["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"]
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch")


# ---- the document ---------------------------------------------------------------------------

def document(strategies: list, groups: list[tuple[str, str]]) -> dict:
    """The swagger 2.0 document of everything the server serves: groups are the served
    (group, version) pairs, strategies the kinds (as for openapi.group_version_doc)."""
    paths: dict = {}
    for group, version in groups:
        v3 = openapi.group_version_doc(strategies, group, version)
        for path, item in v3["paths"].items():
            paths[path] = _path_item(item)
    openapi.forget_built()
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": dict(sorted(paths.items())),
        "definitions": definitions(),
        "securityDefinitions": {"BearerToken": {"description": "Bearer Token authentication",
                                                "type": "apiKey", "name": "authorization",
                                                "in": "header"}},
        "security": [{"BearerToken": []}],
    }


def definitions() -> dict:
    """Every type of schemas.json, by its Kubernetes name (io.k8s.api.core.v1.Service)."""
    raw = schema.raw()
    out = {name: _special(s) for name, s in raw["special"].items()}
    out.update((name, _type_schema(t)) for name, t in raw["types"].items())
    return dict(sorted(out.items()))


def _special(s: dict) -> dict:
    """IntOrString and Quantity are oneOf in OpenAPI v3; swagger 2.0 has no oneOf, and
    kube-apiserver writes them as strings (kubectl's validator takes any scalar for a string)."""
    out = {k: v for k, v in s.items() if k not in ("oneOf", "x-kubernetes-int-or-string")}
    out.setdefault("type", "string")
    return out


def _type_schema(t: dict) -> dict:
    return openapi.type_schema(t, _property)


def _element(f: dict) -> dict:
    if f["k"] == "any" and f["t"] == RAW_EXTENSION:
        return {}   # an embedded value of any shape (cert-manager's solvers are a list)
    return openapi.element(f, REF)


def _property(f: dict) -> dict:
    """swagger 2.0 puts a $ref beside its description, where OpenAPI v3 needs allOf."""
    return openapi.field_schema(f, _element)


def _path_item(item: dict) -> dict:
    out = {}
    for method in _METHODS:
        if method in item:
            out[method] = _operation(item[method])
    if "parameters" in item:
        out["parameters"] = [_parameter(p) for p in item["parameters"]]
    return out


def _operation(op: dict) -> dict:
    """An OpenAPI 3 operation of openapi.py as swagger 2.0 writes it: the request body becomes a
    `body` parameter and its media types `consumes`; responses carry the schema directly."""
    body = op.get("requestBody")
    consumes = list(body["content"]) if body and op["x-kubernetes-action"] == "patch" \
        else ["*/*"]
    params = [_parameter(p) for p in op.get("parameters", [])]
    if body:
        content = next(iter(body["content"].values()))
        params.insert(0, {"name": "body", "in": "body", "required": bool(body.get("required")),
                          "schema": _ref(content["schema"])})
    out = {"description": op["description"], "consumes": consumes, "produces": PRODUCES,
           "schemes": ["https"], "tags": op["tags"], "operationId": op["operationId"]}
    if params:
        out["parameters"] = params
    out["responses"] = {code: _response(r) for code, r in op["responses"].items()}
    out["x-kubernetes-action"] = op["x-kubernetes-action"]
    out["x-kubernetes-group-version-kind"] = op["x-kubernetes-group-version-kind"]
    return out


def _ref(s: dict) -> dict:
    return {"$ref": s["$ref"].replace(openapi.REF, REF)}


def _response(r: dict) -> dict:
    out = {"description": r["description"]}
    if "content" in r:
        out["schema"] = _ref(r["content"][JSON]["schema"])
    return out


def _parameter(p: dict) -> dict:
    out = {"name": p["name"], "in": p["in"], "description": p["description"],
           "type": p["schema"]["type"]}
    if p["schema"].get("uniqueItems"):
        out["uniqueItems"] = True
    if p.get("required"):
        out["required"] = True
    return out


# ---- gnostic protobuf -----------------------------------------------------------------------
#
# The messages of gnostic-models' openapiv2/OpenAPIv2.proto that the document uses, as
# {json key: (field number, encoder)}. JSON maps are repeated Named* messages {name=1, value=2};
# vendor extensions (keys "x-...") are NamedAny {name=1, value=Any{yaml=2}} at the message's
# own field number (VENDOR). Go's proto.Marshal leaves out empty strings, false and empty lists,
# so we do too.

VARINT, LENGTH = 0, 2
VENDOR = "x-"


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | LENGTH) + _varint(len(payload)) + payload


def _string(number: int, value: str) -> bytes:
    return _field(number, value.encode()) if value else b""


def _bool(number: int, value: bool) -> bytes:
    return _varint(number << 3 | VARINT) + b"\x01" if value else b""


def _strings(number: int, values: list) -> bytes:
    return b"".join(_field(number, v.encode()) for v in values)


def _named(number: int, mapping: dict, encode_value) -> bytes:
    """A JSON object as gnostic's repeated Named<T> {name = 1; value = 2}."""
    return b"".join(_field(number, _string(1, name) + _field(2, encode_value(value)))
                    for name, value in mapping.items())


def _vendor_extensions(number: int, obj: dict) -> bytes:
    """x- keys as NamedAny; Any.yaml holds the value as YAML text (JSON is valid YAML, and
    kubectl reads it with a YAML parser)."""
    ext = {k: v for k, v in obj.items() if k.startswith(VENDOR)}
    return _named(number, ext, lambda v: _string(2, json.dumps(v, separators=(",", ":"))))


def _message(obj: dict, fields: dict, vendor: int | None) -> bytes:
    parts = []
    for key, value in obj.items():
        if key.startswith(VENDOR):
            continue
        if key not in fields:
            raise ValueError(f"no protobuf field for {key!r}")
        number, encode = fields[key]
        parts.append((number, encode(number, value)))
    if vendor is not None:
        parts.append((vendor, _vendor_extensions(vendor, obj)))
    return b"".join(p for _, p in sorted(parts, key=lambda p: p[0]))


def _sub(encode_message):
    """Encoder of a singular message field."""
    return lambda number, value: _field(number, encode_message(value))


def _repeated(encode_message):
    return lambda number, values: b"".join(_field(number, encode_message(v)) for v in values)


def _schema(s: dict) -> bytes:
    return _message(s, SCHEMA_FIELDS, 31)


SCHEMA_FIELDS = {
    "$ref": (1, _string), "format": (2, _string), "title": (3, _string),
    "description": (4, _string), "uniqueItems": (16, _bool), "required": (19, _strings),
    # AdditionalPropertiesItem: oneof {Schema schema = 1; bool boolean = 2}
    "additionalProperties": (21, _sub(lambda v: _bool(2, v) if isinstance(v, bool)
                                      else _field(1, _schema(v)))),
    "type": (22, _sub(lambda v: _strings(1, [v]))),                  # TypeItem {value = 1}
    "items": (23, _sub(lambda v: _field(1, _schema(v)))),            # ItemsItem {schema = 1}
    "allOf": (24, _repeated(_schema)),
    "properties": (25, _sub(lambda v: _named(1, v, _schema))),       # Properties
    "readOnly": (27, _bool),
}


def _parameter_pb(p: dict) -> bytes:
    """ParametersItem {Parameter parameter = 1}: Parameter is oneof {BodyParameter = 1;
    NonBodyParameter = 2}, NonBodyParameter oneof {header = 1, formData = 2, query = 3,
    path = 4} sub-schemas, each with its own numbering."""
    if p["in"] == "body":
        inner = _field(1, _message(p, {"description": (1, _string), "name": (2, _string),
                                       "in": (3, _string), "required": (4, _bool),
                                       "schema": (5, _sub(_schema))}, 6))
    elif p["in"] == "path":
        inner = _field(2, _field(4, _message(p, {
            "required": (1, _bool), "in": (2, _string), "description": (3, _string),
            "name": (4, _string), "type": (5, _string), "format": (6, _string),
            "uniqueItems": (19, _bool)}, 22)))
    elif p["in"] == "query":
        inner = _field(2, _field(3, _message(p, {
            "required": (1, _bool), "in": (2, _string), "description": (3, _string),
            "name": (4, _string), "type": (6, _string), "format": (7, _string),
            "uniqueItems": (20, _bool)}, 23)))
    else:
        raise ValueError(f"no protobuf encoding for parameters in {p['in']!r}")
    return _field(1, inner)


def _response_pb(r: dict) -> bytes:
    """ResponseValue {Response response = 1}; Response {description = 1,
    SchemaItem schema = 2 (oneof {Schema schema = 1})}."""
    fields = {"description": (1, _string),
              "schema": (2, _sub(lambda s: _field(1, _schema(s))))}
    return _field(1, _message(r, fields, 5))


OPERATION_FIELDS = {
    "tags": (1, _strings), "summary": (2, _string), "description": (3, _string),
    "operationId": (5, _string), "produces": (6, _strings), "consumes": (7, _strings),
    "parameters": (8, _repeated(_parameter_pb)),
    # Responses {repeated NamedResponseValue response_code = 1; vendor_extension = 2}
    "responses": (9, _sub(lambda rs: _named(1, rs, _response_pb))),
    "schemes": (10, _strings), "deprecated": (11, _bool),
}


def _operation_pb(op: dict) -> bytes:
    return _message(op, OPERATION_FIELDS, 13)


PATH_ITEM_FIELDS = {"$ref": (1, _string), **{m: (n, _sub(_operation_pb)) for n, m in
                                             enumerate(_METHODS, start=2)},
                    "parameters": (9, _repeated(_parameter_pb))}


def _path_item_pb(item: dict) -> bytes:
    return _message(item, PATH_ITEM_FIELDS, 10)


def _api_key_pb(s: dict) -> bytes:
    """SecurityDefinitionsItem {ApiKeySecurity api_key_security = 2}."""
    if s["type"] != "apiKey":
        raise ValueError(f"no protobuf encoding for security type {s['type']!r}")
    return _field(2, _message(s, {"type": (1, _string), "name": (2, _string),
                                  "in": (3, _string), "description": (4, _string)}, 5))


DOCUMENT_FIELDS = {
    "swagger": (1, _string),
    "info": (2, _sub(lambda i: _message(i, {"title": (1, _string), "version": (2, _string),
                                            "description": (3, _string)}, 7))),
    "host": (3, _string), "basePath": (4, _string), "schemes": (5, _strings),
    "consumes": (6, _strings), "produces": (7, _strings),
    # Paths {vendor_extension = 1; repeated NamedPathItem path = 2}
    "paths": (8, _sub(lambda ps: _named(2, ps, _path_item_pb))),
    "definitions": (9, _sub(lambda ds: _named(1, ds, _schema))),     # Definitions
    # repeated SecurityRequirement {repeated NamedStringArray additional_properties = 1},
    # StringArray {repeated string value = 1}
    "security": (12, _repeated(lambda req: _named(1, req, lambda v: _strings(1, v)))),
    "securityDefinitions": (13, _sub(lambda ds: _named(1, ds, _api_key_pb))),
}


def to_protobuf(doc: dict) -> bytes:
    """The document as gnostic's openapi.v2.Document, which client-go's OpenAPISchema()
    decodes."""
    return _message(doc, DOCUMENT_FIELDS, 16)


# ---- serving --------------------------------------------------------------------------------

class Served:
    """Both encodings, plain and gzipped, with kube-apiserver's ETag: the upper-case hex SHA-512
    of the JSON, the same for the protobuf (responses vary by Accept), "-gzip" appended when
    gzipped. Built on the first request: the kinds never change while the server runs."""

    def __init__(self, strategies: list, groups: list[tuple[str, str]]):
        doc = document(strategies, groups)
        plain = {JSON: json.dumps(doc, separators=(",", ":")).encode(),
                 PROTOBUF: to_protobuf(doc)}
        self.etag = hashlib.sha512(plain[JSON]).hexdigest().upper()
        self.bodies = {(ct, False): body for ct, body in plain.items()}
        self.bodies.update(((ct, True), gzip.compress(body, 6)) for ct, body in plain.items())
        self.last_modified = dt.datetime.now(dt.timezone.utc)

    def response(self, accept: str, accept_encoding: str,
                 if_none_match: str) -> tuple[int, bytes, dict]:
        """(status, body, headers) for a GET: 200, 304 when If-None-Match has our ETag, or 406
        when Accept names neither JSON nor the protobuf."""
        headers = {"Vary": "Accept, Accept-Encoding"}
        content_type = negotiate(accept)
        if content_type is None:
            return 406, b"", headers
        zipped = accepts_gzip(accept_encoding)
        etag = f'"{self.etag}-gzip"' if zipped else f'"{self.etag}"'
        headers.update({"Content-Type": content_type, "ETag": etag,
                        "Last-Modified": self.last_modified.strftime(
                            "%a, %d %b %Y %H:%M:%S GMT")})
        if zipped:
            headers["Content-Encoding"] = "gzip"
        if etag in [t.strip() for t in if_none_match.split(",")] or if_none_match == "*":
            return 304, b"", headers
        return 200, self.bodies[(content_type, zipped)], headers


def negotiate(accept: str) -> str | None:
    """The content type to answer an Accept header with, as kube-openapi's handler picks it:
    the most preferred media range that matches JSON or the protobuf, JSON for */*."""
    ranges = []
    for n, clause in enumerate((accept or "*/*").split(",")):
        media, *params = [p.strip() for p in clause.split(";")]
        if not media:
            continue
        q = 1.0
        for p in params:
            if p.startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
        type_, _, subtype = media.partition("/")
        if q > 0:
            ranges.append((-q, (type_ == "*") + (subtype == "*"), n, type_, subtype))
    for *_, type_, subtype in sorted(ranges):
        if type_ not in ("application", "*"):
            continue
        if subtype in ("json", "*"):
            return JSON
        if subtype in PROTOBUF_ACCEPTED:
            return PROTOBUF
    return None


def accepts_gzip(accept_encoding: str) -> bool:
    for clause in (accept_encoding or "").split(","):
        name, *params = [p.strip() for p in clause.split(";")]
        if name == "gzip":
            return not any(p.replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000")
                           for p in params)
    return False
