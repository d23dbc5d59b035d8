"""StatefulSets (apps/v1): defaulting, validation and table of SetDefaults_StatefulSet,
ValidateStatefulSetSpec/ValidateStatefulSetUpdate and the StatefulSet printer.

As in Kubernetes the pod template is checked for its labels and annotations only (the pods the
controller makes are validated when it creates them), and volumeClaimTemplates are accepted:
nanokube has no volumes, so no PersistentVolumeClaim is ever made for them (the controller says
so with a Warning Event).
"""
from __future__ import annotations

from typing import Any

from nanokube.api import errors as E
from nanokube.api.errors import FieldError, GoLiteral, go_quote
from nanokube.api.tables import since
from nanokube.registry import validation as V
from nanokube.registry.base import AGE_COLUMN, NAME_COLUMN, Column, Strategy
from nanokube.registry.deployment import (TEMPLATE_COLUMNS, containers_cells, default_template,
                                          go_label_selector, nonnegative, selector_is_empty,
                                          selector_is_valid, selector_matches,
                                          validate_label_selector)

ORDERED_READY = "OrderedReady"
PARALLEL = "Parallel"
ROLLING_UPDATE = "RollingUpdate"
ON_DELETE = "OnDelete"
RETAIN = "Retain"
DELETE = "Delete"

# The spec fields an update may change (ValidateStatefulSetUpdate).
MUTABLE_SPEC_FIELDS = ("replicas", "ordinals", "template", "updateStrategy",
                       "persistentVolumeClaimRetentionPolicy", "minReadySeconds")
IMMUTABLE_MESSAGE = ("updates to statefulset spec for fields other than 'replicas', 'ordinals', "
                     "'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and "
                     "'minReadySeconds' are forbidden")


# ---- defaulting ---------------------------------------------------------------------------------

def _default_claim_template(claim: dict) -> None:
    """SetDefaults_PersistentVolumeClaim on each volumeClaimTemplate, as the API server does."""
    if not isinstance(claim, dict):
        return
    claim.setdefault("apiVersion", "v1")
    claim.setdefault("kind", "PersistentVolumeClaim")
    spec = claim.setdefault("spec", {})
    if isinstance(spec, dict):
        spec.setdefault("volumeMode", "Filesystem")
    status = claim.setdefault("status", {})
    if isinstance(status, dict):
        status.setdefault("phase", "Pending")


def default_statefulset(obj: dict) -> None:
    """SetDefaults_StatefulSet (apps/v1)."""
    spec = obj.setdefault("spec", {})
    if not spec.get("podManagementPolicy"):
        spec["podManagementPolicy"] = ORDERED_READY
    strategy = spec.get("updateStrategy")
    if not isinstance(strategy, dict):
        strategy = spec["updateStrategy"] = {}
    if not strategy.get("type"):
        strategy["type"] = ROLLING_UPDATE
        if strategy.get("rollingUpdate") is None:
            strategy["rollingUpdate"] = {}
    rolling = strategy.get("rollingUpdate")
    if strategy["type"] == ROLLING_UPDATE and isinstance(rolling, dict):
        if rolling.get("partition") is None:
            rolling["partition"] = 0
    policy = spec.get("persistentVolumeClaimRetentionPolicy")
    if not isinstance(policy, dict):
        policy = spec["persistentVolumeClaimRetentionPolicy"] = {}
    for key in ("whenDeleted", "whenScaled"):
        if not policy.get(key):
            policy[key] = RETAIN
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    for claim in spec.get("volumeClaimTemplates") or []:
        _default_claim_template(claim)
    default_template(spec)


# ---- validation ---------------------------------------------------------------------------------

def _go_rolling_update(rolling: Any) -> GoLiteral:
    # Go prints a set pointer as an address; its value is never shown.
    if rolling is None:
        return GoLiteral("(*apps.RollingUpdateStatefulSetStrategy)(nil)")
    return GoLiteral("(*apps.RollingUpdateStatefulSetStrategy)(0xc000000000)")


def _validate_pod_management_policy(spec: dict) -> list[FieldError]:
    policy = spec.get("podManagementPolicy") or ""
    if not policy:
        return [E.required("spec.podManagementPolicy")]
    if policy not in (ORDERED_READY, PARALLEL):
        return [E.invalid("spec.podManagementPolicy", policy,
                          f"must be '{ORDERED_READY}' or '{PARALLEL}'")]
    return []


def _validate_rolling_update(rolling: dict, field: str) -> list[FieldError]:
    errs = nonnegative(rolling.get("partition") or 0, f"{field}.partition")
    unavailable = rolling.get("maxUnavailable")
    if unavailable is not None and unavailable in (0, "0%"):
        errs.append(E.invalid(f"{field}.maxUnavailable", unavailable, "cannot be 0"))
    return errs


def _validate_update_strategy(spec: dict) -> list[FieldError]:
    strategy = spec.get("updateStrategy") or {}
    kind, rolling = strategy.get("type") or "", strategy.get("rollingUpdate")
    if not kind:
        return [E.required("spec.updateStrategy")]
    if kind == ON_DELETE:
        if rolling is not None:
            return [E.invalid("spec.updateStrategy.rollingUpdate", _go_rolling_update(rolling),
                              f"only allowed for updateStrategy '{ROLLING_UPDATE}'")]
        return []
    if kind == ROLLING_UPDATE:
        return _validate_rolling_update(rolling, "spec.updateStrategy.rollingUpdate") \
            if isinstance(rolling, dict) else []
    value = GoLiteral(f"apps.StatefulSetUpdateStrategy{{Type:{go_quote(kind)}, "
                      f"RollingUpdate:{_go_rolling_update(rolling)}}}")
    return [E.invalid("spec.updateStrategy", value,
                      f"must be '{ROLLING_UPDATE}' or '{ON_DELETE}'")]


def _validate_retention_policy(spec: dict) -> list[FieldError]:
    policy = spec.get("persistentVolumeClaimRetentionPolicy")
    if policy is None:
        return []
    errs = []
    for key in ("whenDeleted", "whenScaled"):
        value = (policy or {}).get(key) or ""
        if value not in (RETAIN, DELETE):
            errs.append(E.not_supported(f"spec.persistentVolumeClaimRetentionPolicy.{key}",
                                        value, [RETAIN, DELETE]))
    return errs


def _validate_selector_and_template(spec: dict) -> list[FieldError]:
    """The selector and ValidatePodTemplateSpecForStatefulSet."""
    errs: list[FieldError] = []
    selector = spec.get("selector")
    if selector is None:
        errs.append(E.required("spec.selector"))
    else:
        errs += validate_label_selector(selector, "spec.selector")
        if selector_is_empty(selector):
            errs.append(E.invalid("spec.selector", go_label_selector(selector),
                                  "empty selector is invalid for statefulset"))
    template = spec.get("template") if isinstance(spec.get("template"), dict) else {}
    meta = template.get("metadata") or {}
    if not selector_is_valid(selector):
        errs.append(E.invalid("spec.selector", go_label_selector(selector), ""))
    else:
        labels = meta.get("labels")
        if not selector_is_empty(selector) and not selector_matches(selector, labels):
            errs.append(E.invalid("spec.template.metadata.labels",
                                  labels if labels is not None else
                                  GoLiteral("map[string]string(nil)"),
                                  "`selector` does not match template `labels`"))
        errs += V.validate_labels(meta.get("labels"), "spec.template.labels")
        errs += V.validate_annotations(meta.get("annotations"), "spec.template.annotations")
    pod_spec = template.get("spec") or {}
    restart = pod_spec.get("restartPolicy") or ""
    if restart != "Always":
        errs.append(E.not_supported("spec.template.spec.restartPolicy", restart, ["Always"]))
    if pod_spec.get("activeDeadlineSeconds") is not None:
        errs.append(E.forbidden("spec.template.spec.activeDeadlineSeconds",
                                "activeDeadlineSeconds in StatefulSet is not Supported"))
    return errs


def validate_statefulset_spec(spec: dict) -> list[FieldError]:
    """ValidateStatefulSetSpec."""
    errs = _validate_pod_management_policy(spec)
    errs += _validate_update_strategy(spec)
    errs += _validate_retention_policy(spec)
    errs += nonnegative(spec.get("replicas"), "spec.replicas")
    errs += nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds")
    if isinstance(spec.get("ordinals"), dict):
        errs += nonnegative(spec["ordinals"].get("start") or 0, "spec.ordinals.start")
    errs += _validate_selector_and_template(spec)
    return errs


def validate_spec_update(new_spec: dict, old_spec: dict) -> list[FieldError]:
    """Only the mutable fields may change."""
    def fixed(spec: dict) -> dict:
        return {k: v for k, v in spec.items() if k not in MUTABLE_SPEC_FIELDS}
    if fixed(new_spec) != fixed(old_spec):
        return [E.forbidden("spec", IMMUTABLE_MESSAGE)]
    return []


# ---- strategy -----------------------------------------------------------------------------------

class StatefulSetStrategy(Strategy):
    group = "apps"
    kind = "StatefulSet"
    plural = "statefulsets"
    singular = "statefulset"
    short_names = ("sts",)
    categories = ("all",)
    has_status = True
    columns = [
        NAME_COLUMN,
        Column("Ready", description="Number of the pod with ready state"),
        AGE_COLUMN,
        *TEMPLATE_COLUMNS,
    ]

    def default(self, obj: dict) -> None:
        default_statefulset(obj)

    def validate(self, obj: dict) -> list[FieldError]:
        # Pods are named <statefulset>-<ordinal> and take the name as hostname: a DNS label.
        errs = V.validate_object_meta(obj.get("metadata") or {}, True,
                                      name_validator=V.is_dns1123_label)
        return errs + validate_statefulset_spec(obj.get("spec") or {})

    def validate_update(self, new: dict, old: dict) -> list[FieldError]:
        # The name is not validated again: older servers allowed DNS subdomains.
        errs = V.validate_object_meta_update(new.get("metadata") or {}, old.get("metadata") or {})
        spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
        errs += validate_statefulset_spec(spec)
        errs += validate_spec_update(spec, old_spec)
        return errs

    def table_row(self, obj: dict) -> list[Any]:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        containers, images = containers_cells(obj)
        return [obj["metadata"]["name"],
                f"{status.get('readyReplicas') or 0}/{spec.get('replicas') or 0}",
                since(obj["metadata"].get("creationTimestamp")), containers, images]
