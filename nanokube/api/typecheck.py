"""Type checking of decoded objects against the kind's schema.

The Go API server decodes JSON into typed structs, so a value of the wrong JSON type fails the
request with encoding/json's message; this reproduces that check (and its wording) so no
ill-typed value ever reaches a strategy."""
from __future__ import annotations

from nanokube.api import schema

_GO_SCALAR = {"string": "string", "integer": "int32", "boolean": "bool", "number": "float64"}


def _json_kind(value) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return f"number {value}"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _short(type_name: str) -> str:
    """io.k8s.api.core.v1.ServicePort -> v1.ServicePort"""
    parts = type_name.split(".")
    return ".".join(parts[-2:])


def _scalar_ok(value, scalar: str) -> bool:
    if scalar == "string":
        return isinstance(value, str)
    if scalar == "integer":
        return isinstance(value, int) and not isinstance(value, bool) or (
            isinstance(value, float) and value.is_integer())
    if scalar == "boolean":
        return isinstance(value, bool)
    if scalar == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return True


class _Mismatch(Exception):
    pass


def type_error(group: str, version: str, kind: str, obj: dict) -> str | None:
    """encoding/json's message for the first ill-typed value, or None."""
    root = schema.root_type(group, version, kind)
    if root is None:
        return None
    try:
        _check_object(root, obj, "", kind)
    except _Mismatch as e:
        return str(e)
    return None


def _fail(value, struct: str, path: str, go_type: str):
    raise _Mismatch(f"json: cannot unmarshal {_json_kind(value)} into Go struct field "
                    f"{struct}.{path} of type {go_type}")


def _check_object(type_name: str, obj, path: str, struct: str) -> None:
    types = schema.raw()["types"]
    fields = types.get(type_name, {}).get("fields", {})
    for key, value in obj.items():
        spec = fields.get(key)
        if spec is None or value is None:
            continue
        sub = f"{path}.{key}" if path else key
        _check_value(spec, value, sub, _short(type_name).split(".")[-1])


def _check_value(spec: dict, value, path: str, struct: str) -> None:
    kind, t = spec["k"], spec.get("t")
    types = schema.raw()["types"]
    if kind == "any":
        return
    if kind == "scalar":
        if not _scalar_ok(value, t):
            _fail(value, struct, path, _GO_SCALAR.get(t, t))
        return
    if kind == "object":
        if not isinstance(value, dict):
            _fail(value, struct, path, _short(t))
        _check_object(t, value, path, struct)
        return
    elem_is_type = t in types
    elem_go = _short(t) if elem_is_type else _GO_SCALAR.get(t, "string")
    if kind == "list":
        if not isinstance(value, list):
            _fail(value, struct, path, "[]" + elem_go)
        items = value
    elif kind == "map":
        if not isinstance(value, dict):
            _fail(value, struct, path, f"map[string]{elem_go}")
        items = value.values()
    else:
        return
    for item in items:
        if item is None:
            continue
        if elem_is_type:
            if not isinstance(item, dict):
                _fail(item, struct, path, elem_go)
            _check_object(t, item, path, struct)
        elif t in _GO_SCALAR and not _scalar_ok(item, t):
            _fail(item, struct, path, elem_go)
