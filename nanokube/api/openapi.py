"""OpenAPI v3 documents, as /openapi/v3 serves them (k8s-api.md §8).

kubectl reads them to find out that PATCH takes `fieldValidation` (server-side validation), to
compute strategic merge patches in `apply` (x-kubernetes-patch-merge-key/-strategy), and for
`kubectl explain`. The schemas come from schemas.json (nanokube.api.schema); the paths from the
strategies (objects with group, served_versions, kind, plural, namespaced, has_status).

    index(groups, strategies)                 -> body of GET /openapi/v3
    group_version_doc(strategies, group, ver) -> body of GET /openapi/v3/<api/v1|apis/g/v>
"""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache

from nanokube.api import schema

REF = "#/components/schemas/"
META = "io.k8s.apimachinery.pkg.apis.meta.v1"
_SCALARS = ("string", "integer", "boolean", "number")
PATCH_TYPES = ("application/apply-patch+yaml", "application/json-patch+json",
               "application/merge-patch+json", "application/strategic-merge-patch+json")


def gv_path(group: str, version: str) -> str:
    """Key of a group version in the index: "api/v1", "apis/apps/v1"."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


def doc_hash(doc: dict) -> str:
    """Hash of a document's content, as in ?hash=<H> (upper-case hex SHA-512, like Kubernetes)."""
    return hashlib.sha512(serialize(doc)).hexdigest().upper()


def serialize(doc: dict) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def index(groups: list[tuple[str, str]], strategies: list | None = None) -> dict:
    """{"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=<H>"}, ...}}.
    With the strategies the hash is that of the document served (pass them: kubectl caches by
    URL); without, it covers the schemas and the group version only."""
    paths = {}
    for group, version in groups:
        if strategies is not None:
            h = doc_hash(group_version_doc(strategies, group, version))
        else:
            h = _schemas_hash(group, version)
        path = gv_path(group, version)
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={h}"}
    return {"paths": paths}


def _schemas_hash(group: str, version: str) -> str:
    data = json.dumps([group, version, schema.raw()["kinds"], len(schema.raw()["types"])])
    return hashlib.sha512(data.encode() + schema._PATH.read_bytes()).hexdigest().upper()


def group_version_doc(strategies: list, group: str, version: str) -> dict:
    """The OpenAPI 3.0 document of one group version (a fresh copy: callers may modify it)."""
    key = tuple((s.group, tuple(s.served_versions), s.kind, s.plural, bool(s.namespaced),
                 bool(s.has_status)) for s in strategies
                if s.group == group and version in s.served_versions)
    return json.loads(_doc(key, group, version))


def forget_built() -> None:
    """Drop the cached texts (a server keeps its own compressed copy of what it serves)."""
    _doc.cache_clear()


@lru_cache(maxsize=64)
def _doc(resources: tuple, group: str, version: str) -> str:
    paths: dict = {}
    roots = []
    for _, _, kind, plural, namespaced, has_status in resources:
        root = schema.root_type(group, version, kind)
        if root is None:
            continue
        roots += [root, schema.root_type(group, version, kind + "List")]
        paths.update(_resource_paths(group, version, kind, plural, namespaced, has_status,
                                     root))
    roots += [f"{META}.Status", f"{META}.DeleteOptions"]
    doc = {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "unversioned"},
        "paths": paths,
        "components": {
            "schemas": _schemas([r for r in roots if r]),
            "securitySchemes": {"BearerToken": {"type": "apiKey", "name": "authorization",
                                                "in": "header",
                                                "description": "Bearer Token authentication"}},
        },
        "security": [{"BearerToken": []}],
    }
    return json.dumps(doc)


# ---- paths ------------------------------------------------------------------------------------

def _param(name: str, where: str, description: str, type_: str = "string",
           required: bool = False) -> dict:
    p = {"name": name, "in": where, "description": description, "schema": {"type": type_}}
    if where == "query":
        p["schema"]["uniqueItems"] = True
    if required:
        p["required"] = True
    return p


PRETTY = _param("pretty", "query", "If 'true', then the output is pretty printed.")
NAMESPACE = _param("namespace", "path", "object name and auth scope, such as for teams and "
                   "projects", required=True)
DRY_RUN = _param("dryRun", "query", "When present, indicates that modifications should not be "
                 "persisted. Valid values are: - All: all dry run stages will be processed")
FIELD_MANAGER = _param("fieldManager", "query", "fieldManager is a name associated with the "
                       "actor or entity that is making these changes.")
FIELD_VALIDATION = _param(
    "fieldValidation", "query", "fieldValidation instructs the server on how to handle objects "
    "in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: "
    "- Ignore: This will ignore any unknown fields that are silently dropped from the object, "
    "and will ignore all but the last duplicate field that the decoder encounters. "
    "- Warn: This will send a warning via the standard warning response header for each "
    "unknown field that is dropped from the object, and for each duplicate field that is "
    "encountered. This is the default when the parameter is absent. "
    "- Strict: This will fail the request with a BadRequest error if any unknown fields would "
    "be dropped from the object, or if any duplicate fields are present.")
FORCE = _param("force", "query", "Force is going to \"force\" Apply requests. It means user "
               "will re-acquire conflicting fields owned by other people.", "boolean")
LIST_PARAMS = [
    _param("allowWatchBookmarks", "query", "allowWatchBookmarks requests watch events with type "
           "\"BOOKMARK\".", "boolean"),
    _param("continue", "query", "The continue option should be set when retrieving more "
           "results from the server."),
    _param("fieldSelector", "query", "A selector to restrict the list of returned objects by "
           "their fields. Defaults to everything."),
    _param("labelSelector", "query", "A selector to restrict the list of returned objects by "
           "their labels. Defaults to everything."),
    _param("limit", "query", "limit is a maximum number of responses to return for a list "
           "call.", "integer"),
    _param("resourceVersion", "query", "resourceVersion sets a constraint on what resource "
           "versions a request may be served from."),
    _param("resourceVersionMatch", "query", "resourceVersionMatch determines how "
           "resourceVersion is applied to list calls."),
    _param("sendInitialEvents", "query", "`sendInitialEvents=true` may be set together with "
           "`watch=true`.", "boolean"),
    _param("timeoutSeconds", "query", "Timeout for the list/watch call.", "integer"),
    _param("watch", "query", "Watch for changes to the described resources and return them as "
           "a stream of add, update, and remove notifications.", "boolean"),
]
DELETE_PARAMS = [
    DRY_RUN,
    _param("gracePeriodSeconds", "query", "The duration in seconds before the object should be "
           "deleted.", "integer"),
    _param("ignoreStoreReadErrorWithClusterBreakingPotential", "query", "if set to true, it "
           "will trigger an unsafe deletion of the resource in case the normal deletion flow "
           "fails with a corrupt object error.", "boolean"),
    _param("orphanDependents", "query", "Deprecated: please use the PropagationPolicy.",
           "boolean"),
    _param("propagationPolicy", "query", "Whether and how garbage collection will be "
           "performed. Acceptable values are: 'Orphan', 'Background', 'Foreground'."),
]


def _camel(group: str, version: str) -> str:
    """operationId infix: "" v1 -> CoreV1, networking.k8s.io v1 -> NetworkingV1."""
    name = group.split(".")[0] if group else "core"
    return name[:1].upper() + name[1:] + version[:1].upper() + version[1:]


def _tag(group: str, version: str) -> str:
    return f"{group.split('.')[0] if group else 'core'}_{version}"


def _content(type_name: str) -> dict:
    return {"application/json": {"schema": {"$ref": REF + type_name}},
            "application/yaml": {"schema": {"$ref": REF + type_name}}}


def _response(codes: tuple[str, ...], type_name: str) -> dict:
    names = {"200": "OK", "201": "Created", "202": "Accepted"}
    out = {code: {"description": names[code], "content": _content(type_name)} for code in codes}
    out["401"] = {"description": "Unauthorized"}
    return out


def _operation(action: str, op_id: str, tag: str, gvk: dict, description: str,
               params: list, responses: dict, body: dict | None = None) -> dict:
    op = {"tags": [tag], "description": description, "operationId": op_id}
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = body
    op["responses"] = responses
    op["x-kubernetes-action"] = action
    op["x-kubernetes-group-version-kind"] = gvk
    return op


def _resource_paths(group: str, version: str, kind: str, plural: str, namespaced: bool,
                    has_status: bool, root: str) -> dict:
    prefix = "/" + gv_path(group, version)
    gvk = {"group": group, "kind": kind, "version": version}
    tag = _tag(group, version)
    gv = _camel(group, version)
    scope = "Namespaced" if namespaced else ""
    list_type = schema.root_type(group, version, kind + "List") or root
    status_type = f"{META}.Status"
    body = {"content": _content(root), "required": True}
    collection = f"{prefix}/namespaces/{{namespace}}/{plural}" if namespaced \
        else f"{prefix}/{plural}"
    item = collection + "/{name}"
    scope_params = [NAMESPACE, PRETTY] if namespaced else [PRETTY]
    name_param = _param("name", "path", f"name of the {kind}", required=True)

    def item_ops(what: str, suffix: str) -> dict:
        """get/put/patch (and delete for the object itself) of the object or its /status."""
        return {
            "get": _operation("get", f"read{gv}{scope}{kind}{suffix}", tag, gvk,
                              f"read {what} of the specified {kind}", [],
                              _response(("200",), root)),
            "put": _operation("put", f"replace{gv}{scope}{kind}{suffix}", tag, gvk,
                              f"replace {what} of the specified {kind}",
                              [DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION],
                              _response(("200", "201"), root), body),
            "patch": _operation("patch", f"patch{gv}{scope}{kind}{suffix}", tag, gvk,
                                f"partially update {what} of the specified {kind}",
                                [DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION, FORCE],
                                _response(("200", "201"), root),
                                {"content": {t: {"schema": {"$ref": f"{REF}{META}.Patch"}}
                                             for t in PATCH_TYPES}, "required": True}),
        }

    paths = {
        collection: {
            "get": _operation("list", f"list{gv}{scope}{kind}", tag, gvk,
                              f"list or watch objects of kind {kind}", LIST_PARAMS,
                              _response(("200",), list_type)),
            "post": _operation("post", f"create{gv}{scope}{kind}", tag, gvk,
                               f"create a {kind}", [DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION],
                               _response(("200", "201", "202"), root), body),
            "delete": _operation("deletecollection", f"delete{gv}Collection{scope}{kind}", tag,
                                 gvk, f"delete collection of {kind}",
                                 DELETE_PARAMS + LIST_PARAMS, _response(("200",), status_type),
                                 {"content": _content(f"{META}.DeleteOptions")}),
            "parameters": scope_params,
        },
        item: {
            **item_ops(kind, ""),
            "delete": _operation("delete", f"delete{gv}{scope}{kind}", tag, gvk,
                                 f"delete a {kind}", DELETE_PARAMS,
                                 _response(("200", "202"), root),
                                 {"content": _content(f"{META}.DeleteOptions")}),
            "parameters": [name_param] + scope_params,
        },
    }
    if has_status:
        paths[item + "/status"] = {**item_ops("status", "Status"),
                                   "parameters": [name_param] + scope_params}
    if namespaced:
        paths[f"{prefix}/{plural}"] = {
            "get": _operation("list", f"list{gv}{kind}ForAllNamespaces", tag, gvk,
                              f"list or watch objects of kind {kind}", LIST_PARAMS,
                              _response(("200",), list_type)),
            "parameters": [PRETTY],
        }
    return paths


# ---- schemas ----------------------------------------------------------------------------------

def _schemas(roots: list[str]) -> dict:
    """components.schemas: every type reachable from roots, sorted by name."""
    types, special = schema.raw()["types"], schema.raw()["special"]
    out: dict = {f"{META}.Patch": {"description": "Patch is provided to give a concrete name "
                                   "and type to the Kubernetes PATCH request body.",
                                   "type": "object"}}
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in out:
            continue
        if name in special:
            out[name] = special[name]
            continue
        t = types[name]
        out[name] = _type_schema(t)
        todo += [f["t"] for f in t["fields"].values() if f["t"] in types or f["t"] in special]
    return dict(sorted(out.items()))


def _type_schema(t: dict) -> dict:
    return type_schema(t, _property)


def type_schema(t: dict, property_schema) -> dict:
    """The object schema of a schemas.json type; property_schema(field) gives each field's
    (shared with the swagger 2.0 document of openapiv2.py)."""
    s: dict = {"description": t["description"], "type": "object",
               "properties": {name: property_schema(f) for name, f in t["fields"].items()}}
    if "required" in t:
        s["required"] = t["required"]
    if "gvk" in t:
        s["x-kubernetes-group-version-kind"] = [{"group": g, "kind": k, "version": v}
                                                for g, v, k in t["gvk"]]
    return s


def element(f: dict, ref: str = REF) -> dict:
    """Schema of a value of f's type (the element for lists and maps)."""
    if f["k"] == "scalar" or (f["k"] in ("list", "map") and f["t"] in _SCALARS):
        out = {"type": f["t"]}
        if "f" in f:
            out["format"] = f["f"]
        return out
    return {"$ref": ref + f["t"]}


def _property(f: dict) -> dict:
    return field_schema(f, lambda f: _wrap(element(f)))


def field_schema(f: dict, element_schema) -> dict:
    """A field's schema, element_schema(f) giving the schema of one value (of the items for
    lists and maps), with the description and the x-kubernetes list and patch extensions."""
    kind = f["k"]
    if kind == "list":
        p: dict = {"type": "array", "items": element_schema(f)}
    elif kind == "map":
        p = {"type": "object", "additionalProperties": element_schema(f)}
    else:
        p = element_schema(f)
    if f.get("d"):
        p["description"] = f["d"]
    for key, ext in (("lk", "x-kubernetes-list-map-keys"), ("lt", "x-kubernetes-list-type"),
                     ("pk", "x-kubernetes-patch-merge-key"),
                     ("ps", "x-kubernetes-patch-strategy")):
        if key in f:
            p[ext] = f[key]
    return p


def _wrap(element: dict) -> dict:
    """A $ref with siblings goes in allOf, as Kubernetes writes it."""
    if "$ref" in element:
        return {"allOf": [element]}
    return dict(element)
