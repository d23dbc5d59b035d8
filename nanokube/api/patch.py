"""Patches as the Kubernetes API server applies them, and the patch `kubectl apply` computes.

- json_merge_patch: RFC 7386, Content-Type application/merge-patch+json.
- json_patch: RFC 6902, application/json-patch+json; errors worded as the API server words them.
- strategic_merge_patch: application/strategic-merge-patch+json, with the semantics of
  k8s.io/apimachinery/pkg/util/strategicpatch (merge keys, directives, element order).
- create_three_way_strategic_patch: the patch kubectl's client-side apply sends.
- apply_patch: a simplified server-side apply (application/apply-patch+yaml).
- with_last_applied: kubectl's object + last-applied-configuration annotation.

Patch metadata (patchStrategy, patchMergeKey) comes from a schema object with the API of
nanokube.api.schema (`field(type_name, json_field) -> Field | None`).
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, replace
from typing import Any

import jsonpatch

from nanokube.api import schema as _default_schema

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
MAX_JSON_PATCH_OPERATIONS = 10000

_MARKER = "$patch"
_RETAIN_KEYS = "$retainKeys"
_ORDER = "$setElementOrder"
_DELETE_PRIMITIVES = "$deleteFromPrimitiveList"


class PatchError(Exception):
    """A patch that cannot be applied; `code` is the HTTP status to answer with (400 bad request,
    422 invalid, 413 too large) and str(error) the Status message."""

    def __init__(self, message: str, code: int = 400):
        super().__init__(message)
        self.message = message
        self.code = code


# ---------------------------------------------------------------------------------------------
# JSON values: kinds, equality, Go's %v rendering (used in messages and for sorting scalars)

def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, dict):
        return "map"
    if isinstance(v, list):
        return "list"
    return type(v).__name__


def _equal(a: Any, b: Any) -> bool:
    """Deep equality of JSON values that, unlike ==, keeps true and 1 apart."""
    ka = _kind(a)
    if ka != _kind(b):
        return False
    if ka == "map":
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if ka == "list":
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a == b


def _scalar_id(v: Any) -> tuple:
    """A hashable identity for a scalar list element or merge key value."""
    kind = _kind(v)
    if kind in ("map", "list"):
        return (kind, json.dumps(v, sort_keys=True))
    return (kind, v)


def _go_v(v: Any) -> str:
    """fmt.Sprintf("%v", v) for a decoded JSON value."""
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{_go_v(v[k])}" for k in sorted(v)) + "]"
    if isinstance(v, list):
        return "[" + " ".join(_go_v(x) for x in v) + "]"
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e21:
        return str(int(v))
    return str(v)


def _go_type(v: Any) -> str:
    return {"map": "map[string]interface {}", "list": "[]interface {}", "string": "string",
            "number": "float64", "bool": "bool", "null": "<nil>"}.get(_kind(v), "interface {}")


def _bad_arg_type(expected: str, actual: Any) -> PatchError:
    return PatchError(f"expected a {expected}, but received a {_go_type(actual)}")


def _no_merge_key(m: Any, key: str | None) -> PatchError:
    return PatchError(f"map: {_go_v(m)} does not contain declared merge key: {key or ''}")


# ---------------------------------------------------------------------------------------------
# Schema navigation. A node is where a JSON object sits in the schema:
# ("object", type name), ("map", element type name or None), or None (no schema: merge maps,
# replace lists, as JSON merge patch does).

@dataclass(frozen=True)
class _Meta:
    """Patch metadata of one field, and the node of its value (of each element for lists)."""
    strategy: str = ""          # "merge" | "replace" | "" (default: maps merge, lists replace)
    retain_keys: bool = False
    merge_key: str | None = None
    node: tuple | None = None


_NO_META = _Meta()


def _meta(schema: Any, node: tuple | None, key: str) -> _Meta:
    if node is None:
        return _NO_META
    kind, type_name = node
    if kind == "map":
        return _Meta(node=("object", type_name) if type_name else None)
    f = schema.field(type_name, key)
    if f is None:
        return _NO_META
    parts = [p.strip() for p in (f.patch_strategy or "").split(",") if p.strip()]
    others = [p for p in parts if p != "retainKeys"]
    if f.kind == "map":
        child = ("map", f.type)
    elif f.kind in ("object", "list") and f.type:
        child = ("object", f.type)
    else:
        child = None
    return _Meta(strategy=others[0] if others else "", retain_keys="retainKeys" in parts,
                 merge_key=f.patch_merge_key, node=child)


def _directive_key(key: str, prefix: str) -> str:
    """The list field a parallel-list directive ("$setElementOrder/ports") is about."""
    head, sep, name = key.partition("/")
    if head != prefix or not sep:
        if prefix == _ORDER:
            raise PatchError("invalid patch format of setElementOrder list")
        raise PatchError("invalid patch format of primitive list")
    return name


# ---------------------------------------------------------------------------------------------
# Lists: element kinds, partitioning and the element order rules of strategicpatch

def _element_kind(*lists: list) -> str | None:
    kinds = {_kind(v) for items in lists for v in items}
    if "list" in kinds:
        raise PatchError("lists of lists are not supported", 422)
    if len(kinds) > 1:
        raise PatchError("list element types are not identical: "
                         + "[" + " ".join(_go_v(items) for items in lists) + "]")
    return kinds.pop() if kinds else None


def _identity(item: Any, merge_key: str | None) -> tuple:
    if merge_key:
        if not isinstance(item, dict):
            raise _bad_arg_type("map[string]interface {}", item)
        if merge_key not in item:
            raise _no_merge_key(item, merge_key)
        return _scalar_id(item[merge_key])
    return _scalar_id(item)


def _index_of(items: list, merge_key: str | None) -> dict:
    index: dict = {}
    for i, item in enumerate(items):
        index.setdefault(_identity(item, merge_key), i)
    return index


def _partition(items: list, by: list, merge_key: str | None) -> tuple[list, list]:
    """Items present in `by` (by merge key, or by value for primitives), and the others."""
    present = _index_of(by, merge_key)
    inside = [v for v in items if _identity(v, merge_key) in present]
    outside = [v for v in items if _identity(v, merge_key) not in present]
    return inside, outside


def _is_delete(item: Any) -> bool:
    return isinstance(item, dict) and item.get(_MARKER) == "delete"


def _sort_by(items: list, order: list, merge_key: str | None) -> list:
    """Sort items by their position in order (stable); deletion directives go last."""
    position = _index_of(order, merge_key)
    deletes = [v for v in items if merge_key and _is_delete(v)]
    keep = [v for v in items if not (merge_key and _is_delete(v))]
    keep.sort(key=lambda v: position.get(_identity(v, merge_key), len(order)))
    return keep + deletes


def _merge_sorted(left: list, right: list, server_order: list, merge_key: str | None) -> list:
    """Interleave server-only items (left) into patch items (right), each list keeping its own
    order: a left item goes first only when both are in the live list and it comes earlier."""
    position = _index_of(server_order, merge_key)
    out, i, j = [], 0, 0
    while i < len(left) or j < len(right):
        if j >= len(right):
            out.append(left[i])
            i += 1
            continue
        if i < len(left):
            li = position.get(_identity(left[i], merge_key))
            rj = position.get(_identity(right[j], merge_key))
            if li is not None and rj is not None and li < rj:
                out.append(left[i])
                i += 1
                continue
        out.append(right[j])
        j += 1
    return out


def _normalize_order(patch_items: list, server_only: list, patch_order: list,
                     server_order: list, merge_key: str | None) -> list:
    """Precedence: the order in the patch (or $setElementOrder), then the live order."""
    return _merge_sorted(_sort_by(server_only, server_order, merge_key),
                         _sort_by(patch_items, patch_order, merge_key), server_order, merge_key)


def _dedupe(items: list) -> list:
    seen, out = set(), []
    for v in items:
        if _scalar_id(v) not in seen:
            seen.add(_scalar_id(v))
            out.append(v)
    return out


# ---------------------------------------------------------------------------------------------
# Merging a strategic merge patch into an object (server) or two patches together (client)

class _Merger:
    """mergeMap of strategicpatch. server=True applies a patch to an object (parallel lists are
    executed, nulls delete); server=False combines kubectl's deletions patch with its changes
    patch (directives and nulls are kept for the server)."""

    def __init__(self, schema: Any, server: bool):
        self.schema = schema
        self.server = server

    def merge_map(self, original: dict, patch: dict, node: tuple | None) -> dict:
        if _MARKER in patch:
            directive = patch[_MARKER]
            rest = {k: v for k, v in patch.items() if k != _MARKER}
            if directive == "replace":
                return self.fresh(rest, _Meta(node=node))
            if directive == "delete":
                return {}
            if directive != "merge":
                raise PatchError(f"unknown patch type: {_go_v(directive)} in map: {_go_v(patch)}")
            patch = rest    # "merge" is what happens anyway
        patch = dict(patch)
        self._retain_keys(original, patch)
        self._set_element_orders(original, patch, node)
        deletions = []
        for key, value in patch.items():
            if key.startswith(_DELETE_PRIMITIVES):
                deletions.append((key, value))
            else:
                self._merge_field(original, key, value, node)
        for key, value in deletions:    # after additions, so the result does not depend on order
            self._delete_from_primitive_list(original, key, value)
        return original

    def _merge_field(self, original: dict, key: str, value: Any, node: tuple | None) -> None:
        if value is None:
            original.pop(key, None)
            if not self.server:
                original[key] = None    # an explicit delete for the server
            return
        meta = _meta(self.schema, node, key)
        current = original.get(key)
        if key not in original or _kind(current) != _kind(value):
            original[key] = self.fresh(value, meta)
        elif isinstance(value, dict):
            if meta.strategy == "replace":
                original[key] = self.fresh(value, meta)
            else:
                original[key] = self.merge_map(current, value, meta.node)
        elif isinstance(value, list):
            original[key] = self.merge_list(current, value, meta)
        else:
            original[key] = value

    def fresh(self, value: Any, meta: _Meta) -> Any:
        """A patch value that has nothing to merge with: on the server, drop its nulls and
        execute its directives, as merging it into an empty value does."""
        if not self.server:
            return value
        if isinstance(value, dict):
            return self.merge_map({}, value, meta.node)
        if isinstance(value, list):
            return self.merge_list([], value, meta)
        return value

    def merge_list(self, original: list, patch: list, meta: _Meta) -> list:
        if meta.strategy != "merge":
            if not self.server:
                return patch
            kept = [v for v in patch if not (isinstance(v, dict) and _MARKER in v)]
            return [self.fresh(v, _Meta(node=meta.node)) for v in kept]
        if not original and not patch:
            return original
        merge_key = None
        if _element_kind(original, patch) != "map":
            merged = _dedupe(original + patch)
        else:
            merge_key = meta.merge_key
            if not merge_key:
                raise PatchError("cannot merge lists without merge key")
            original, patch = self._special_elements(original, patch, merge_key)
            merged = self._merge_by_key(original, patch, merge_key, meta)
        patch_items, server_only = _partition(merged, patch, merge_key)
        return _normalize_order(patch_items, server_only, patch, original, merge_key)

    def _special_elements(self, original: list, patch: list, merge_key: str) -> tuple[list, list]:
        """Execute {"$patch": "delete"|"replace"} list elements; returns (original, patch)."""
        rest, replace_all = [], False
        for item in patch:
            if _MARKER not in item:
                rest.append(item)
                continue
            directive = item[_MARKER]
            if directive == "delete":
                if merge_key not in item:
                    raise _no_merge_key(item, merge_key)
                gone = _scalar_id(item[merge_key])
                original = [v for v in original
                            if not (isinstance(v, dict) and merge_key in v
                                    and _scalar_id(v[merge_key]) == gone)]
            elif directive == "replace":
                replace_all = True
            elif directive == "merge":
                raise PatchError("merging lists cannot yet be specified in the patch")
            else:
                raise PatchError(f"unknown patch type: {_go_v(directive)} in map: {_go_v(item)}")
        if replace_all:
            return [], rest
        return original, rest

    def _merge_by_key(self, original: list, patch: list, merge_key: str, meta: _Meta) -> list:
        merged = list(original)
        position = _index_of(merged, merge_key)
        element = _Meta(node=meta.node)
        for item in patch:
            key = _identity(item, merge_key)
            if key in position:
                i = position[key]
                merged[i] = self.merge_map(merged[i], item, meta.node)
            else:
                position[key] = len(merged)
                merged.append(self.fresh(item, element))
        return merged

    def _retain_keys(self, original: dict, patch: dict) -> None:
        if _RETAIN_KEYS not in patch:
            return
        keys = patch.pop(_RETAIN_KEYS)
        if not self.server:
            if _RETAIN_KEYS in original and not _equal(original[_RETAIN_KEYS], keys):
                raise PatchError(f"{_go_v(original[_RETAIN_KEYS])} and {_go_v(keys)} are not deep "
                                 "equal: this may happen when calculating the 3-way diff patch")
            original[_RETAIN_KEYS] = keys
            return
        if not isinstance(keys, list):
            raise PatchError("invalid patch format of retainKeys")
        allowed = {_scalar_id(k) for k in keys}
        for key, value in patch.items():
            if value is None or key.startswith((_DELETE_PRIMITIVES, _ORDER)):
                continue
            if _scalar_id(key) not in allowed:
                raise PatchError("invalid patch format of retainKeys")
        for key in [k for k in original if _scalar_id(k) not in allowed]:
            del original[key]

    def _set_element_orders(self, original: dict, patch: dict, node: tuple | None) -> None:
        """Merge each list that has a $setElementOrder directive, then order it: the directive
        first, the live order for items the directive does not name."""
        for key in [k for k in patch if k.startswith(_ORDER)]:
            order = patch.pop(key)
            if not self.server:
                if key in original and not _equal(original[key], order):
                    raise PatchError("invalid patch format of setElementOrder list")
                original[key] = order
            if not isinstance(order, list):
                raise _bad_arg_type("[]interface {}", order)
            name = _directive_key(key, _ORDER)
            meta = _meta(self.schema, node, name)
            live, change = original.get(name), patch.get(name)
            if meta.strategy != "merge" or not isinstance(live, (list, type(None))) \
                    or not isinstance(change, (list, type(None))):
                continue    # nothing to order by a merge key: the list is merged as usual
            if name not in original and name not in patch:
                continue
            merge_key = meta.merge_key if _element_kind(live or [], change or [], order) == "map" \
                else None
            if name in patch:
                _check_order(change, order, merge_key)
                merged = self.merge_list(live or [], change, meta)
            else:
                merged = live
            patch_items, server_only = _partition(merged, order, merge_key)
            original[name] = _normalize_order(patch_items, server_only, order, live or [],
                                              merge_key)
            patch.pop(name, None)

    def _delete_from_primitive_list(self, original: dict, key: str, values: Any) -> None:
        if not self.server:
            original[key] = values
            return
        name = _directive_key(key, _DELETE_PRIMITIVES)
        current = original.get(name)
        if not isinstance(current, list) or not isinstance(values, list):
            return
        gone = {_scalar_id(v) for v in values if not isinstance(v, (dict, list))}
        original[name] = [v for v in current if isinstance(v, (dict, list))
                          or _scalar_id(v) not in gone]


def _check_order(patch_list: list, order: list, merge_key: str | None) -> None:
    """The patch list (deletions aside) must follow the relative order of $setElementOrder."""
    items = [v for v in patch_list if not (isinstance(v, dict) and _MARKER in v)]
    i = j = 0
    while i < len(items) and j < len(order):
        if _identity(items[i], merge_key) == _identity(order[j], merge_key):
            i += 1
        j += 1
    if i < len(items):
        raise PatchError(f"The order in patch list:\n{_go_v(patch_list)}\n doesn't match "
                         f"$setElementOrder list:\n{_go_v(order)}\n")


# ---------------------------------------------------------------------------------------------
# Computing a strategic merge patch (diffMaps of strategicpatch)

@dataclass(frozen=True)
class _DiffOptions:
    ignore_deletions: bool = False
    ignore_changes: bool = False        # IgnoreChangesAndAdditions
    retain_keys: bool = False           # build a $retainKeys directive


class _Differ:
    def __init__(self, schema: Any):
        self.schema = schema

    def diff_maps(self, original: dict, modified: dict, node: tuple | None,
                  opts: _DiffOptions) -> dict:
        patch: dict = {}
        retained = []
        for key, new in modified.items():
            if opts.retain_keys and new is not None:
                retained.append(key)
            if key not in original:
                if not opts.ignore_changes:
                    patch[key] = new
                continue
            old = original[key]
            if key == _MARKER or _kind(old) != _kind(new):
                if not opts.ignore_changes and not _equal(old, new):
                    patch[key] = new
            elif isinstance(new, dict):
                self._diff_map_field(key, old, new, node, patch, opts)
            elif isinstance(new, list):
                self._diff_list_field(key, old, new, node, patch, opts)
            elif not opts.ignore_changes and not _equal(old, new):
                patch[key] = new
        if not opts.ignore_deletions:
            for key in original:
                if key not in modified:
                    patch[key] = None
        gone = any(v is not None and k not in modified for k, v in original.items())
        if retained and (patch or gone):
            patch[_RETAIN_KEYS] = sorted(retained, key=_go_v)
        return patch

    def _diff_map_field(self, key, old, new, node, patch, opts) -> None:
        meta = _meta(self.schema, node, key)
        if meta.strategy == "replace":
            if not opts.ignore_changes:
                patch[key] = new
            return
        sub = self.diff_maps(old, new, meta.node, replace(opts, retain_keys=meta.retain_keys))
        if sub:
            patch[key] = sub

    def _diff_list_field(self, key, old, new, node, patch, opts) -> None:
        meta = _meta(self.schema, node, key)
        if meta.strategy != "merge":
            if not opts.ignore_changes and not _equal(old, new):
                patch[key] = new
            return
        additions, deletions, order = self._diff_lists(
            old, new, meta, replace(opts, retain_keys=meta.retain_keys))
        if additions:
            patch[key] = additions
        if deletions:
            patch[f"{_DELETE_PRIMITIVES}/{key}"] = deletions
        if order:
            patch[f"{_ORDER}/{key}"] = order

    def _diff_lists(self, old: list, new: list, meta: _Meta, opts: _DiffOptions):
        """(patch list, primitive deletion list, $setElementOrder list) for a merging list."""
        if not old:
            if not new or opts.ignore_changes:
                return [], [], []
            return new, [], []
        if _element_kind(old, new) == "map":
            merge_key = meta.merge_key
            changes, deletions = self._diff_lists_of_maps(old, new, merge_key, meta.node, opts)
            changes = _sort_by(changes, new, merge_key) + deletions
            same_order = len(old) == len(new) and all(
                _identity(a, merge_key) == _identity(b, merge_key) for a, b in zip(old, new))
            order = []
            if (not opts.ignore_changes and (changes or not same_order)) \
                    or (not opts.ignore_deletions and changes):
                order = [{merge_key: item[merge_key]} for item in new]
            return changes, [], order
        additions, deletions = _diff_scalars(old, new, opts)
        additions = _sort_by(additions, new, None)
        order = []
        if (not opts.ignore_deletions and deletions) \
                or (not opts.ignore_changes and not _equal(old, new)):
            order = new
        return additions, deletions, order

    def _diff_lists_of_maps(self, old, new, merge_key, node, opts):
        """Walk both lists sorted by merge key: recurse into common items, add new ones, and
        emit {"$patch": "delete"} for removed ones."""
        for item in old + new:
            _identity(item, merge_key)      # every item must carry the merge key
        a = sorted(old, key=lambda v: _go_v(v[merge_key]))
        b = sorted(new, key=lambda v: _go_v(v[merge_key]))
        changes, deletions = [], []
        i = j = 0
        while i < len(a) or j < len(b):
            ka = _go_v(a[i][merge_key]) if i < len(a) else None
            kb = _go_v(b[j][merge_key]) if j < len(b) else None
            if ka is not None and ka == kb:
                sub = self.diff_maps(a[i], b[j], node, opts)
                if sub:
                    sub[merge_key] = b[j][merge_key]
                    changes.append(sub)
                i, j = i + 1, j + 1
            elif ka is None or (kb is not None and ka > kb):
                if not opts.ignore_changes:
                    changes.append(b[j])
                j += 1
            else:
                if not opts.ignore_deletions:
                    deletions.append({merge_key: a[i][merge_key], _MARKER: "delete"})
                i += 1
        return changes, deletions


def _diff_scalars(old: list, new: list, opts: _DiffOptions) -> tuple[list, list]:
    a, b = sorted(old, key=_go_v), sorted(new, key=_go_v)
    additions, deletions = [], []
    i = j = 0
    while i < len(a) or j < len(b):
        sa = _go_v(a[i]) if i < len(a) else None
        sb = _go_v(b[j]) if j < len(b) else None
        if sa is not None and sa == sb:
            i, j = i + 1, j + 1
        elif sa is None or (sb is not None and sa > sb):
            if not opts.ignore_changes:
                additions.append(b[j])
            j += 1
        else:
            if not opts.ignore_deletions:
                deletions.append(a[i])
            i += 1
    return additions, _dedupe(deletions)


# ---------------------------------------------------------------------------------------------
# Public API

def json_merge_patch(target: dict, patch: dict) -> dict:
    """RFC 7386: objects merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        raise PatchError("Invalid JSON Patch")
    return _merge_patch(copy.deepcopy(target), copy.deepcopy(patch))


def _merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return patch
    if not isinstance(target, dict):
        target = {}
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = _merge_patch(target.get(key), value)
    return target


def json_patch(target: dict, ops: list) -> dict:
    """RFC 6902 with the messages of the API server (evanphx/json-patch v4). As there, a
    'replace' of a missing object member adds it, and a missing 'value' means null."""
    if not isinstance(ops, list):
        raise PatchError(f"json: cannot unmarshal {_json_type(ops)} into Go value of type "
                         "jsonpatch.Patch")
    if len(ops) > MAX_JSON_PATCH_OPERATIONS:
        raise PatchError(f"The allowed maximum operations in a JSON patch is "
                         f"{MAX_JSON_PATCH_OPERATIONS}, got {len(ops)}", 413)
    doc = copy.deepcopy(target)
    for op in ops:
        if not isinstance(op, dict):
            raise PatchError(f"json: cannot unmarshal {_json_type(op)} into Go value of type "
                             "jsonpatch.Operation")
        doc = _apply_operation(doc, op)
    return doc


def _json_type(v: Any) -> str:
    return {"map": "object", "list": "array", "number": "number", "bool": "bool",
            "string": "string"}.get(_kind(v), "null")


_OPERATIONS = ("add", "remove", "replace", "move", "copy", "test")


def _apply_operation(doc: Any, op: dict) -> Any:
    kind = op.get("op") if isinstance(op.get("op"), str) else "unknown"
    if kind not in _OPERATIONS:
        raise PatchError(f"Unexpected kind: {kind}", 422)
    for member in ("path",) + (("from",) if kind in ("move", "copy") else ()):
        if not isinstance(op.get(member), str):
            raise PatchError(f"{kind} operation failed to decode {member}: missing value", 422)
    op = dict(op)
    if kind in ("add", "replace", "test"):
        op.setdefault("value", None)
    if kind == "replace":
        parent, key = _parent(doc, op["path"])
        if isinstance(parent, dict) and key not in parent:
            op["op"] = "add"
    try:
        return jsonpatch.apply_patch(doc, [op], in_place=True)
    except jsonpatch.JsonPatchTestFailed:
        raise PatchError(f"testing value {op['path']} failed: test failed", 422) from None
    except Exception as e:     # jsonpatch/jsonpointer conflicts: say it as the API server does
        raise PatchError(_operation_error(doc, op, kind, e), 422) from None


def _parent(doc: Any, path: str) -> tuple[Any, str]:
    """The container a JSON pointer's last token is looked up in (None if missing)."""
    if not path.startswith("/"):
        return None, path
    tokens = [t.replace("~1", "/").replace("~0", "~") for t in path.split("/")[1:]]
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return None, tokens[-1]
    return node if isinstance(node, (dict, list)) else None, tokens[-1]


def _operation_error(doc: Any, op: dict, kind: str, error: Exception) -> str:
    path = op["path"]
    if kind in ("move", "copy"):
        parent, key = _parent(doc, op["from"])
        if parent is None:
            return f"{kind} operation does not apply: doc is missing from path: {op['from']}: " \
                   "missing value"
        if isinstance(parent, dict) and key not in parent:
            return f"error in {kind} for path: '{key}': Unable to remove nonexistent key: " \
                   f"{key}: missing value"
        parent, key = _parent(doc, path)
        if parent is None:
            return f"{kind} operation does not apply: doc is missing destination path: {path}: " \
                   "missing value"
    else:
        parent, key = _parent(doc, path)
        if parent is None:
            if kind in ("add", "remove"):
                return f'{kind} operation does not apply: doc is missing path: "{path}": ' \
                       "missing value"
            if kind == "test":
                return f"test operation does not apply: is missing path: {path}: missing value"
            return f"{kind} operation does not apply: doc is missing path: {path}: missing value"
        if isinstance(parent, dict) and kind == "remove":
            return f"error in remove for path: '{path}': Unable to remove nonexistent key: " \
                   f"{key}: missing value"
    if isinstance(parent, list):
        if kind == "replace":
            return f"replace operation does not apply: doc is missing key: {path}: missing value"
        if not key.lstrip("-").isdigit() and key != "-":
            return f"error in {kind} for path: '{path}': value was not a proper array index: " \
                   f"'{key}'"
        return f"error in {kind} for path: '{path}': Unable to access invalid index: {key}: " \
               "invalid index referenced"
    return f"{kind} operation does not apply: {error}"


def strategic_merge_patch(target: dict, patch: dict, type_name: str | None,
                          schema: Any = _default_schema) -> dict:
    """Apply a strategic merge patch to target (an object of type type_name) as the API server
    does: maps merge, null deletes, lists with patchStrategy merge merge by patchMergeKey (lists
    of primitives are unioned), other lists replace; directives $patch (replace/delete in maps,
    delete/replace as list elements), $setElementOrder/<list>, $retainKeys and
    $deleteFromPrimitiveList/<list> are honoured. A kind without schema (type_name None) gets
    JSON merge patch semantics. Inputs are not modified."""
    if not isinstance(patch, dict):
        raise PatchError("invalid JSON document")
    if type_name is None:
        return json_merge_patch(target, patch)
    merger = _Merger(schema, server=True)
    return merger.merge_map(copy.deepcopy(target or {}), copy.deepcopy(patch),
                            ("object", type_name))


def create_three_way_strategic_patch(original: dict | None, modified: dict, current: dict,
                                     type_name: str | None, schema: Any = _default_schema) -> dict:
    """The patch kubectl's client-side apply sends (strategicpatch.CreateThreeWayMergePatch with
    overwrite): original = last-applied configuration (None if absent), modified = the file with
    its new last-applied annotation, current = the live object. It holds the deletions from
    original to modified, and the changes and additions from current to modified (with
    $setElementOrder for merging lists, $deleteFromPrimitiveList, $retainKeys, as kubectl
    emits them). {} means there is nothing to change: kubectl then prints "unchanged".
    For kinds without schema (type_name None) kubectl computes a JSON merge patch instead."""
    original = copy.deepcopy(original or {})
    modified = copy.deepcopy(modified)
    current = copy.deepcopy(current or {})
    if type_name is None:
        return _three_way_json_merge(original, modified, current)
    root = ("object", type_name)
    differ = _Differ(schema)
    changes = differ.diff_maps(current, modified, root, _DiffOptions(ignore_deletions=True))
    deletions = differ.diff_maps(original, modified, root, _DiffOptions(ignore_changes=True))
    return _Merger(schema, server=False).merge_map(deletions, changes, root)


def _three_way_json_merge(original: dict, modified: dict, current: dict) -> dict:
    """jsonmergepatch.CreateThreeWayJSONMergePatch: changes from current plus deletions from
    original, both as RFC 7386 diffs."""
    changes = _keep_or_drop_nulls(_merge_diff(current, modified), keep_nulls=False)
    deletions = _keep_or_drop_nulls(_merge_diff(original, modified), keep_nulls=True)
    return _merge_patch(deletions, changes)


def _merge_diff(a: dict, b: dict) -> dict:
    out: dict = {}
    for key, new in b.items():
        old = a.get(key)
        if key not in a:
            out[key] = new
        elif isinstance(old, dict) and isinstance(new, dict):
            sub = _merge_diff(old, new)
            if sub:
                out[key] = sub
        elif not _equal(old, new):
            out[key] = new
    for key in a:
        if key not in b:
            out[key] = None
    return out


def _keep_or_drop_nulls(m: dict, keep_nulls: bool) -> dict:
    out: dict = {}
    for key, value in m.items():
        if value is None:
            if keep_nulls:
                out[key] = None
        elif isinstance(value, dict) and value:
            sub = _keep_or_drop_nulls(value, keep_nulls)
            if sub:
                out[key] = sub
        elif not keep_nulls:    # an explicitly empty map is a value, not an empty patch
            out[key] = value
    return out


def apply_patch(current: dict | None, applied: dict, type_name: str | None,
                schema: Any = _default_schema) -> dict:
    """A simplified server-side apply (application/apply-patch+yaml): the applied configuration
    is merged over the live object (or over nothing, on create) with strategic merge semantics.

    managedFields are not tracked: there are no field managers, no conflicts, and fields the
    applier set before but no longer sets are NOT removed (real server-side apply removes the
    fields only that manager owned). Lists merge by patchMergeKey, not by listMapKeys."""
    return strategic_merge_patch(current or {}, applied, type_name, schema)


def with_last_applied(obj: dict) -> dict:
    """kubectl's "modified configuration": a copy of obj whose last-applied-configuration
    annotation holds obj itself (without that annotation) as compact JSON with sorted keys,
    "annotations":{} when obj had none, and a trailing newline, as Go's encoder writes it."""
    out = copy.deepcopy(obj)
    metadata = out.setdefault("metadata", {})
    annotations = dict(metadata.get("annotations") or {})
    annotations.pop(LAST_APPLIED, None)
    metadata["annotations"] = annotations
    text = _go_json(out) + "\n"
    metadata["annotations"] = {**annotations, LAST_APPLIED: text}
    return out


def _go_json(v: Any) -> str:
    text = json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text
