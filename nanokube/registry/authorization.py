"""authorization.k8s.io/v1 SelfSubjectAccessReview and SelfSubjectRulesReview: "can I?".

nanokube has no authorizer: every authenticated request is allowed (kube-apiserver's
--authorization-mode=AlwaysAllow). The reviews say so, so that `kubectl auth can-i VERB
RESOURCE` answers yes and `kubectl auth can-i --list` lists everything. Like kube-apiserver,
a review is only created (POST to the collection) and answered, never stored.
"""
from __future__ import annotations

from nanokube.api import errors as E
from nanokube.api.errors import FieldError
from nanokube.registry.base import Strategy

GROUP = "authorization.k8s.io"
REASON = "nanokube authorizes every authenticated request"


class _ReviewStrategy(Strategy):
    group = GROUP
    namespaced = False
    create_only = True            # served by `serve`, not by the generic storage machinery
    verbs = ["create"]

    def review(self, obj: dict) -> dict:
        raise NotImplementedError


def _metadata_must_be_empty(obj: dict) -> list[FieldError]:
    meta = {k: v for k, v in (obj.get("metadata") or {}).items()
            if not (k == "creationTimestamp" and v is None)}
    return [E.invalid("metadata", meta, "must be empty")] if meta else []


class SelfSubjectAccessReviewStrategy(_ReviewStrategy):
    kind = "SelfSubjectAccessReview"
    plural = "selfsubjectaccessreviews"
    singular = "selfsubjectaccessreview"

    def validate(self, obj: dict) -> list[FieldError]:
        """ValidateSelfSubjectAccessReview."""
        errs = _metadata_must_be_empty(obj)
        spec = obj.get("spec") or {}
        resource, non_resource = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
        if resource is not None and non_resource is not None:
            errs.append(E.invalid("spec.nonResourceAttributes", non_resource,
                                  "cannot be specified in combination with resourceAttributes"))
        if resource is None and non_resource is None:
            errs.append(E.invalid("spec.resourceAttributes", None, "exactly one of "
                                  "nonResourceAttributes or resourceAttributes must be "
                                  "specified"))
        return errs

    def review(self, obj: dict) -> dict:
        return {**obj, "metadata": {"creationTimestamp": None},
                "status": {"allowed": True, "reason": REASON}}


class SelfSubjectRulesReviewStrategy(_ReviewStrategy):
    kind = "SelfSubjectRulesReview"
    plural = "selfsubjectrulesreviews"
    singular = "selfsubjectrulesreview"

    def validate(self, obj: dict) -> list[FieldError]:
        return _metadata_must_be_empty(obj)

    def review(self, obj: dict) -> dict:
        status = {"resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                  "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                  "incomplete": False}
        return {**obj, "metadata": {"creationTimestamp": None}, "status": status}


async def serve(request, route, s: _ReviewStrategy):
    """POST /apis/authorization.k8s.io/v1/<reviews>: the review, answered (201)."""
    from nanokube.api.decode import decode_object
    from nanokube.api.rest import json_response
    if route.name is not None or route.namespace is not None or route.subresource:
        raise E.StatusError(404, "NotFound", "the server could not find the requested "
                            "resource", {})
    if request.method != "POST":
        raise E.StatusError(405, "MethodNotAllowed", "the server does not allow this method on "
                            "the requested resource", {})
    obj, _ = decode_object(await request.read(),        # a review is small: aiohttp's limit
                           request.headers.get("Content-Type", "application/json"))
    gv = f"{s.group}/{route.version}"
    obj.setdefault("apiVersion", gv)
    obj.setdefault("kind", s.kind)
    if obj["apiVersion"] != gv or obj["kind"] != s.kind:
        raise E.bad_request(f"the API version in the data ({obj['apiVersion']}) does not match "
                            f"the expected API version ({gv})" if obj["apiVersion"] != gv else
                            f"the kind in the data ({obj['kind']}) does not match the expected "
                            f"kind ({s.kind})")
    errs = s.validate(obj)
    if errs:
        raise E.invalid_error(s.kind, s.group, "", errs)
    return json_response(s.review(obj), 201)
