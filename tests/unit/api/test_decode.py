import time

import pytest

from nanokube.api import decode as D
from nanokube.api.decode import (MAX_NESTING_DEPTH, MAX_REQUEST_BODY_BYTES, decode_body,
                                 decode_object, duplicate_field_problems,
                                 strict_decoding_message, summarize_data)
from nanokube.api.errors import StatusError

JSON = "application/json"
YAML = "application/yaml"
KIND_STRUCT = ('struct { APIVersion string "json:\\"apiVersion,omitempty\\""; '
               'Kind string "json:\\"kind,omitempty\\"" }')


def error(data, content_type=JSON, **kw):
    with pytest.raises(StatusError) as e:
        decode_object(data, content_type, **kw)
    return e.value


def bad_request(data, content_type=JSON, **kw):
    e = error(data, content_type, **kw)
    assert (e.code, e.reason) == (400, "BadRequest")
    return e.message


# --- happy paths ---------------------------------------------------------------------------------

def test_json_object():
    body = b'{"kind":"Service","apiVersion":"v1","spec":{"ports":[{"port":80}]}}'
    obj, dups = decode_object(body, "application/json; charset=utf-8")
    assert obj == {"kind": "Service", "apiVersion": "v1", "spec": {"ports": [{"port": 80}]}}
    assert dups == []


def test_yaml_object_keeps_timestamps_as_strings_and_integral_floats_as_ints():
    body = (b"kind: Service\nmetadata:\n  creationTimestamp: 2024-01-02T03:04:05Z\n"
            b"spec:\n  n: 3.0\n  x: yes\n  on: 1\n")
    obj, dups = decode_object(body, YAML)
    assert obj == {"kind": "Service", "metadata": {"creationTimestamp": "2024-01-02T03:04:05Z"},
                   # YAML 1.1, as go-yaml v2: yes is a bool and the key `on` becomes "true".
                   "spec": {"n": 3, "x": True, "true": 1}}
    assert dups == []


@pytest.mark.parametrize("content_type", [
    "application/apply-patch+yaml", "application/yaml", "text/plain", "", None,
    "application/x-www-form-urlencoded"])
def test_json_labelled_otherwise_is_tolerated(content_type):
    obj, _ = decode_object(b' {"kind":"Service","apiVersion":"v1"}', content_type)
    assert obj == {"kind": "Service", "apiVersion": "v1"}


def test_flow_yaml_that_looks_like_json():
    assert decode_object(b"{kind: Service, n: 1}", YAML)[0] == {"kind": "Service", "n": 1}


def test_only_the_first_yaml_document_counts():
    assert decode_object(b"a: b\n---\nc: d\n", YAML)[0] == {"a": "b"}


def test_yaml_aliases_become_independent_copies():
    obj, _ = decode_object(b"a: &x {k: v}\nb: *x\nc: [*x, *x]\n", YAML)
    assert obj["b"] == obj["c"][0] == {"k": "v"}
    obj["b"]["k"] = "changed"
    assert obj["a"]["k"] == "v" and obj["c"][1]["k"] == "v"


def test_yaml_non_string_keys_become_json_keys():
    assert decode_object(b"labels:\n  1: a\n  true: b\n", YAML)[0] == {
        "labels": {"1": "a", "true": "b"}}


def test_decode_body_returns_lists_for_json_patch():
    assert decode_body(b'[{"op":"remove","path":"/a"}]', "application/json-patch+json") == [
        {"op": "remove", "path": "/a"}]
    assert decode_body(b"- op: remove\n  path: /a\n", YAML) == [{"op": "remove", "path": "/a"}]


def test_invalid_utf8_is_replaced_like_go():
    assert decode_object(b'{"a":"x\xffy"}', JSON)[0] == {"a": "x\ufffdy"}
    assert decode_object(b'{"a":"\\ud800"}', JSON)[0] == {"a": "\ufffd"}
    assert decode_object(b'{"\\ud800":{"k":1,"k":2}}', JSON) == ({"\ufffd": {"k": 2}}, ["\ufffd.k"])


# --- duplicates ----------------------------------------------------------------------------------

def test_json_duplicate_paths():
    body = (b'{"metadata":{"name":"a","name":"b"},"spec":{"ports":[{"port":1},{"port":2,"port":3}],'
            b'"type":"A","type":"B"}}')
    obj, dups = decode_object(body, JSON)
    assert dups == ["metadata.name", "spec.ports[1].port", "spec.type"]
    assert obj["metadata"]["name"] == "b" and obj["spec"]["ports"][1]["port"] == 3  # last wins


def test_json_top_level_duplicate():
    assert decode_object(b'{"kind":"A","kind":"A","kind":"B"}', JSON) == ({"kind": "B"}, ["kind"])


def test_yaml_duplicate_paths():
    body = b"metadata:\n  name: a\n  name: b\nspec:\n  ports:\n  - port: 1\n    port: 2\n"
    obj, dups = decode_object(body, YAML)
    assert dups == ["metadata.name", "spec.ports[0].port"]
    assert obj["metadata"]["name"] == "b"


def test_yaml_merge_keys_are_not_duplicates():
    obj, dups = decode_object(b"base: &b {x: 1}\nd:\n  <<: *b\n  <<: *b\n  y: 2\n", YAML)
    assert dups == []
    assert obj["d"] == {"x": 1, "y": 2}


def test_strict_messages():
    assert strict_decoding_message("Service", "v1", duplicate_field_problems(
        ["metadata.name"]) + ['unknown field "spec.foo"']) == (
        'Service in version "v1" cannot be handled as a Service: strict decoding error: '
        'duplicate field "metadata.name", unknown field "spec.foo"')


# --- malformed input -----------------------------------------------------------------------------

@pytest.mark.parametrize("body,message", [
    (b"", "unexpected end of JSON input"),
    (b"   ", "unexpected end of JSON input"),
    (b'{"a":1', "unexpected end of JSON input"),
    (b'{"a":"b', "unexpected end of JSON input"),
    (b"{", "unexpected end of JSON input"),
    (b"x", "invalid character 'x' looking for beginning of value"),
    (b'{"a":}', "invalid character '}' looking for beginning of value"),
    (b'{"a":1,}', "invalid character '}' looking for beginning of object key string"),
    (b"{a:1}", "invalid character 'a' looking for beginning of object key string"),
    (b'{"a" 1}', "invalid character '1' after object key"),
    (b'{"a":1 "b":2}', "invalid character '\"' after object key:value pair"),
    (b'{"a":[1 2]}', "invalid character '2' after array element"),
    (b'{"a":[1,]}', "invalid character ']' looking for beginning of value"),
    (b'{"a":1}x', "invalid character 'x' after top-level value"),
    (b'{"a":"x\ny"}', "invalid character '\\n' in string literal"),
    (b'{"a":"\\q"}', "invalid character 'q' in string escape code"),
    (b'{"a":"\\u12x4"}', "invalid character 'x' in \\u hexadecimal character escape"),
    (b'{"a":NaN}', "invalid character 'N' looking for beginning of value"),
    (b'{"a":Infinity}', "invalid character 'I' looking for beginning of value"),
    (b'{"a":-Infinity}', "invalid character 'I' in numeric literal"),
    (b'\xef\xbb\xbf{}', "invalid character '\u00ef' looking for beginning of value"),
])
def test_malformed_json(body, message):
    assert bad_request(body) == "couldn't get version/kind; json parse error: " + message


def test_malformed_json_with_kind_reads_like_the_create_handler():
    assert bad_request(b'{"apiVersion":"v1","kind":"Service",', kind="Service") == (
        "the object provided is unrecognized (must be of type Service): couldn't get "
        "version/kind; json parse error: unexpected end of JSON input "
        '({"apiVersion":"v1","kind":"Ser ...)')
    assert bad_request(b"", kind="Service").endswith("unexpected end of JSON input (<empty>)")
    assert bad_request(b"[1 2]", kind="Service").endswith("(5b3120325d)")


def test_summarize_data():
    assert summarize_data(b"") == "<empty>"
    assert summarize_data(b'{"a":1}') == '{"a":1}'
    assert summarize_data(b"{" + b"x" * 40) == "{" + "x" * 29 + " ..."
    assert summarize_data(b"abc") == "616263"


@pytest.mark.parametrize("body,go_type", [
    (b"[1,2]", "array"), (b'"x"', "string"), (b"12", "number"), (b"true", "bool")])
def test_non_object_bodies(body, go_type):
    assert bad_request(body) == ("couldn't get version/kind; json parse error: json: cannot "
                                 f"unmarshal {go_type} into Go value of type {KIND_STRUCT}")


def test_non_object_yaml_bodies():
    assert "cannot unmarshal array into Go value" in bad_request(b"- a\n- b\n", YAML)
    assert "cannot unmarshal string into Go value" in bad_request(b"just text\n", YAML)


def test_null_and_empty_yaml_miss_the_kind():
    assert bad_request(b"null") == "Object 'Kind' is missing in 'null'"
    assert bad_request(b"", YAML) == "Object 'Kind' is missing in ''"
    assert bad_request(b"# only a comment\n", YAML) == (
        "Object 'Kind' is missing in '# only a comment\n'")


def test_require_kind():
    assert bad_request(b'{"apiVersion":"v1"}', require_kind=True) == (
        "Object 'Kind' is missing in '{\"apiVersion\":\"v1\"}'")
    assert decode_object(b'{"kind":"Pod"}', JSON, require_kind=True)[0] == {"kind": "Pod"}


def test_kind_and_api_version_must_be_strings():
    assert bad_request(b'{"kind":1}') == ("couldn't get version/kind; json parse error: json: "
                                          "cannot unmarshal number into Go struct field .kind of "
                                          "type string")
    assert "into Go struct field .apiVersion of type string" in bad_request(
        b'{"apiVersion":{"a":1}}')


@pytest.mark.parametrize("body,message", [
    (b"a: 1\n b: 2\n", "yaml: line 2: mapping values are not allowed in this context"),
    (b"a: [1\n", "yaml: line 1: did not find expected ',' or ']'"),
    (b"a: b\nc: @d\n", "yaml: line 2: found character that cannot start any token"),
    (b"a: *nope\n", "yaml: found undefined alias"),
    (b"a: .inf\n", "json: unsupported value: +Inf"),
    (b"? [a, b]\n: c\n", "yaml: found unhashable key"),
])
def test_malformed_yaml(body, message):
    assert bad_request(body, YAML) == message


def test_yaml_error_with_kind():
    assert bad_request(b"a: 1\n b: 2\n", YAML, kind="Service") == (
        "the object provided is unrecognized (must be of type Service): yaml: line 2: mapping "
        "values are not allowed in this context (613a20310a20623a20320a)")


# --- limits and hostile input --------------------------------------------------------------------

def test_body_too_large():
    e = error(b" " * (MAX_REQUEST_BODY_BYTES + 1))
    assert (e.code, e.reason, e.message) == (413, "RequestEntityTooLarge",
                                             "Request entity too large: limit is 3145728")
    with pytest.raises(StatusError) as e:
        decode_body(b" " * (MAX_REQUEST_BODY_BYTES + 1), YAML)
    assert e.value.code == 413
    # Exactly the limit is fine (it fails later, as an empty document).
    assert error(b" " * MAX_REQUEST_BODY_BYTES).code == 400


def test_protobuf_is_unsupported():
    e = error(b"k8s\x00", "application/vnd.kubernetes.protobuf")
    assert (e.code, e.reason) == (415, "UnsupportedMediaType")


def test_deeply_nested_json_is_a_clean_400():
    for body in (b"[" * 100_000, b'{"a":' * 100_000, b"[" * 100_000 + b"]" * 100_000):
        start = time.perf_counter()
        assert bad_request(body) == ("couldn't get version/kind; json parse error: invalid "
                                     f"character '{chr(body[0])}' exceeded max depth")
        assert time.perf_counter() - start < 1


def test_nesting_up_to_the_limit_is_fine():
    ok = b"[" * (MAX_NESTING_DEPTH - 1) + b"{}" + b"]" * (MAX_NESTING_DEPTH - 1)
    assert decode_body(ok, JSON)
    too_deep = b"[" + ok + b"]"
    assert "exceeded max depth" in bad_request(too_deep)
    # Brackets inside strings do not count.
    assert decode_object(b'{"a":"' + b"[" * 10_000 + b'"}', JSON)[0]["a"] == "[" * 10_000


def test_deeply_nested_yaml_is_a_clean_400():
    for body in (b"- " * 100_000 + b"x\n", b"[" * 100_000,
                 b"".join(b"  " * i + b"a:\n" for i in range(300)) + b"  " * 300 + b"b: 1\n"):
        start = time.perf_counter()
        assert "max" in bad_request(body, YAML) and "depth" in bad_request(body, YAML)
        assert time.perf_counter() - start < 1


def test_json_labelled_yaml_still_limits_depth():
    assert "depth" in bad_request(b"[" * 100_000, "application/apply-patch+yaml")


def test_billion_laughs_is_rejected_quickly():
    lines = [b'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [".encode() + b",".join([f"*{prev}".encode()] * 9) + b"]")
    start = time.perf_counter()
    assert bad_request(b"\n".join(lines) + b"\n", YAML) == (
        "yaml: document contains excessive aliasing")
    assert time.perf_counter() - start < 1


def test_quadratic_alias_blowup_is_rejected():
    body = b"a: &a [" + b",".join([b"x"] * 1000) + b"]\nb: [" + b",".join([b"*a"] * 3000) + b"]\n"
    assert bad_request(body, YAML) == "yaml: document contains excessive aliasing"


def test_alias_limit_counts_expansion(monkeypatch):
    monkeypatch.setattr(D, "MAX_YAML_EXPANDED_NODES", 50)
    # 30 raw nodes, but expands to more than 50: rejected on size alone.
    body = b"a: &a [" + b",".join([b"x"] * 25) + b"]\nb: *a\n"
    assert bad_request(body, YAML) == "yaml: document contains excessive aliasing"
