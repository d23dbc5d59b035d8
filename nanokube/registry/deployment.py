"""Deployments (apps/v1), and the label-selector and workload helpers ReplicaSets share."""
from __future__ import annotations

import re
from typing import Any

from nanokube.api import errors as E
from nanokube.api.errors import FieldError, GoLiteral, go_quote
from nanokube.api.tables import since
from nanokube.registry import validation as V
from nanokube.registry.base import AGE_COLUMN, NAME_COLUMN, Column, Strategy
from nanokube.registry.pod import default_pod_spec, validate_pod_template_spec

SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


# ---- label selectors --------------------------------------------------------------------------

def selector_string(selector: dict | None) -> str:
    """labels.Selector.String() of metav1.LabelSelectorAsSelector: requirements sorted by key."""
    if not selector:
        return ""
    reqs: list[tuple[str, str]] = []
    for key, value in (selector.get("matchLabels") or {}).items():
        reqs.append((key, f"{key}={value}"))
    for expr in selector.get("matchExpressions") or []:
        key, op = expr.get("key", ""), expr.get("operator", "")
        values = ",".join(sorted(expr.get("values") or []))
        text = {"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})",
                "Exists": key, "DoesNotExist": f"!{key}"}.get(op, key)
        reqs.append((key, text))
    return ",".join(text for _, text in sorted(reqs, key=lambda r: r[0]))


def selector_matches(selector: dict | None, labels: dict | None) -> bool:
    """Whether labels match a LabelSelector (nil selects nothing, empty selects everything)."""
    if selector is None:
        return False
    labels = labels or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def selector_is_empty(selector: dict | None) -> bool:
    return selector is not None and not selector.get("matchLabels") and \
        not selector.get("matchExpressions")


def selector_is_valid(selector: dict | None) -> bool:
    """Whether LabelSelectorAsSelector would accept it."""
    for expr in (selector or {}).get("matchExpressions") or []:
        op, values = expr.get("operator"), expr.get("values") or []
        if op not in SELECTOR_OPERATORS:
            return False
        if op in ("In", "NotIn") and not values:
            return False
        if op in ("Exists", "DoesNotExist") and values:
            return False
    return True


def _go_string_map(m: dict | None) -> str:
    if m is None:
        return "map[string]string(nil)"
    return "map[string]string{" + ", ".join(
        f"{go_quote(k)}:{go_quote(str(v))}" for k, v in sorted(m.items())) + "}"


def _go_string_slice(values: list | None) -> str:
    if values is None:
        return "[]string(nil)"
    return "[]string{" + ", ".join(go_quote(str(v)) for v in values) + "}"


def go_label_selector(selector: dict | None) -> GoLiteral:
    """A LabelSelector as Go's %#v prints it in field errors."""
    if selector is None:
        return GoLiteral("null")
    exprs = selector.get("matchExpressions")
    if exprs is None:
        exprs_text = "[]v1.LabelSelectorRequirement(nil)"
    else:
        exprs_text = "[]v1.LabelSelectorRequirement{" + ", ".join(
            f"v1.LabelSelectorRequirement{{Key:{go_quote(e.get('key', ''))}, "
            f"Operator:{go_quote(e.get('operator', ''))}, "
            f"Values:{_go_string_slice(e.get('values'))}}}" for e in exprs) + "}"
    return GoLiteral(f"v1.LabelSelector{{MatchLabels:{_go_string_map(selector.get('matchLabels'))}"
                     f", MatchExpressions:{exprs_text}}}")


def validate_label_selector(selector: dict | None, field: str) -> list[FieldError]:
    """ValidateLabelSelector (label values must be valid)."""
    if selector is None:
        return []
    errs = V.validate_labels(selector.get("matchLabels"), f"{field}.matchLabels")
    for i, expr in enumerate(selector.get("matchExpressions") or []):
        path = f"{field}.matchExpressions[{i}]"
        op, values = expr.get("operator", ""), expr.get("values") or []
        if op in ("In", "NotIn"):
            if not values:
                errs.append(E.required(f"{path}.values",
                                       "must be specified when `operator` is 'In' or 'NotIn'"))
        elif op in ("Exists", "DoesNotExist"):
            if values:
                errs.append(E.forbidden(f"{path}.values", "may not be specified when "
                                        "`operator` is 'Exists' or 'DoesNotExist'"))
        else:
            errs.append(E.invalid(f"{path}.operator", op, "not a valid selector operator"))
        key = expr.get("key", "")
        errs += [E.invalid(f"{path}.key", key, m) for m in V.is_qualified_name(key)]
        for j, value in enumerate(values):
            errs += [E.invalid(f"{path}.values[{j}]", value, m) for m in V.is_label_value(value)]
    return errs


# ---- workload helpers -------------------------------------------------------------------------

def nonnegative(value: Any, field: str) -> list[FieldError]:
    if isinstance(value, int) and value < 0:
        return [E.invalid(field, value, "must be greater than or equal to 0")]
    return []


def default_template(spec: dict) -> None:
    template = spec.setdefault("template", {})
    if isinstance(template, dict):
        default_pod_spec(template.setdefault("spec", {}))


def validate_template_for_replica_set(spec: dict, field: str) -> list[FieldError]:
    """ValidatePodTemplateSpecForReplicaSet."""
    template = spec.get("template")
    if not isinstance(template, dict):
        return [E.required(field)]
    errs: list[FieldError] = []
    selector = spec.get("selector")
    # A nil selector selects nothing (so it never matches); an empty one selects everything.
    if not selector_is_empty(selector):
        labels = (template.get("metadata") or {}).get("labels")
        if not selector_matches(selector, labels):
            errs.append(E.invalid(f"{field}.metadata.labels",
                                  labels if labels is not None else GoLiteral(
                                      "map[string]string(nil)"),
                                  "`selector` does not match template `labels`"))
    errs += validate_pod_template_spec(template, field)
    pod_spec = template.get("spec") or {}
    restart = pod_spec.get("restartPolicy") or ""
    if restart != "Always":
        errs.append(E.not_supported(f"{field}.spec.restartPolicy", restart, ["Always"]))
    if pod_spec.get("activeDeadlineSeconds") is not None:
        errs.append(E.invalid(f"{field}.spec.activeDeadlineSeconds",
                              pod_spec["activeDeadlineSeconds"],
                              "activeDeadlineSeconds in ReplicaSet is not Supported"))
    return errs


def validate_selector_and_template(spec: dict, kind: str) -> list[FieldError]:
    """The selector part of ValidateDeploymentSpec / ValidateReplicaSetSpec."""
    errs = nonnegative(spec.get("replicas"), "spec.replicas")
    selector = spec.get("selector")
    if selector is None:
        errs.append(E.required("spec.selector"))
    else:
        errs += validate_label_selector(selector, "spec.selector")
        if selector_is_empty(selector):
            errs.append(E.invalid("spec.selector", go_label_selector(selector),
                                  f"empty selector is invalid for {kind}"))
    if not selector_is_valid(selector):
        errs.append(E.invalid("spec.selector", go_label_selector(selector),
                              "invalid label selector"))
    else:
        errs += validate_template_for_replica_set(spec, "spec.template")
    return errs


def validate_selector_immutable(new: dict, old: dict) -> list[FieldError]:
    sel, old_sel = (new.get("spec") or {}).get("selector"), (old.get("spec") or {}).get("selector")
    if sel != old_sel:
        return [E.invalid("spec.selector", go_label_selector(sel), "field is immutable")]
    return []


# The wide columns of every workload with a pod template, filled by containers_cells().
TEMPLATE_COLUMNS = [
    Column("Containers", priority=1, description="Names of each container in the template."),
    Column("Images", priority=1, description="Images referenced by each container in the "
           "template."),
]


def containers_cells(obj: dict) -> tuple[str, str]:
    """Containers and Images of a workload's template (layoutContainerCells)."""
    containers = (((obj.get("spec") or {}).get("template") or {}).get("spec") or {}) \
        .get("containers") or []
    return (",".join(c.get("name", "") for c in containers),
            ",".join(c.get("image", "") for c in containers))


# ---- rolling update ---------------------------------------------------------------------------

def _go_int_or_string(value: Any) -> GoLiteral:
    if isinstance(value, str):
        return GoLiteral(f"intstr.IntOrString{{Type:1, IntVal:0, StrVal:{go_quote(value)}}}")
    return GoLiteral(f"intstr.IntOrString{{Type:0, IntVal:{value}, StrVal:\"\"}}")


def _int_or_percent(value: Any) -> int:
    if isinstance(value, str):
        m = re.fullmatch(r"([0-9]+)%", value)
        return int(m.group(1)) if m else 0
    return value if isinstance(value, int) else 0


def _validate_int_or_percent(value: Any, field: str) -> list[FieldError]:
    if isinstance(value, str):
        if not re.fullmatch(r"[0-9]+%", value):
            return [E.invalid(field, _go_int_or_string(value),
                              "a valid percent string must be a numeric string followed by an "
                              "ending '%' (e.g. '1%',  or '93%', regex used for validation is "
                              "'[0-9]+%')")]
        return []
    if isinstance(value, int) and not isinstance(value, bool):
        return nonnegative(value, field)
    return [E.invalid(field, _go_int_or_string(0), "must be an integer or percentage (e.g '5%')")]


def validate_strategy(strategy: dict, field: str) -> list[FieldError]:
    kind = strategy.get("type", "")
    rolling = strategy.get("rollingUpdate")
    if kind == "Recreate":
        if rolling is not None:
            return [E.forbidden(f"{field}.rollingUpdate",
                                "may not be specified when strategy `type` is 'Recreate'")]
        return []
    if kind != "RollingUpdate":
        # Go prints the whole DeploymentStrategy struct; a set pointer shows as an address.
        ru = "(*apps.RollingUpdateDeployment)(nil)" if rolling is None else \
            "(*apps.RollingUpdateDeployment)(0xc000000000)"
        value = GoLiteral(f"apps.DeploymentStrategy{{Type:{go_quote(kind)}, RollingUpdate:{ru}}}")
        return [E.not_supported(field, value, ["Recreate", "RollingUpdate"])]
    if rolling is None:
        return [E.required(f"{field}.rollingUpdate", "this should be defaulted and never be nil")]
    path = f"{field}.rollingUpdate"
    unavailable, surge = rolling.get("maxUnavailable"), rolling.get("maxSurge")
    errs = _validate_int_or_percent(unavailable, f"{path}.maxUnavailable")
    errs += _validate_int_or_percent(surge, f"{path}.maxSurge")
    if _int_or_percent(unavailable) == 0 and _int_or_percent(surge) == 0:
        errs.append(E.invalid(f"{path}.maxUnavailable", _go_int_or_string(unavailable),
                              "may not be 0 when `maxSurge` is 0"))
    if isinstance(unavailable, str) and _int_or_percent(unavailable) > 100:
        errs.append(E.invalid(f"{path}.maxUnavailable", _go_int_or_string(unavailable),
                              "must not be greater than 100%"))
    return errs


# ---- strategy ---------------------------------------------------------------------------------

class DeploymentStrategy(Strategy):
    group = "apps"
    kind = "Deployment"
    plural = "deployments"
    singular = "deployment"
    short_names = ("deploy",)
    categories = ("all",)
    has_status = True
    columns = [
        NAME_COLUMN,
        Column("Ready", description="Number of the pod with ready state"),
        Column("Up-to-date", description="Total number of non-terminated pods targeted by this "
               "deployment that have the desired template spec."),
        Column("Available", description="Total number of available pods (ready for at least "
               "minReadySeconds) targeted by this deployment."),
        AGE_COLUMN,
        *TEMPLATE_COLUMNS,
        Column("Selector", priority=1, description="Label selector for pods. Existing "
               "ReplicaSets whose pods are selected by this will be the ones affected by this "
               "deployment."),
    ]

    def default(self, obj: dict) -> None:
        """SetDefaults_Deployment (apps/v1)."""
        spec = obj.setdefault("spec", {})
        if spec.get("replicas") is None:
            spec["replicas"] = 1
        strategy = spec.setdefault("strategy", {})
        if not strategy.get("type"):
            strategy["type"] = "RollingUpdate"
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.get("rollingUpdate")
            if rolling is None:
                rolling = strategy["rollingUpdate"] = {}
            rolling.setdefault("maxUnavailable", "25%")
            rolling.setdefault("maxSurge", "25%")
        if spec.get("revisionHistoryLimit") is None:
            spec["revisionHistoryLimit"] = 10
        if spec.get("progressDeadlineSeconds") is None:
            spec["progressDeadlineSeconds"] = 600
        default_template(spec)

    def validate(self, obj: dict) -> list[FieldError]:
        errs = V.validate_object_meta(obj.get("metadata") or {}, True)
        spec = obj.get("spec") or {}
        errs += validate_selector_and_template(spec, "deployment")
        errs += validate_strategy(spec.get("strategy") or {}, "spec.strategy")
        min_ready = spec.get("minReadySeconds") or 0
        errs += nonnegative(min_ready, "spec.minReadySeconds")
        errs += nonnegative(spec.get("revisionHistoryLimit"), "spec.revisionHistoryLimit")
        deadline = spec.get("progressDeadlineSeconds")
        if deadline is not None:
            errs += nonnegative(deadline, "spec.progressDeadlineSeconds")
            if isinstance(deadline, int) and deadline <= min_ready:
                errs.append(E.invalid("spec.progressDeadlineSeconds", deadline,
                                      "must be greater than minReadySeconds"))
        return errs

    def validate_update(self, new: dict, old: dict) -> list[FieldError]:
        errs = V.validate_object_meta_update(new.get("metadata") or {}, old.get("metadata") or {})
        errs += self.validate(new)
        errs += validate_selector_immutable(new, old)
        return errs

    def table_row(self, obj: dict) -> list[Any]:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        containers, images = containers_cells(obj)
        return [obj["metadata"]["name"],
                f"{status.get('readyReplicas') or 0}/{spec.get('replicas') or 0}",
                status.get("updatedReplicas") or 0, status.get("availableReplicas") or 0,
                since(obj["metadata"].get("creationTimestamp")), containers, images,
                selector_string(spec.get("selector"))]
