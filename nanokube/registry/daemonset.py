"""DaemonSets (apps/v1): defaulting, validation and table of SetDefaults_DaemonSet,
ValidateDaemonSetSpec/ValidateDaemonSetUpdate and the DaemonSet printer."""
from __future__ import annotations

from typing import Any

from nanokube.api import errors as E
from nanokube.api.errors import FieldError, GoLiteral, go_quote
from nanokube.api.tables import since
from nanokube.registry import validation as V
from nanokube.registry.base import AGE_COLUMN, NAME_COLUMN, Column, Strategy
from nanokube.registry.deployment import (TEMPLATE_COLUMNS, _go_int_or_string, _int_or_percent,
                                          _validate_int_or_percent, containers_cells,
                                          default_template, go_label_selector, nonnegative,
                                          selector_is_empty, selector_is_valid, selector_matches,
                                          selector_string, validate_label_selector,
                                          validate_selector_immutable)
from nanokube.registry.pod import validate_pod_template_spec

ROLLING_UPDATE = "RollingUpdate"
ON_DELETE = "OnDelete"


def default_daemonset(obj: dict) -> None:
    """SetDefaults_DaemonSet (apps/v1): RollingUpdate, maxUnavailable 1, maxSurge 0."""
    spec = obj.setdefault("spec", {})
    strategy = spec.get("updateStrategy")
    if not isinstance(strategy, dict):
        strategy = spec["updateStrategy"] = {}
    if not strategy.get("type"):
        strategy["type"] = ROLLING_UPDATE
    if strategy["type"] == ROLLING_UPDATE:
        rolling = strategy.get("rollingUpdate")
        if not isinstance(rolling, dict):
            rolling = strategy["rollingUpdate"] = {}
        if rolling.get("maxUnavailable") is None:
            rolling["maxUnavailable"] = 1
        if rolling.get("maxSurge") is None:
            rolling["maxSurge"] = 0
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    default_template(spec)


# ---- validation ---------------------------------------------------------------------------------

def _validate_rolling_update(rolling: dict, field: str) -> list[FieldError]:
    """ValidateRollingUpdateDaemonSet: exactly one of maxUnavailable and maxSurge is non-zero."""
    unavailable, surge = rolling.get("maxUnavailable"), rolling.get("maxSurge")
    errs: list[FieldError] = []
    for name, value in (("maxUnavailable", unavailable), ("maxSurge", surge)):
        errs += _validate_int_or_percent(value if value is not None else 0, f"{field}.{name}")
        if isinstance(value, str) and _int_or_percent(value) > 100:
            errs.append(E.invalid(f"{field}.{name}", _go_int_or_string(value),
                                  "must not be greater than 100%"))
    has_unavailable, has_surge = _int_or_percent(unavailable) != 0, _int_or_percent(surge) != 0
    if has_unavailable and has_surge:
        errs.append(E.invalid(f"{field}.maxSurge", _go_int_or_string(surge),
                              "may not be set when maxUnavailable is non-zero"))
    elif not has_unavailable and not has_surge:
        errs.append(E.required(f"{field}.maxUnavailable", "cannot be 0 when maxSurge is 0"))
    return errs


def _validate_update_strategy(strategy: dict) -> list[FieldError]:
    kind, rolling = strategy.get("type") or "", strategy.get("rollingUpdate")
    if kind == ON_DELETE:
        return []
    if kind == ROLLING_UPDATE:
        if not isinstance(rolling, dict):
            return [E.required("spec.updateStrategy.rollingUpdate")]
        return _validate_rolling_update(rolling, "spec.updateStrategy.rollingUpdate")
    ru = "(*apps.RollingUpdateDaemonSet)(nil)" if rolling is None else \
        "(*apps.RollingUpdateDaemonSet)(0xc000000000)"
    value = GoLiteral(f"apps.DaemonSetUpdateStrategy{{Type:{go_quote(kind)}, RollingUpdate:{ru}}}")
    return [E.not_supported("spec.updateStrategy", value, [ROLLING_UPDATE, ON_DELETE])]


def _validate_selector_and_template(spec: dict) -> list[FieldError]:
    errs: list[FieldError] = []
    selector = spec.get("selector")
    if selector is None:
        errs.append(E.required("spec.selector"))
    else:
        errs += validate_label_selector(selector, "spec.selector")
    template = spec.get("template") if isinstance(spec.get("template"), dict) else {}
    labels = (template.get("metadata") or {}).get("labels")
    if selector_is_valid(selector) and not selector_is_empty(selector) and \
            not selector_matches(selector, labels):
        errs.append(E.invalid("spec.template.metadata.labels",
                              labels if labels is not None else
                              GoLiteral("map[string]string(nil)"),
                              "`selector` does not match template `labels`"))
    if selector is not None and selector_is_empty(selector):
        errs.append(E.invalid("spec.selector", go_label_selector(selector),
                              "empty selector is invalid for daemonset"))
    errs += validate_pod_template_spec(template, "spec.template")
    pod_spec = template.get("spec") or {}
    restart = pod_spec.get("restartPolicy") or ""
    if restart != "Always":
        errs.append(E.not_supported("spec.template.spec.restartPolicy", restart, ["Always"]))
    if pod_spec.get("activeDeadlineSeconds") is not None:
        errs.append(E.invalid("spec.template.spec.activeDeadlineSeconds",
                              pod_spec["activeDeadlineSeconds"],
                              "activeDeadlineSeconds must be nil for daemonsets"))
    return errs


def validate_daemonset_spec(spec: dict) -> list[FieldError]:
    """ValidateDaemonSetSpec."""
    errs = _validate_selector_and_template(spec)
    errs += nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds")
    errs += nonnegative(spec.get("templateGeneration"), "spec.templateGeneration")
    errs += _validate_update_strategy(spec.get("updateStrategy") or {})
    errs += nonnegative(spec.get("revisionHistoryLimit"), "spec.revisionHistoryLimit")
    return errs


def node_selector_string(obj: dict) -> str:
    """The NODE SELECTOR cell: the template's nodeSelector as k=v,... (or <none>)."""
    selector = ((((obj.get("spec") or {}).get("template") or {}).get("spec") or {})
                .get("nodeSelector")) or {}
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "<none>"


# ---- strategy -----------------------------------------------------------------------------------

class DaemonSetStrategy(Strategy):
    group = "apps"
    kind = "DaemonSet"
    plural = "daemonsets"
    singular = "daemonset"
    short_names = ("ds",)
    categories = ("all",)
    has_status = True
    columns = [
        NAME_COLUMN,
        Column("Desired", "integer", description="The total number of nodes that should be "
               "running the daemon pod (including nodes correctly running the daemon pod)."),
        Column("Current", "integer", description="The number of nodes that are running at "
               "least 1 daemon pod and are supposed to run the daemon pod."),
        Column("Ready", "integer", description="The number of nodes that should be running the "
               "daemon pod and have one or more of the daemon pod running and ready."),
        Column("Up-to-date", "integer", description="The total number of nodes that are "
               "running updated daemon pod"),
        Column("Available", "integer", description="The number of nodes that should be running "
               "the daemon pod and have one or more of the daemon pod running and available "
               "(ready for at least spec.minReadySeconds)"),
        Column("Node Selector", description="NodeSelector is a selector which must be true for "
               "the pod to fit on a node. Selector which must match a node's labels for the pod "
               "to be scheduled on that node."),
        AGE_COLUMN,
        *TEMPLATE_COLUMNS,
        Column("Selector", priority=1, description="A label query over pods that are managed "
               "by the daemon set. Must match in order to be controlled."),
    ]

    def default(self, obj: dict) -> None:
        default_daemonset(obj)

    def validate(self, obj: dict) -> list[FieldError]:
        errs = V.validate_object_meta(obj.get("metadata") or {}, True)
        return errs + validate_daemonset_spec(obj.get("spec") or {})

    def validate_update(self, new: dict, old: dict) -> list[FieldError]:
        errs = V.validate_object_meta_update(new.get("metadata") or {}, old.get("metadata") or {})
        errs += validate_daemonset_spec(new.get("spec") or {})
        errs += validate_selector_immutable(new, old)
        return errs

    def table_row(self, obj: dict) -> list[Any]:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        containers, images = containers_cells(obj)
        return [obj["metadata"]["name"], status.get("desiredNumberScheduled") or 0,
                status.get("currentNumberScheduled") or 0, status.get("numberReady") or 0,
                status.get("updatedNumberScheduled") or 0, status.get("numberAvailable") or 0,
                node_selector_string(obj), since(obj["metadata"].get("creationTimestamp")),
                containers, images, selector_string(spec.get("selector"))]
