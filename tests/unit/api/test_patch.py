"""Tests of nanokube.api.patch: JSON merge patch, JSON patch, strategic merge patch, kubectl's
three-way apply patch and the simplified server-side apply."""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass

import pytest

from nanokube.api import patch as p
from nanokube.api.patch import (
    LAST_APPLIED, PatchError, apply_patch, create_three_way_strategic_patch, json_merge_patch,
    json_patch, strategic_merge_patch, with_last_applied,
)


# ---------------------------------------------------------------------------------------------
# A small fake schema with the API of nanokube.api.schema

@dataclass(frozen=True)
class Field:
    kind: str
    type: str | None = None
    patch_strategy: str | None = None
    patch_merge_key: str | None = None


S = Field("scalar")
MAP = Field("map")
META = Field("object", "Meta")

TYPES = {
    "Service": {"apiVersion": S, "kind": S, "metadata": META, "spec": Field("object", "SvcSpec")},
    "Meta": {"name": S, "namespace": S, "uid": S, "labels": MAP, "annotations": MAP,
             "finalizers": Field("list", None, "merge"),
             "ownerReferences": Field("list", "OwnerRef", "merge", "uid")},
    "OwnerRef": {"uid": S, "name": S, "kind": S},
    "SvcSpec": {"type": S, "clusterIP": S, "selector": MAP, "externalIPs": Field("list"),
                "ports": Field("list", "SvcPort", "merge", "port")},
    "SvcPort": {"port": S, "targetPort": S, "protocol": S, "name": S, "nodePort": S},
    "Deployment": {"apiVersion": S, "kind": S, "metadata": META,
                   "spec": Field("object", "DeploySpec")},
    "DeploySpec": {"replicas": S, "strategy": Field("object", "Strategy", "retainKeys"),
                   "template": Field("object", "PodTemplate")},
    "Strategy": {"type": S, "rollingUpdate": Field("object", "RollingUpdate")},
    "RollingUpdate": {"maxSurge": S, "maxUnavailable": S},
    "PodTemplate": {"metadata": META, "spec": Field("object", "PodSpec")},
    "PodSpec": {"nodeSelector": MAP,
                "containers": Field("list", "Container", "merge", "name"),
                "volumes": Field("list", "Volume", "merge,retainKeys", "name")},
    "Container": {"name": S, "image": S, "args": Field("list"),
                  "env": Field("list", "EnvVar", "merge", "name"),
                  "ports": Field("list", "CPort", "merge", "containerPort")},
    "EnvVar": {"name": S, "value": S},
    "CPort": {"containerPort": S, "protocol": S, "name": S},
    "Volume": {"name": S, "configMap": Field("object", "CMSource"),
               "emptyDir": Field("object", "EmptyDir")},
    "CMSource": {"name": S}, "EmptyDir": {"medium": S},
}


class FakeSchema:
    def field(self, type_name, json_field):
        return TYPES.get(type_name, {}).get(json_field)


FAKE = FakeSchema()


def smp(target, patch, type_name="Service"):
    return strategic_merge_patch(target, patch, type_name, schema=FAKE)


def three_way(original, modified, current, type_name="Service"):
    return create_three_way_strategic_patch(original, modified, current, type_name, schema=FAKE)


def svc(ports=None, **spec):
    spec = dict(spec)
    if ports is not None:
        spec["ports"] = ports
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": spec}


P80 = {"port": 80, "targetPort": 80, "protocol": "TCP"}
P443 = {"port": 443, "targetPort": 443, "protocol": "TCP"}


# ---------------------------------------------------------------------------------------------
# JSON merge patch (RFC 7386, the examples of its appendix A)

@pytest.mark.parametrize("target,patch,expected", [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ({"a": {"x": 1}}, {"a": {}}, {"a": {"x": 1}}),
])
def test_json_merge_patch(target, patch, expected):
    before = copy.deepcopy((target, patch))
    assert json_merge_patch(target, patch) == expected
    assert (target, patch) == before


def test_json_merge_patch_rejects_non_object():
    with pytest.raises(PatchError) as e:
        json_merge_patch({"a": 1}, [1])
    assert e.value.code == 400


# ---------------------------------------------------------------------------------------------
# JSON patch (RFC 6902) with the API server's messages

DOC = {"metadata": {"name": "web", "labels": {"a": "1"}}, "spec": {"ports": [P80, P443]}}


@pytest.mark.parametrize("ops,check", [
    ([{"op": "add", "path": "/metadata/labels/b", "value": "2"}],
     lambda d: d["metadata"]["labels"] == {"a": "1", "b": "2"}),
    ([{"op": "remove", "path": "/metadata/labels/a"}], lambda d: d["metadata"]["labels"] == {}),
    ([{"op": "replace", "path": "/spec/ports/0/port", "value": 81}],
     lambda d: d["spec"]["ports"][0]["port"] == 81),
    # evanphx/json-patch v4: replace of a missing member adds it
    ([{"op": "replace", "path": "/metadata/namespace", "value": "ns"}],
     lambda d: d["metadata"]["namespace"] == "ns"),
    ([{"op": "add", "path": "/spec/ports/-", "value": {"port": 8080}}],
     lambda d: [x["port"] for x in d["spec"]["ports"]] == [80, 443, 8080]),
    ([{"op": "add", "path": "/spec/ports/0", "value": {"port": 1}}],
     lambda d: [x["port"] for x in d["spec"]["ports"]] == [1, 80, 443]),
    ([{"op": "move", "from": "/metadata/labels", "path": "/metadata/annotations"}],
     lambda d: d["metadata"] == {"name": "web", "annotations": {"a": "1"}}),
    ([{"op": "copy", "from": "/metadata/name", "path": "/metadata/labels/name"}],
     lambda d: d["metadata"]["labels"]["name"] == "web"),
    ([{"op": "test", "path": "/metadata/name", "value": "web"},
      {"op": "remove", "path": "/spec"}], lambda d: "spec" not in d),
    ([], lambda d: d == DOC),
])
def test_json_patch_applies(ops, check):
    before = copy.deepcopy(DOC)
    assert check(json_patch(DOC, ops))
    assert DOC == before


@pytest.mark.parametrize("ops,code,message", [
    ([{"op": "test", "path": "/metadata/name", "value": "other"}], 422,
     "testing value /metadata/name failed: test failed"),
    ([{"op": "test", "path": "/metadata/nope", "value": "x"}], 422,
     "testing value /metadata/nope failed: test failed"),
    ([{"op": "remove", "path": "/metadata/nope"}], 422,
     "error in remove for path: '/metadata/nope': Unable to remove nonexistent key: nope: "
     "missing value"),
    ([{"op": "remove", "path": "/nope/x"}], 422,
     'remove operation does not apply: doc is missing path: "/nope/x": missing value'),
    ([{"op": "add", "path": "/nope/x", "value": 1}], 422,
     'add operation does not apply: doc is missing path: "/nope/x": missing value'),
    ([{"op": "add", "path": "/spec/ports/7", "value": 1}], 422,
     "error in add for path: '/spec/ports/7': Unable to access invalid index: 7: "
     "invalid index referenced"),
    ([{"op": "replace", "path": "/spec/ports/7", "value": 1}], 422,
     "replace operation does not apply: doc is missing key: /spec/ports/7: missing value"),
    ([{"op": "replace", "path": "/nope/x", "value": 1}], 422,
     "replace operation does not apply: doc is missing path: /nope/x: missing value"),
    ([{"op": "move", "from": "/nope/x", "path": "/a"}], 422,
     "move operation does not apply: doc is missing from path: /nope/x: missing value"),
    ([{"op": "frobnicate", "path": "/a"}], 422, "Unexpected kind: frobnicate"),
    ([{"path": "/a"}], 422, "Unexpected kind: unknown"),
    ([{"op": "add", "value": 1}], 422, "add operation failed to decode path: missing value"),
    ({"op": "add"}, 400, "json: cannot unmarshal object into Go value of type jsonpatch.Patch"),
    (["add"], 400, "json: cannot unmarshal string into Go value of type jsonpatch.Operation"),
])
def test_json_patch_errors(ops, code, message):
    with pytest.raises(PatchError) as e:
        json_patch(DOC, ops)
    assert (e.value.code, str(e.value)) == (code, message)


def test_json_patch_is_atomic_and_limits_operations():
    with pytest.raises(PatchError):
        json_patch(DOC, [{"op": "remove", "path": "/spec"},
                         {"op": "test", "path": "/metadata/name", "value": "x"}])
    assert "spec" in DOC
    too_many = [{"op": "test", "path": "/metadata/name", "value": "web"}] * 10001
    with pytest.raises(PatchError) as e:
        json_patch(DOC, too_many)
    assert e.value.code == 413
    assert str(e.value) == "The allowed maximum operations in a JSON patch is 10000, got 10001"


# ---------------------------------------------------------------------------------------------
# Strategic merge patch

def ports(obj):
    return obj["spec"]["ports"]


@pytest.mark.parametrize("name,target,patch,expected", [
    ("merge by key changes only that port",
     svc([P80, P443]), {"spec": {"ports": [{"port": 80, "targetPort": 8080}]}},
     [{"port": 80, "targetPort": 8080, "protocol": "TCP"}, P443]),
    ("merge by key, second item",
     svc([P80, P443]), {"spec": {"ports": [{"port": 443, "name": "https"}]}},
     [P80, {**P443, "name": "https"}]),
    ("$setElementOrder reorders",
     svc([P80, P443]),
     {"spec": {"$setElementOrder/ports": [{"port": 443}, {"port": 80}],
               "ports": [{"port": 80, "targetPort": 8080}]}},
     [P443, {**P80, "targetPort": 8080}]),
    ("$setElementOrder alone reorders",
     svc([P80, P443]), {"spec": {"$setElementOrder/ports": [{"port": 443}, {"port": 80}]}},
     [P443, P80]),
    ("$setElementOrder places a new item",
     svc([P80, P443]),
     {"spec": {"$setElementOrder/ports": [{"port": 80}, {"port": 8080}, {"port": 443}],
               "ports": [{"port": 8080}]}},
     [P80, {"port": 8080}, P443]),
    ("server-only items keep their live position",
     svc([{"port": 1}, {"port": 2}, {"port": 3}]),
     {"spec": {"$setElementOrder/ports": [{"port": 3}, {"port": 1}]}},
     [{"port": 2}, {"port": 3}, {"port": 1}]),
    ("a new item without order goes first, as in Kubernetes",
     svc([P80, P443]), {"spec": {"ports": [{"port": 8080}]}},
     [{"port": 8080}, P80, P443]),
    ("$patch delete element",
     svc([P80, P443]), {"spec": {"ports": [{"port": 80, "$patch": "delete"}]}}, [P443]),
    ("$patch delete of a missing element is a no-op",
     svc([P80]), {"spec": {"ports": [{"port": 9, "$patch": "delete"}]}}, [P80]),
    ("$patch replace element replaces the list",
     svc([P80, P443]), {"spec": {"ports": [{"port": 1}, {"$patch": "replace"}]}},
     [{"port": 1}]),
    ("null inside an element deletes the field",
     svc([P80, P443]), {"spec": {"ports": [{"port": 80, "targetPort": None}]}},
     [{"port": 80, "protocol": "TCP"}, P443]),
    ("list is created when absent, directives dropped",
     svc(), {"spec": {"ports": [{"port": 80, "name": None}, {"port": 9, "$patch": "delete"}]}},
     [{"port": 80}]),
])
def test_smp_service_ports(name, target, patch, expected):
    before = copy.deepcopy((target, patch))
    assert ports(smp(target, patch)) == expected, name
    assert (target, patch) == before


@pytest.mark.parametrize("name,target,patch,expected", [
    ("maps merge, null deletes",
     {"metadata": {"name": "a", "labels": {"x": "1", "y": "2"}}},
     {"metadata": {"labels": {"x": None, "z": "3"}}},
     {"metadata": {"name": "a", "labels": {"y": "2", "z": "3"}}}),
    ("null for a missing key is ignored",
     {"metadata": {"name": "a"}}, {"metadata": {"labels": None}, "spec": None},
     {"metadata": {"name": "a"}}),
    ("nulls inside a new value are dropped",
     {}, {"metadata": {"labels": {"a": None, "b": "1"}}}, {"metadata": {"labels": {"b": "1"}}}),
    ("$patch replace in a map",
     {"spec": {"selector": {"a": "1", "b": "2"}}},
     {"spec": {"selector": {"$patch": "replace", "c": "3"}}}, {"spec": {"selector": {"c": "3"}}}),
    ("$patch delete in a map",
     {"spec": {"selector": {"a": "1"}, "type": "ClusterIP"}},
     {"spec": {"selector": {"$patch": "delete"}}},
     {"spec": {"selector": {}, "type": "ClusterIP"}}),
    ("$patch merge in a map is a plain merge",
     {"spec": {"selector": {"a": "1"}}}, {"spec": {"selector": {"$patch": "merge", "b": "2"}}},
     {"spec": {"selector": {"a": "1", "b": "2"}}}),
    ("non-merging lists replace",
     {"spec": {"externalIPs": ["1.1.1.1", "2.2.2.2"]}}, {"spec": {"externalIPs": ["3.3.3.3"]}},
     {"spec": {"externalIPs": ["3.3.3.3"]}}),
    ("primitive merge list is a union, live order first",
     {"metadata": {"finalizers": ["a", "b"]}}, {"metadata": {"finalizers": ["b", "c"]}},
     {"metadata": {"finalizers": ["a", "b", "c"]}}),
    ("primitive merge list: only new items go first",
     {"metadata": {"finalizers": ["a", "b"]}}, {"metadata": {"finalizers": ["c"]}},
     {"metadata": {"finalizers": ["c", "a", "b"]}}),
    ("$deleteFromPrimitiveList",
     {"metadata": {"finalizers": ["a", "b", "c"]}},
     {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "x"]}},
     {"metadata": {"finalizers": ["a", "c"]}}),
    ("$deleteFromPrimitiveList with additions and order",
     {"metadata": {"finalizers": ["a", "b"]}},
     {"metadata": {"$setElementOrder/finalizers": ["c", "a"], "finalizers": ["c"],
                   "$deleteFromPrimitiveList/finalizers": ["b"]}},
     {"metadata": {"finalizers": ["c", "a"]}}),
    ("$deleteFromPrimitiveList on a missing list",
     {"metadata": {}}, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}},
     {"metadata": {}}),
    ("ownerReferences merge by uid",
     {"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}, {"uid": "2", "name": "b"}]}},
     {"metadata": {"ownerReferences": [{"uid": "2", "name": "c"}]}},
     {"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}, {"uid": "2", "name": "c"}]}}),
    ("unknown fields merge as JSON",
     {"status": {"a": {"b": 1, "c": 2}, "l": [1, 2]}},
     {"status": {"a": {"b": None, "d": 4}, "l": [3]}},
     {"status": {"a": {"c": 2, "d": 4}, "l": [3]}}),
    ("type change replaces",
     {"spec": {"selector": {"a": "1"}}}, {"spec": {"selector": "x"}},
     {"spec": {"selector": "x"}}),
])
def test_smp_service_table(name, target, patch, expected):
    before = copy.deepcopy((target, patch))
    assert smp(target, patch) == expected, name
    assert (target, patch) == before


def deploy(containers=None, strategy=None, volumes=None):
    spec = {"template": {"spec": {"containers": containers or []}}}
    if strategy is not None:
        spec["strategy"] = strategy
    if volumes is not None:
        spec["template"]["spec"]["volumes"] = volumes
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": spec}


def test_smp_nested_merge_lists():
    live = deploy([
        {"name": "app", "image": "a:1", "args": ["-x"],
         "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
         "ports": [{"containerPort": 80, "protocol": "TCP"}]},
        {"name": "side", "image": "s:1"},
    ])
    patch = {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": "a:2", "args": ["-y"],
         "env": [{"name": "B", "value": "3"}, {"name": "A", "$patch": "delete"}],
         "ports": [{"containerPort": 80, "name": "http"}]}]}}}}
    out = smp(live, patch, "Deployment")
    assert out["spec"]["template"]["spec"]["containers"] == [
        {"name": "app", "image": "a:2", "args": ["-y"], "env": [{"name": "B", "value": "3"}],
         "ports": [{"containerPort": 80, "protocol": "TCP", "name": "http"}]},
        {"name": "side", "image": "s:1"},
    ]


def test_smp_retain_keys():
    live = deploy(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}})
    out = smp(live, {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}},
              "Deployment")
    assert out["spec"]["strategy"] == {"type": "Recreate"}
    # fields set to null need not be listed
    out = smp(live, {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate",
                                           "rollingUpdate": None}}}, "Deployment")
    assert out["spec"]["strategy"] == {"type": "Recreate"}


def test_smp_retain_keys_in_list_elements():
    live = deploy(volumes=[{"name": "v", "configMap": {"name": "cm"}}, {"name": "w"}])
    patch = {"spec": {"template": {"spec": {"volumes": [
        {"name": "v", "$retainKeys": ["emptyDir", "name"], "emptyDir": {}}]}}}}
    out = smp(live, patch, "Deployment")
    assert out["spec"]["template"]["spec"]["volumes"] == [{"name": "v", "emptyDir": {}},
                                                          {"name": "w"}]


@pytest.mark.parametrize("patch,message", [
    ({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 2}}}},
     "invalid patch format of retainKeys"),
    ({"spec": {"strategy": {"$retainKeys": "type"}}}, "invalid patch format of retainKeys"),
    ({"spec": {"strategy": {"$patch": "explode"}}},
     "unknown patch type: explode in map: map[$patch:explode]"),
    ({"spec": {"template": {"spec": {"containers": [{"$patch": "merge", "name": "a"}]}}}},
     "merging lists cannot yet be specified in the patch"),
    ({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}},
     "map: map[image:x] does not contain declared merge key: name"),
    ({"spec": {"template": {"spec": {"containers": [{"$patch": "delete"}]}}}},
     "map: map[$patch:delete] does not contain declared merge key: name"),
    ({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
        "containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}]}}}},
     "The order in patch list:\n[map[image:1 name:a] map[image:2 name:b]]\n doesn't match "
     "$setElementOrder list:\n[map[name:b] map[name:a]]\n"),
    ({"spec": {"template": {"spec": {"$setElementOrderX": []}}}},
     "invalid patch format of setElementOrder list"),
    ({"spec": {"template": {"spec": {"containers": [["a"]]}}}},
     "lists of lists are not supported"),
])
def test_smp_errors(patch, message):
    live = deploy([{"name": "a", "image": "0"}],
                  strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}})
    with pytest.raises(PatchError) as e:
        smp(live, patch, "Deployment")
    assert str(e.value) == message


def test_smp_unknown_kind_is_json_merge_patch():
    live = svc([P80, P443])
    out = strategic_merge_patch(live, {"spec": {"ports": [{"port": 80, "targetPort": 1}]}}, None,
                                schema=FAKE)
    assert ports(out) == [{"port": 80, "targetPort": 1}]


def test_smp_does_not_mutate_and_shares_nothing():
    live = svc([P80, P443], selector={"a": "1"})
    patch = {"spec": {"ports": [{"port": 8080}], "selector": {"b": "2"}}}
    before = copy.deepcopy((live, patch))
    out = smp(live, patch)
    out["spec"]["selector"]["c"] = "3"
    out["spec"]["ports"][0]["name"] = "x"
    assert (live, patch) == before


# ---------------------------------------------------------------------------------------------
# kubectl's three-way patch, and the round trip through the server's strategic merge patch

def apply_file(file_obj, live, type_name="Service"):
    """What `kubectl apply` does against a live object: returns (patch, new live object)."""
    modified = with_last_applied(file_obj)
    annotation = ((live.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    original = json.loads(annotation) if annotation else None
    patch = three_way(original, modified, live, type_name)
    return patch, smp(live, patch, type_name)


def server_defaults(obj):
    """A stand-in for what the API server adds: defaults and allocated fields."""
    out = copy.deepcopy(obj)
    out["metadata"].update(uid="u-1", resourceVersion="7")
    spec = out.setdefault("spec", {})
    if out["kind"] == "Service":
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("clusterIP", "10.96.0.10")
        for port in spec.get("ports", []):
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port["port"])
    return out


def create(file_obj):
    return server_defaults(with_last_applied(file_obj))


def file_svc(ports_, selector=None, labels=None, **spec):
    obj = svc(ports_, **spec)
    if selector is not None:
        obj["spec"]["selector"] = selector
    if labels is not None:
        obj["metadata"]["labels"] = labels
    return obj


def strip(obj):
    out = copy.deepcopy(obj)
    out["metadata"].pop("annotations", None)
    return out


def test_apply_unchanged_file_gives_empty_patch():
    f = file_svc([{"port": 80}, {"port": 443, "targetPort": 8443}], selector={"app": "web"},
                 labels={"a": "1"})
    live = create(f)
    patch, after = apply_file(f, live)
    assert patch == {}
    assert after == live


@pytest.mark.parametrize("name,before_file,after_file,check", [
    ("change a port's targetPort",
     file_svc([{"port": 80}, {"port": 443}]),
     file_svc([{"port": 80, "targetPort": 8080}, {"port": 443}]),
     lambda o: ports(o) == [{"port": 80, "targetPort": 8080, "protocol": "TCP"},
                            {"port": 443, "protocol": "TCP", "targetPort": 443}]),
    ("remove a port",
     file_svc([{"port": 80}, {"port": 443}]), file_svc([{"port": 80}]),
     lambda o: ports(o) == [{"port": 80, "protocol": "TCP", "targetPort": 80}]),
    ("add a port in the middle",
     file_svc([{"port": 80}, {"port": 443}]),
     file_svc([{"port": 80}, {"port": 8080}, {"port": 443}]),
     lambda o: [x["port"] for x in ports(o)] == [80, 8080, 443]),
    ("reorder ports",
     file_svc([{"port": 80}, {"port": 443}]), file_svc([{"port": 443}, {"port": 80}]),
     lambda o: [x["port"] for x in ports(o)] == [443, 80]),
    ("drop a field the file set, keep defaults",
     file_svc([{"port": 80, "name": "http"}]), file_svc([{"port": 80}]),
     lambda o: ports(o) == [{"port": 80, "protocol": "TCP", "targetPort": 80}]),
    ("remove a label, add another",
     file_svc([{"port": 80}], labels={"a": "1", "b": "2"}),
     file_svc([{"port": 80}], labels={"a": "1", "c": "3"}),
     lambda o: o["metadata"]["labels"] == {"a": "1", "c": "3"}),
    ("remove all labels and the selector",
     file_svc([{"port": 80}], selector={"app": "x"}, labels={"a": "1"}),
     file_svc([{"port": 80}]),
     lambda o: "labels" not in o["metadata"] and "selector" not in o["spec"]),
    ("replace a non-merging list",
     file_svc([{"port": 80}], externalIPs=["1.1.1.1", "2.2.2.2"]),
     file_svc([{"port": 80}], externalIPs=["2.2.2.2"]),
     lambda o: o["spec"]["externalIPs"] == ["2.2.2.2"]),
    ("switch the type, keep the allocated clusterIP",
     file_svc([{"port": 80}]), file_svc([{"port": 80}], type="NodePort"),
     lambda o: o["spec"]["type"] == "NodePort" and o["spec"]["clusterIP"] == "10.96.0.10"),
])
def test_apply_round_trip(name, before_file, after_file, check):
    live = create(before_file)
    patch, after = apply_file(after_file, live)
    assert patch != {}, name
    assert check(after), (name, patch, after)
    # the new annotation is the new file, and applying the same file again changes nothing
    assert json.loads(after["metadata"]["annotations"][LAST_APPLIED]) == \
        json.loads(with_last_applied(after_file)["metadata"]["annotations"][LAST_APPLIED])
    again, same = apply_file(after_file, after)
    assert again == {}, (name, again)
    assert same == after


def test_three_way_patch_shapes_like_kubectl():
    original = file_svc([{"port": 80}, {"port": 443}], labels={"a": "1", "b": "2"})
    live = server_defaults(original)
    modified = file_svc([{"port": 443}, {"port": 80, "targetPort": 9090}, {"port": 8443}],
                        labels={"a": "1"})
    patch = three_way(original, modified, live)
    assert patch == {
        "metadata": {"labels": {"b": None}},
        "spec": {"$setElementOrder/ports": [{"port": 443}, {"port": 80}, {"port": 8443}],
                 "ports": [{"port": 80, "targetPort": 9090}, {"port": 8443}]},
    }
    patch = three_way(original, file_svc([{"port": 80}]), live)
    assert patch == {"metadata": {"labels": None},
                     "spec": {"$setElementOrder/ports": [{"port": 80}],
                              "ports": [{"port": 443, "$patch": "delete"}]}}


def test_three_way_keeps_what_others_changed():
    original = file_svc([{"port": 80}], labels={"a": "1"})
    live = server_defaults(original)
    live["metadata"]["labels"]["added-by-someone"] = "yes"
    live["spec"]["ports"].append({"port": 9000, "protocol": "TCP", "targetPort": 9000})
    modified = file_svc([{"port": 80}], labels={"a": "2"})
    patch = three_way(original, modified, live)
    # a list that differs from the file only by live-only items still gets an order directive
    assert patch == {"metadata": {"labels": {"a": "2"}},
                     "spec": {"$setElementOrder/ports": [{"port": 80}]}}
    after = smp(live, patch)
    assert after["metadata"]["labels"] == {"a": "2", "added-by-someone": "yes"}
    assert [x["port"] for x in ports(after)] == [80, 9000]


def test_three_way_without_original_deletes_nothing():
    live = server_defaults(file_svc([{"port": 80}], labels={"a": "1", "b": "2"}))
    patch = three_way(None, file_svc([{"port": 80}], labels={"a": "1"}), live)
    assert patch == {}


def test_three_way_primitive_merge_list():
    original = svc([{"port": 80}])
    original["metadata"]["finalizers"] = ["a", "b"]
    live = copy.deepcopy(original)
    live["metadata"]["finalizers"] = ["a", "b", "z"]
    modified = copy.deepcopy(original)
    modified["metadata"]["finalizers"] = ["c", "a"]
    patch = three_way(original, modified, live)
    assert patch == {"metadata": {"$setElementOrder/finalizers": ["c", "a"],
                                  "$deleteFromPrimitiveList/finalizers": ["b"],
                                  "finalizers": ["c"]}}
    assert smp(live, patch)["metadata"]["finalizers"] == ["c", "a", "z"]


def test_three_way_retain_keys_switches_strategy():
    original = deploy([{"name": "app", "image": "a:1"}],
                      strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}})
    live = copy.deepcopy(original)
    live["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] = "25%"
    modified = deploy([{"name": "app", "image": "a:1"}], strategy={"type": "Recreate"})
    patch = three_way(original, modified, live, "Deployment")
    assert patch == {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": None,
                                           "type": "Recreate"}}}
    after = smp(live, patch, "Deployment")
    assert after["spec"]["strategy"] == {"type": "Recreate"}
    assert three_way(modified, modified, after, "Deployment") == {}


def test_three_way_containers_round_trip():
    v1 = deploy([{"name": "app", "image": "a:1", "env": [{"name": "A", "value": "1"}]},
                 {"name": "side", "image": "s:1"}])
    live = copy.deepcopy(v1)
    live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "IfNotPresent"
    v2 = deploy([{"name": "app", "image": "a:2", "env": [{"name": "B", "value": "2"}]}])
    patch = three_way(v1, v2, live, "Deployment")
    after = smp(live, patch, "Deployment")
    assert after["spec"]["template"]["spec"]["containers"] == [
        {"name": "app", "image": "a:2", "env": [{"name": "B", "value": "2"}],
         "imagePullPolicy": "IfNotPresent"}]
    assert three_way(v2, v2, after, "Deployment") == {}


def test_three_way_does_not_mutate_inputs():
    original = file_svc([{"port": 80}, {"port": 443}], labels={"a": "1"})
    live = server_defaults(original)
    modified = file_svc([{"port": 443}], labels={"b": "1"})
    before = copy.deepcopy((original, modified, live))
    patch = three_way(original, modified, live)
    smp(live, patch)
    assert (original, modified, live) == before


def test_three_way_unknown_kind_is_json_merge():
    original = {"kind": "Widget", "metadata": {"name": "w"}, "spec": {"a": 1, "l": [1, 2]}}
    live = {"kind": "Widget", "metadata": {"name": "w", "uid": "u"},
            "spec": {"a": 1, "l": [1, 2], "x": "server"}}
    modified = {"kind": "Widget", "metadata": {"name": "w"}, "spec": {"l": [2], "b": {}}}
    patch = create_three_way_strategic_patch(original, modified, live, None, schema=FAKE)
    assert patch == {"spec": {"a": None, "l": [2], "b": {}}}
    assert json_merge_patch(live, patch)["spec"] == {"l": [2], "x": "server", "b": {}}
    assert create_three_way_strategic_patch(original, original, live, None, schema=FAKE) == {}


# ---------------------------------------------------------------------------------------------
# Simplified server-side apply, last-applied annotation

def test_apply_patch_creates_and_merges_without_removing():
    created = apply_patch(None, svc([{"port": 80, "name": None}], selector={"a": "1"}), "Service",
                          schema=FAKE)
    assert created == svc([{"port": 80}], selector={"a": "1"})
    live = server_defaults(svc([P80, P443], selector={"a": "1", "b": "2"}))
    out = apply_patch(live, svc([{"port": 80, "targetPort": 8080}], selector={"a": "1"}),
                      "Service", schema=FAKE)
    assert ports(out) == [{**P80, "targetPort": 8080}, P443]
    assert out["spec"]["selector"] == {"a": "1", "b": "2"}
    assert out["metadata"]["uid"] == "u-1"


def test_with_last_applied_matches_kubectl():
    obj = {"kind": "Service", "apiVersion": "v1",
           "metadata": {"name": "web", "labels": {"z": "<&>"}},
           "spec": {"ports": [{"port": 80}]}}
    out = with_last_applied(obj)
    assert out["metadata"]["annotations"][LAST_APPLIED] == (
        '{"apiVersion":"v1","kind":"Service","metadata":{"annotations":{},'
        '"labels":{"z":"\\u003c\\u0026\\u003e"},"name":"web"},"spec":{"ports":[{"port":80}]}}\n')
    assert "annotations" not in obj["metadata"]
    # an old annotation is replaced, other annotations are kept and recorded
    obj["metadata"]["annotations"] = {LAST_APPLIED: "old", "note": "x"}
    text = with_last_applied(obj)["metadata"]["annotations"][LAST_APPLIED]
    assert json.loads(text)["metadata"]["annotations"] == {"note": "x"}


# ---------------------------------------------------------------------------------------------
# Against the real schema (nanokube.api.schema)

real_schema = pytest.importorskip("nanokube.api.schema")


def real(group, version, kind):
    name = real_schema.root_type(group, version, kind)
    assert name is not None
    return name


def test_real_schema_service_ports():
    t = real("", "v1", "Service")
    live = server_defaults(svc([{"port": 80}, {"port": 443}], selector={"app": "x"}))
    out = strategic_merge_patch(live, {"spec": {"ports": [{"port": 80, "targetPort": 8080}]}}, t)
    assert ports(out) == [{"port": 80, "protocol": "TCP", "targetPort": 8080},
                          {"port": 443, "protocol": "TCP", "targetPort": 443}]
    out = strategic_merge_patch(live, {"spec": {
        "$setElementOrder/ports": [{"port": 443}, {"port": 80}],
        "ports": [{"port": 80, "targetPort": 8080}]}}, t)
    assert [x["port"] for x in ports(out)] == [443, 80]
    out = strategic_merge_patch(live, {"spec": {"selector": {"tier": "web"}}}, t)
    assert out["spec"]["selector"] == {"app": "x", "tier": "web"}


def test_real_schema_metadata_lists():
    t = real("", "v1", "Service")
    live = svc([P80])
    live["metadata"].update(finalizers=["a"], ownerReferences=[{"uid": "1", "name": "o"}])
    out = strategic_merge_patch(live, {"metadata": {
        "finalizers": ["b"], "ownerReferences": [{"uid": "2", "name": "p"}]}}, t)
    assert out["metadata"]["finalizers"] == ["b", "a"]
    assert [o["uid"] for o in out["metadata"]["ownerReferences"]] == ["2", "1"]


def test_real_schema_deployment_apply_round_trip():
    t = real("apps", "v1", "Deployment")
    v1 = deploy([{"name": "app", "image": "a:1",
                  "ports": [{"containerPort": 80}, {"containerPort": 81}],
                  "env": [{"name": "A", "value": "1"}]}],
                strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}})
    live = with_last_applied(v1)
    v2 = deploy([{"name": "app", "image": "a:2", "ports": [{"containerPort": 81}],
                  "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}],
                strategy={"type": "Recreate"})
    m2 = with_last_applied(v2)
    original = json.loads(live["metadata"]["annotations"][LAST_APPLIED])
    patch = create_three_way_strategic_patch(original, m2, live, t)
    assert patch["spec"]["strategy"] == {"$retainKeys": ["type"], "rollingUpdate": None,
                                         "type": "Recreate"}
    after = strategic_merge_patch(live, patch, t)
    assert strip(after) == strip(v2)
    assert create_three_way_strategic_patch(
        json.loads(m2["metadata"]["annotations"][LAST_APPLIED]), m2, after, t) == {}


def test_real_schema_unchanged_apply_is_empty():
    t = real("", "v1", "Service")
    f = file_svc([{"port": 80, "name": "http"}, {"port": 443, "name": "https"}],
                 selector={"app": "x"}, labels={"a": "b"}, type="LoadBalancer")
    live = create(f)
    original = json.loads(live["metadata"]["annotations"][LAST_APPLIED])
    assert create_three_way_strategic_patch(original, with_last_applied(f), live, t) == {}


def test_go_value_rendering():
    assert p._go_v({"b": [1, 2.0, True, None], "a": "x"}) == "map[a:x b:[1 2 true <nil>]]"
