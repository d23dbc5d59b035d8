"""authorization.k8s.io/v1 SelfSubjectAccessReview and SelfSubjectRulesReview: validation, the
answer (nanokube allows every authenticated request), discovery and kubectl's protobuf body."""
from __future__ import annotations

from nanokube.api import discovery
from nanokube.api import protobuf as pb
from nanokube.registry import default_registry
from nanokube.registry.authorization import (REASON, SelfSubjectAccessReviewStrategy,
                                             SelfSubjectRulesReviewStrategy)

GV = "authorization.k8s.io/v1"


def ssar(spec: dict, metadata: dict | None = None) -> dict:
    return {"apiVersion": GV, "kind": "SelfSubjectAccessReview",
            "metadata": metadata if metadata is not None else {"creationTimestamp": None},
            "spec": spec}


def test_access_review_is_allowed_with_the_reason():
    s = SelfSubjectAccessReviewStrategy()
    obj = ssar({"resourceAttributes": {"verb": "create", "resource": "pods",
                                       "namespace": "default"}})
    assert s.validate(obj) == []
    answer = s.review(obj)
    assert answer["status"] == {"allowed": True, "reason": REASON}
    assert answer["spec"] == obj["spec"] and answer["kind"] == "SelfSubjectAccessReview"


def test_access_review_needs_exactly_one_kind_of_attributes():
    s = SelfSubjectAccessReviewStrategy()
    (none,) = s.validate(ssar({}))
    assert none.field == "spec.resourceAttributes"
    assert "exactly one of nonResourceAttributes or resourceAttributes" in none.body()
    (both,) = s.validate(ssar({"resourceAttributes": {"verb": "get"},
                               "nonResourceAttributes": {"path": "/healthz", "verb": "get"}}))
    assert both.field == "spec.nonResourceAttributes"
    assert "cannot be specified in combination with resourceAttributes" in both.body()
    (meta,) = s.validate(ssar({"nonResourceAttributes": {"path": "/"}}, {"name": "x"}))
    assert meta.field == "metadata" and "must be empty" in meta.body()


def test_rules_review_lists_everything():
    s = SelfSubjectRulesReviewStrategy()
    obj = {"apiVersion": GV, "kind": "SelfSubjectRulesReview", "metadata": {},
           "spec": {"namespace": "default"}}
    assert s.validate(obj) == []
    status = s.review(obj)["status"]
    assert status["resourceRules"] == [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]
    assert status["nonResourceRules"] == [{"verbs": ["*"], "nonResourceURLs": ["*"]}]
    assert status["incomplete"] is False


def test_discovery_offers_create_only():
    doc = discovery.resource_list(default_registry(), "authorization.k8s.io", "v1")
    by_name = {r["name"]: r for r in doc["resources"]}
    assert set(by_name) == {"selfsubjectaccessreviews", "selfsubjectrulesreviews"}
    assert all(r["verbs"] == ["create"] and r["namespaced"] is False for r in by_name.values())
    aggregated = discovery.aggregated(default_registry(), core=False)
    group = next(i for i in aggregated["items"] if i["metadata"]["name"] == "authorization.k8s.io")
    assert {r["resource"]: r["verbs"] for r in group["versions"][0]["resources"]} == {
        "selfsubjectaccessreviews": ["create"], "selfsubjectrulesreviews": ["create"]}


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def _field(number: int, value: bytes | str) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def test_kubectl_protobuf_body_decodes():
    """`kubectl auth can-i create pods` sends the review as protobuf in a runtime.Unknown."""
    attributes = _field(1, "default") + _field(2, "create") + _field(5, "pods")
    review = _field(1, b"") + _field(2, _field(1, attributes))
    type_meta = _field(1, GV) + _field(2, "SelfSubjectAccessReview")
    body = pb.MAGIC + _field(1, type_meta) + _field(2, review)
    obj = pb.decode_object(body)
    assert obj["kind"] == "SelfSubjectAccessReview"
    assert obj["spec"] == {"resourceAttributes": {"namespace": "default", "verb": "create",
                                                  "resource": "pods"}}
    assert SelfSubjectAccessReviewStrategy().validate(obj) == []
