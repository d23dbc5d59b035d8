"""Decoding of request bodies as the kube-apiserver does it: JSON or YAML, a 3 MiB limit, duplicate
field detection for strict field validation, and Go-shaped error messages.

Hostile input is bounded: nesting deeper than MAX_NESTING_DEPTH and YAML documents whose aliases
expand past MAX_YAML_EXPANDED_NODES are rejected before anything recursive or expanding runs.
"""
from __future__ import annotations

import base64
import datetime as dt
import json
import re
from itertools import accumulate

import yaml

from nanokube.api import errors as E

# apiserver's DefaultMaxRequestSizeBytes
MAX_REQUEST_BODY_BYTES = 3 * 1024 * 1024
# Go's encoding/json stops at 10000 levels; we stop earlier because the rest of the server walks
# objects recursively in Python. No Kubernetes object we serve nests anywhere near this deep.
MAX_NESTING_DEPTH = 128
# Nodes a YAML document may have once its aliases are expanded (a 3 MiB body holds at most
# about 1.5 million nodes without aliases).
MAX_YAML_EXPANDED_NODES = 2_000_000

_KIND_STRUCT = ('struct { APIVersion string "json:\\"apiVersion,omitempty\\""; '
                'Kind string "json:\\"kind,omitempty\\"" }')


# --- media types ---------------------------------------------------------------------------------

def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _is_json_type(mt: str) -> bool:
    return mt == "application/json" or mt.endswith("+json") or mt.endswith("/json")


def _is_yaml_type(mt: str) -> bool:
    return mt.endswith("/yaml") or mt.endswith("+yaml") or mt.endswith("/x-yaml")


def check_body_size(data: bytes) -> None:
    if len(data) > MAX_REQUEST_BODY_BYTES:
        raise E.too_large(f"limit is {MAX_REQUEST_BODY_BYTES}")


# --- Go-shaped JSON errors -----------------------------------------------------------------------

def _quote_char(ch: str) -> str:
    """encoding/json's quoteChar for the offending byte."""
    if ch == "'":
        return "'\\''"
    if ch == '"':
        return "'\"'"
    if ord(ch) > 0x7F:  # Go looks at the first byte of the UTF-8 sequence
        ch = chr(ch.encode("utf-8", "surrogatepass")[0])
    specials = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
                "\v": "\\v", "\\": "\\\\"}
    if ch in specials:
        return f"'{specials[ch]}'"
    if ord(ch) < 0x20 or ord(ch) == 0x7F:
        return f"'\\x{ord(ch):02x}'"
    if 0x80 <= ord(ch) < 0xA0:
        return f"'\\u{ord(ch):04x}'"
    return f"'{ch}'"


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)


def _innermost_container(text: str, pos: int) -> str:
    """'{' or '[' that is open at pos (only used to word an error message)."""
    stack = []
    for ch in _JSON_STRING.sub("", text[:pos]):
        if ch in "{[":
            stack.append(ch)
        elif ch in "}]" and stack:
            stack.pop()
    return stack[-1] if stack else ""


def _go_json_error(e: json.JSONDecodeError) -> str:
    """Reword Python's JSON error the way Go's encoding/json reports the same input."""
    text, pos, msg = e.doc, e.pos, e.msg
    if msg.startswith("Unexpected UTF-8 BOM"):
        return f"invalid character {_quote_char(text[0])} looking for beginning of value"
    if msg.startswith("Invalid \\uXXXX escape"):
        start = text.rfind("\\u", 0, pos + 2)
        for ch in text[start + 2:start + 6]:
            if ch not in "0123456789abcdefABCDEF":
                return f"invalid character {_quote_char(ch)} in \\u hexadecimal character escape"
        return "unexpected end of JSON input"
    if msg.startswith("Invalid \\escape"):
        if pos + 1 >= len(text):
            return "unexpected end of JSON input"
        return f"invalid character {_quote_char(text[pos + 1])} in string escape code"
    if pos >= len(text) or msg.startswith("Unterminated string"):
        return "unexpected end of JSON input"
    c = _quote_char(text[pos])
    if msg.startswith("Expecting value"):
        return f"invalid character {c} looking for beginning of value"
    if msg.startswith("Expecting property name"):
        return f"invalid character {c} looking for beginning of object key string"
    if msg.startswith("Expecting ':'"):
        return f"invalid character {c} after object key"
    if msg.startswith("Expecting ','"):
        if _innermost_container(text, pos) == "[":
            return f"invalid character {c} after array element"
        return f"invalid character {c} after object key:value pair"
    if msg.startswith("Invalid control character"):
        return f"invalid character {c} in string literal"
    if msg.startswith("Extra data"):
        return f"invalid character {c} after top-level value"
    return msg


class _BodyError(Exception):
    """A decoding failure; `json` tells whether Go would have reported it as a JSON parse error."""

    def __init__(self, message: str, json_error: bool):
        super().__init__(message)
        self.message = message
        self.json_error = json_error


# --- depth -------------------------------------------------------------------------------------

_JSON_STRING_BYTES = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NON_BRACKETS = bytes(b for b in range(256) if b not in b"{}[]")
_DELTA = [0] * 256
_DELTA[ord("{")] = _DELTA[ord("[")] = 1
_DELTA[ord("}")] = _DELTA[ord("]")] = -1


def _json_too_deep(data: bytes) -> str | None:
    """The opening bracket that goes past MAX_NESTING_DEPTH, or None. C-speed in the common case."""
    if data.count(b"{") + data.count(b"[") <= MAX_NESTING_DEPTH:
        return None
    brackets = _JSON_STRING_BYTES.sub(b"", data).translate(None, _NON_BRACKETS)
    if brackets.count(b"{") + brackets.count(b"[") <= MAX_NESTING_DEPTH:
        return None
    for i, depth in enumerate(accumulate(map(_DELTA.__getitem__, brackets))):
        if depth > MAX_NESTING_DEPTH:
            return chr(brackets[i])
    return None


# --- JSON ----------------------------------------------------------------------------------------

class _Constant(Exception):
    pass


def _reject_constant(name: str):
    raise _Constant(name)


_SURROGATE = re.compile("[\ud800-\udfff]")
_MAYBE_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")


def _decode_json(data: bytes) -> tuple[object, list[str]]:
    too_deep = _json_too_deep(data)
    if too_deep:
        raise _BodyError(f"invalid character {_quote_char(too_deep)} exceeded max depth", True)
    # Go replaces invalid UTF-8 with U+FFFD instead of failing.
    text = data.decode("utf-8", "replace")
    duplicates: list[tuple[dict, list[str]]] = []

    def pairs_hook(pairs):
        obj = dict(pairs)
        if len(obj) != len(pairs):
            seen, dups = set(), []
            for key, _ in pairs:
                if key in seen and key not in dups:
                    dups.append(key)
                seen.add(key)
            duplicates.append((obj, dups))
        return obj

    try:
        value = json.loads(text, object_pairs_hook=pairs_hook, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise _BodyError(_go_json_error(e), True) from None
    except _Constant as e:  # NaN, Infinity, -Infinity are not JSON
        ch = "I" if str(e).startswith("-") else str(e)[0]
        where = "in numeric literal" if str(e).startswith("-") else "looking for beginning of value"
        raise _BodyError(f"invalid character '{ch}' {where}", True) from None
    except RecursionError:  # only reachable if MAX_NESTING_DEPTH is raised too far
        raise _BodyError("invalid character '[' exceeded max depth", True) from None
    paths = _duplicate_paths(value, duplicates) if duplicates else []
    if _MAYBE_SURROGATE.search(data):  # Go turns lone surrogates into U+FFFD
        value = _normalize(value, fix_surrogates=True)
        paths = [_SURROGATE.sub("\ufffd", p) for p in paths]
    return value, paths


def _walk(value):
    """Yield (path, node) for every dict and list, iteratively, parents before children."""
    stack = [("", value)]
    while stack:
        path, node = stack.pop()
        yield path, node
        if isinstance(node, dict):
            for key, child in node.items():
                if isinstance(child, (dict, list)):
                    stack.append((f"{path}.{key}" if path else str(key), child))
        elif isinstance(node, list):
            for i, child in enumerate(node):
                if isinstance(child, (dict, list)):
                    stack.append((f"{path}[{i}]", child))


def _duplicate_paths(value, duplicates: list[tuple[dict, list[str]]]) -> list[str]:
    where = {id(obj): keys for obj, keys in duplicates}
    found = []
    for path, node in _walk(value):
        keys = where.get(id(node))
        if keys and isinstance(node, dict):
            found += [f"{path}.{k}" if path else k for k in keys]
    return sorted(found)


# --- YAML ----------------------------------------------------------------------------------------

class _YAMLLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """Safe loader that keeps timestamps as strings and turns keys into JSON keys while building
    each mapping (so that 1 and true stay two keys, as they do in YAMLToJSON's output)."""

    def construct_mapping(self, node, deep=False):
        self.flatten_mapping(node)  # merge keys (<<)
        mapping = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (dict, list, set)):
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark, "found unhashable key",
                    key_node.start_mark)
            mapping[_json_key(key)] = self.construct_object(value_node, deep=deep)
        return mapping


_YAMLLoader.add_constructor("tag:yaml.org,2002:timestamp", _YAMLLoader.construct_yaml_str)


def _yaml_error(e: yaml.YAMLError) -> str:
    """Word a PyYAML/libyaml error as go-yaml (a libyaml port) does; the apiserver's YAML
    serializer returns YAMLToJSON's error unprefixed."""
    problem = getattr(e, "problem", None) or getattr(e, "reason", None) or str(e)
    line = 0
    problem_mark = getattr(e, "problem_mark", None)
    context_mark = getattr(e, "context_mark", None)
    if problem_mark is not None and problem_mark.line:
        # go-yaml reports parser errors with the 0-based line and scanner errors 1-based.
        line = problem_mark.line + (1 if isinstance(e, yaml.scanner.ScannerError) else 0)
    elif context_mark is not None and context_mark.line:
        line = context_mark.line
    where = f"line {line}: " if line else ""
    return f"yaml: {where}{problem}"


_EXCESSIVE_ALIASING = "yaml: document contains excessive aliasing"


def _allowed_alias_ratio(nodes: int) -> float:
    """go-yaml's rule: up to 99% of a document's nodes may come from aliases below 400k nodes,
    falling to 10% at 4M."""
    if nodes <= 400_000:
        return 0.99
    if nodes >= 4_000_000:
        return 0.10
    return 0.99 - 0.89 * (nodes - 400_000) / 3_600_000


class _Frame:
    __slots__ = ("is_map", "anchor", "size", "path", "keys", "expect_key", "key", "index")

    def __init__(self, is_map: bool, anchor, path: str):
        self.is_map = is_map
        self.anchor = anchor
        self.size = 1
        self.path = path
        self.keys: set = set()
        self.expect_key = True
        self.key = None
        self.index = 0


def _yaml_check(data: bytes) -> list[str]:
    """Walk the first document's events (no recursion, no expansion): enforce depth and alias
    limits and return the paths of duplicate mapping keys."""
    stack: list[_Frame] = []
    anchors: dict[str, int] = {}
    expanded = aliased = 0
    duplicates: list[str] = []

    def child_path() -> str | None:
        parent = stack[-1]
        if parent.is_map:
            if parent.key is None:
                return None
            return f"{parent.path}.{parent.key}" if parent.path else parent.key
        return f"{parent.path}[{parent.index}]"

    def add_child(size: int, key_text: str | None) -> None:
        nonlocal expanded
        expanded += size
        if expanded > MAX_YAML_EXPANDED_NODES:
            raise _BodyError(_EXCESSIVE_ALIASING, False)
        if not stack:
            return
        parent = stack[-1]
        parent.size += size
        if not parent.is_map:
            parent.index += 1
        elif parent.expect_key:
            parent.key = key_text
            if key_text is not None and key_text != "<<":
                if key_text in parent.keys:
                    duplicates.append(f"{parent.path}.{key_text}" if parent.path else key_text)
                parent.keys.add(key_text)
            parent.expect_key = False
        else:
            parent.expect_key = True

    for event in yaml.parse(data, Loader=_YAMLLoader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            if len(stack) >= MAX_NESTING_DEPTH:
                raise _BodyError(f"yaml: exceeded max depth of {MAX_NESTING_DEPTH}", False)
            path = child_path() if stack else ""
            stack.append(_Frame(isinstance(event, yaml.MappingStartEvent), event.anchor,
                                path or ""))
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            frame = stack.pop()
            if frame.anchor:
                anchors[frame.anchor] = frame.size
            expanded -= frame.size - 1  # children were counted as they came
            add_child(frame.size, None)
        elif isinstance(event, yaml.ScalarEvent):
            if event.anchor:
                anchors[event.anchor] = 1
            add_child(1, event.value)
        elif isinstance(event, yaml.AliasEvent):
            size = anchors.get(event.anchor, 1)
            aliased += size
            add_child(size, None)
            if aliased > 100 and expanded > 1000 and aliased / expanded > _allowed_alias_ratio(
                    expanded):
                raise _BodyError(_EXCESSIVE_ALIASING, False)
        elif isinstance(event, yaml.DocumentEndEvent):
            break  # like yaml.Unmarshal, only the first document counts
    return sorted(duplicates)


def _decode_yaml(data: bytes) -> tuple[object, list[str]]:
    try:
        duplicates = _yaml_check(data)
        loader = _YAMLLoader(data)
        try:
            value = loader.get_data() if loader.check_data() else None
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        raise _BodyError(_yaml_error(e), False) from None
    except (TypeError, ValueError) as e:  # e.g. an unhashable (mapping) key
        raise _BodyError(f"yaml: {e}", False) from None
    return _normalize(value), duplicates


def _json_key(key) -> str:
    """How YAMLToJSON turns a non-string mapping key into a JSON object key."""
    if isinstance(key, str):
        return key
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, float) and key.is_integer():
        return str(int(key))
    return str(key)


def _scalar(value, fix_surrogates: bool):
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value) if fix_surrogates else value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise _BodyError(f"json: unsupported value: {_go_float(value)}", False)
        # YAMLToJSON goes through Go's json.Marshal, which prints 3.0 as 3.
        return int(value) if value.is_integer() and abs(value) < 2 ** 63 else value
    if isinstance(value, bytes):  # !!binary
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


def _go_float(value: float) -> str:
    return "NaN" if value != value else ("+Inf" if value > 0 else "-Inf")


def _normalize(value, fix_surrogates: bool = False):
    """Copy into plain JSON types, iteratively: YAML aliases become independent copies (the
    expansion was bounded beforehand), sets become maps of nulls, keys become strings."""
    if not isinstance(value, (dict, list, set, tuple)):
        return _scalar(value, fix_surrogates)
    root: list = [None]
    stack = [(value, root, 0)]
    while stack:
        node, parent, slot = stack.pop()
        if isinstance(node, dict):
            copy: object = {}
            for k, v in node.items():
                k = _json_key(k)
                if fix_surrogates:
                    k = _SURROGATE.sub("\ufffd", k)
                if isinstance(v, (dict, list, set, tuple)):
                    copy[k] = None
                    stack.append((v, copy, k))
                else:
                    copy[k] = _scalar(v, fix_surrogates)
        elif isinstance(node, set):
            copy = {_json_key(k): None for k in node}
        else:
            copy = []
            for i, v in enumerate(node):
                if isinstance(v, (dict, list, set, tuple)):
                    copy.append(None)
                    stack.append((v, copy, i))
                else:
                    copy.append(_scalar(v, fix_surrogates))
        parent[slot] = copy
    return root[0]


# --- public API ----------------------------------------------------------------------------------

def _looks_like_json(data: bytes) -> bool:
    stripped = data.lstrip()
    return stripped[:1] in (b"{", b"[")


def _decode(data: bytes, content_type: str | None) -> tuple[object, list[str]]:
    check_body_size(data)
    mt = media_type(content_type)
    if "protobuf" in mt:
        # typed client-go clients (kubectl create ...) send Kubernetes protobuf
        from nanokube.api import protobuf
        try:
            return protobuf.decode_object(data), []
        except protobuf.UnsupportedKind:
            raise E.unsupported_media_type(mt) from None
        except protobuf.ProtobufError as e:
            raise _BodyError(str(e), False) from None
    if _is_json_type(mt) and not _is_yaml_type(mt):
        return _decode_json(data)
    # YAML, or an unknown/missing type: JSON is valid YAML, and the JSON decoder is much faster
    # and reports duplicates the same way, so try it first when the body looks like JSON.
    if _looks_like_json(data):
        try:
            return _decode_json(data)
        except _BodyError:
            pass  # e.g. flow-style YAML such as {a: b}; the YAML decoder has its own limits
    return _decode_yaml(data)


def decode_body(data: bytes, content_type: str | None) -> object:
    """Any JSON value from a JSON or YAML body (patch bodies may be lists). 400/413/415 on error."""
    try:
        return _decode(data, content_type)[0]
    except _BodyError as e:
        raise E.bad_request(e.message) from None


def summarize_data(data: bytes, max_length: int = 30) -> str:
    """How the apiserver quotes a body it could not recognize (handlers' summarizeData)."""
    if not data:
        return "<empty>"
    if data[:1] == b"{":
        text = data[:max_length].decode("utf-8", "replace")
        return text + " ..." if len(data) > max_length else text
    suffix = " ..." if len(data) > max_length else ""
    return data[:max_length].hex() + suffix


_GO_JSON_TYPE = {list: "array", str: "string", bool: "bool", int: "number", float: "number"}


def _unrecognized(kind: str | None, data: bytes, message: str) -> E.StatusError:
    if kind:
        message = (f"the object provided is unrecognized (must be of type {kind}): {message} "
                   f"({summarize_data(data)})")
    return E.bad_request(message)


def _missing_kind(data: bytes) -> str:
    return f"Object 'Kind' is missing in '{data[:4096].decode('utf-8', 'replace')}'"


def decode_object(data: bytes, content_type: str | None, kind: str | None = None,
                  require_kind: bool = False) -> tuple[dict, list[str]]:
    """An object (JSON map) and the paths of its duplicated fields, e.g. "spec.ports[0].port".

    `kind` (the kind the endpoint expects, e.g. "Service") words errors as the create/update
    handlers do; `require_kind` rejects bodies without a kind as the serializer does when no
    default kind is known."""
    try:
        value, duplicates = _decode(data, content_type)
    except _BodyError as e:
        message = e.message
        if e.json_error:
            message = "couldn't get version/kind; json parse error: " + message
        raise _unrecognized(kind, data, message) from None
    if value is None:
        raise _unrecognized(kind, data, _missing_kind(data))
    if not isinstance(value, dict):
        go_type = _GO_JSON_TYPE.get(type(value), "value")
        raise _unrecognized(kind, data, "couldn't get version/kind; json parse error: json: "
                            f"cannot unmarshal {go_type} into Go value of type {_KIND_STRUCT}")
    for field in ("apiVersion", "kind"):
        v = value.get(field)
        if v is not None and not isinstance(v, str):
            go_type = "object" if isinstance(v, dict) else _GO_JSON_TYPE.get(type(v), "value")
            raise _unrecognized(kind, data, "couldn't get version/kind; json parse error: json: "
                                f"cannot unmarshal {go_type} into Go struct field .{field} of "
                                "type string")
    if require_kind and not value.get("kind"):
        raise E.bad_request(_missing_kind(data))
    return value, duplicates


def strict_decoding_message(kind: str, version: str, problems: list[str]) -> str:
    """`Service in version "v1" cannot be handled as a Service: strict decoding error: ...` where
    problems are e.g. `unknown field "spec.foo"` or `duplicate field "metadata.name"`."""
    return (f'{kind} in version "{version}" cannot be handled as a {kind}: strict decoding error: '
            + ", ".join(problems))


def duplicate_field_problems(paths: list[str]) -> list[str]:
    return [f'duplicate field "{p}"' for p in paths]
