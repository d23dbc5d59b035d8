"""IngressClasses (networking.k8s.io/v1, cluster-scoped)."""
from __future__ import annotations

import re
from typing import Any

from nanokube.api import errors as E
from nanokube.api.errors import FieldError
from nanokube.api.tables import since
from nanokube.registry import validation as V
from nanokube.registry.base import AGE_COLUMN, NAME_COLUMN, Column, Strategy
from nanokube.registry.ingress import GROUP, validate_typed_local_object_reference

MAX_CONTROLLER_LENGTH = 250
SCOPES = ["Cluster", "Namespace"]
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
_HTTP_PATH = r"[A-Za-z0-9/\-._~%!$&'()*+,;=:]+"


def is_domain_prefixed_path(field: str, value: str) -> list[FieldError]:
    """validation.IsDomainPrefixedPath."""
    if not value:
        return [E.required(field)]
    parts = value.split("/", 1)
    if len(parts) != 2 or not parts[0] or not parts[1]:
        return [E.invalid(field, value, 'must be a domain-prefixed path (such as "acme.io/foo")')]
    host, path = parts
    errs = [E.invalid(field, host, m) for m in V.is_dns1123_subdomain(host)]
    if not re.fullmatch(_HTTP_PATH, path):
        errs.append(E.invalid(field, path, "must be a valid path (regex used for validation is "
                                           f"'{_HTTP_PATH}')"))
    return errs


def validate_parameters(params: dict | None, field: str) -> list[FieldError]:
    if params is None:
        return []
    errs = validate_typed_local_object_reference(params, field)
    scope = params.get("scope")
    if scope is None:
        return errs + [E.required(f"{field}.scope")]
    if scope not in SCOPES:
        return errs + [E.not_supported(f"{field}.scope", scope, SCOPES)]
    namespace = params.get("namespace")
    if scope == "Namespace":
        if namespace is None:
            errs.append(E.required(f"{field}.namespace", "`parameters.scope` is set to "
                                                          "'Namespace'"))
        else:
            errs += [E.invalid(f"{field}.namespace", namespace, m)
                     for m in V.is_dns1123_label(namespace)]
    elif namespace is not None:
        errs.append(E.forbidden(f"{field}.namespace", "`parameters.scope` is set to 'Cluster'"))
    return errs


def is_default_class(obj: dict) -> bool:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return annotations.get(DEFAULT_CLASS_ANNOTATION) == "true"


class IngressClassStrategy(Strategy):
    group = GROUP
    kind = "IngressClass"
    plural = "ingressclasses"
    singular = "ingressclass"
    namespaced = False
    columns = [
        NAME_COLUMN,
        Column("Controller", description="Controller that is responsible for handling this "
               "class"),
        Column("Parameters", description="A reference to a resource with additional "
               "parameters"),
        AGE_COLUMN,
    ]

    def default(self, obj: dict) -> None:
        params = (obj.get("spec") or {}).get("parameters")
        if isinstance(params, dict) and params.get("scope") is None:
            params["scope"] = "Cluster"

    def validate(self, obj: dict) -> list[FieldError]:
        errs = V.validate_object_meta(obj.get("metadata") or {}, False)
        spec = obj.get("spec") or {}
        controller = spec.get("controller") or ""
        if len(controller) > MAX_CONTROLLER_LENGTH:
            errs.append(E.too_long("spec.controller", MAX_CONTROLLER_LENGTH))
        errs += is_domain_prefixed_path("spec.controller", controller)
        errs += validate_parameters(spec.get("parameters"), "spec.parameters")
        return errs

    def validate_update(self, new: dict, old: dict) -> list[FieldError]:
        errs = V.validate_object_meta_update(new.get("metadata") or {}, old.get("metadata") or {})
        controller = (new.get("spec") or {}).get("controller") or ""
        if controller != ((old.get("spec") or {}).get("controller") or ""):
            errs.append(E.invalid("spec.controller", controller, "field is immutable"))
        return errs + self.validate(new)

    def table_row(self, obj: dict) -> list[Any]:
        spec = obj.get("spec") or {}
        params = spec.get("parameters")
        parameters = "<none>"
        if params:
            parameters = params.get("kind", "")
            if params.get("apiGroup") is not None:
                parameters += "." + params["apiGroup"]
            parameters += "/" + params.get("name", "")
        return [obj["metadata"]["name"], spec.get("controller") or "", parameters,
                since(obj["metadata"].get("creationTimestamp"))]
