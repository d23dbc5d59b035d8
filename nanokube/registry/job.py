"""Jobs (batch/v1): SetDefaults_Job, the job strategy's selector generation, ValidateJob /
ValidateJobUpdate (the parts nanokube runs: no podFailurePolicy rules, no successPolicy, no
backoffLimitPerIndex beyond their number checks) and the Job printer of kubectl 1.32.

Unless spec.manualSelector is true, the API server makes the selector itself on create: the pod
template gets the labels batch.kubernetes.io/controller-uid and batch.kubernetes.io/job-name
(and the legacy controller-uid and job-name), and the selector matches the uid label only, so
that a Job's pods are never another Job's.
"""
from __future__ import annotations

from typing import Any

from nanokube.api import errors as E
from nanokube.api.errors import FieldError, GoLiteral
from nanokube.api.tables import human_duration, since
from nanokube.apitime import parse_time
from nanokube.registry import validation as V
from nanokube.registry.base import AGE_COLUMN, NAME_COLUMN, Column, Strategy
from nanokube.registry.deployment import (TEMPLATE_COLUMNS, containers_cells, default_template,
                                          go_label_selector, nonnegative, selector_is_valid,
                                          selector_matches, selector_string,
                                          validate_label_selector)
from nanokube.registry.pod import validate_pod_template_spec

CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID_LABEL = "controller-uid"
LEGACY_JOB_NAME_LABEL = "job-name"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"   # annotation and label

NON_INDEXED = "NonIndexed"
INDEXED = "Indexed"
TERMINATING_OR_FAILED = "TerminatingOrFailed"
FAILED = "Failed"
MAX_PARALLELISM_INDEXED = 100000
MAX_MANAGED_BY = 63


# ---- defaulting ---------------------------------------------------------------------------------

def default_job(obj: dict) -> None:
    """SetDefaults_Job (batch/v1)."""
    spec = obj.setdefault("spec", {})
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    if spec.get("parallelism") is None:
        spec["parallelism"] = 1
    if spec.get("backoffLimit") is None:
        spec["backoffLimit"] = 2 ** 31 - 1 if spec.get("backoffLimitPerIndex") is not None else 6
    template = spec.get("template") if isinstance(spec.get("template"), dict) else {}
    labels = (template.get("metadata") or {}).get("labels")
    meta = obj.setdefault("metadata", {})
    if labels and not meta.get("labels"):
        meta["labels"] = dict(labels)
    if not spec.get("completionMode"):
        spec["completionMode"] = NON_INDEXED
    if spec.get("suspend") is None:
        spec["suspend"] = False
    policy = spec.get("podFailurePolicy")
    for rule in (policy or {}).get("rules") or [] if isinstance(policy, dict) else []:
        for pattern in (rule or {}).get("onPodConditions") or []:
            if isinstance(pattern, dict) and not pattern.get("status"):
                pattern["status"] = "True"
    if not spec.get("podReplacementPolicy"):
        spec["podReplacementPolicy"] = FAILED if policy is not None else TERMINATING_OR_FAILED
    default_template(spec)


def generate_selector(obj: dict) -> None:
    """generateSelector: the uid and name labels on the template, the uid label selected."""
    meta, spec = obj["metadata"], obj.setdefault("spec", {})
    template = spec.get("template")
    if not isinstance(template, dict):
        template = spec["template"] = {}
    tmeta = template.get("metadata")
    if not isinstance(tmeta, dict):
        tmeta = template["metadata"] = {}
    labels = tmeta.get("labels")
    if not isinstance(labels, dict):
        labels = tmeta["labels"] = {}
    # A label the user set is kept: a conflict is rejected by validation.
    for key in (LEGACY_JOB_NAME_LABEL, JOB_NAME_LABEL):
        labels.setdefault(key, meta.get("name", ""))
    for key in (LEGACY_CONTROLLER_UID_LABEL, CONTROLLER_UID_LABEL):
        labels.setdefault(key, meta.get("uid", ""))
    selector = spec.get("selector")
    if not isinstance(selector, dict):
        selector = spec["selector"] = {}
    if not isinstance(selector.get("matchLabels"), dict):
        selector["matchLabels"] = {}
    selector["matchLabels"].setdefault(CONTROLLER_UID_LABEL, meta.get("uid", ""))


# ---- validation ---------------------------------------------------------------------------------

def _has_label(labels: dict, key: str, value: str) -> list[FieldError]:
    """ValidateHasLabel on spec.template.metadata."""
    field = "spec.template.metadata"
    if key not in labels:
        return [E.required(f"{field}.labels", f"expected label {key}")]
    if labels[key] != value:
        return [E.invalid(f"{field}.labels", labels[key], f"must be '{value}'")]
    return []


def validate_generated_selector(obj: dict) -> list[FieldError]:
    spec = obj.get("spec") or {}
    if spec.get("manualSelector") or spec.get("selector") is None:
        return []
    meta = obj.get("metadata") or {}
    uid, name = meta.get("uid", ""), meta.get("name", "")
    errs = [] if uid else [E.required("metadata.uid")]
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    expected = {LEGACY_CONTROLLER_UID_LABEL: uid, LEGACY_JOB_NAME_LABEL: name,
                CONTROLLER_UID_LABEL: uid, JOB_NAME_LABEL: name}
    for key in (LEGACY_CONTROLLER_UID_LABEL, LEGACY_JOB_NAME_LABEL, CONTROLLER_UID_LABEL,
                JOB_NAME_LABEL):
        errs += _has_label(labels, key, expected[key])
    selector = spec["selector"]
    if selector_is_valid(selector) and not selector_matches(selector, expected):
        errs.append(E.invalid("spec.selector", go_label_selector(selector),
                              "`selector` not auto-generated"))
    return errs


def _validate_restart_policy(spec: dict) -> list[FieldError]:
    pod_spec = ((spec.get("template") or {}).get("spec")) or {}
    restart = pod_spec.get("restartPolicy") or ""
    field = "spec.template.spec.restartPolicy"
    if restart in ("Always", ""):
        # Defaulting turns a missing restartPolicy into Always, hence "Required".
        return [E.required(field, 'valid values: "OnFailure", "Never"')]
    if restart not in ("OnFailure", "Never"):
        return [E.FieldError("FieldValueNotSupported", field, restart,
                             'supported values: "OnFailure", "Never"')]
    if spec.get("podFailurePolicy") is not None and restart != "Never":
        return [E.invalid(field, restart,
                          'only "Never" is supported when podFailurePolicy is specified')]
    return []


def _validate_completion_mode(spec: dict) -> list[FieldError]:
    errs: list[FieldError] = []
    mode = spec.get("completionMode")
    if mode is not None:
        if mode not in (NON_INDEXED, INDEXED):
            errs.append(E.FieldError("FieldValueNotSupported", "spec.completionMode", mode,
                                     f'supported values: "{NON_INDEXED}", "{INDEXED}"'))
        if mode == INDEXED:
            if spec.get("completions") is None:
                errs.append(E.required("spec.completions", "when completion mode is Indexed"))
            parallelism = spec.get("parallelism")
            if isinstance(parallelism, int) and parallelism > MAX_PARALLELISM_INDEXED:
                errs.append(E.invalid("spec.parallelism", parallelism,
                                      f"must be less than or equal to {MAX_PARALLELISM_INDEXED}"
                                      " when completion mode is Indexed"))
    if mode in (None, NON_INDEXED):
        for key in ("backoffLimitPerIndex", "maxFailedIndexes"):
            if spec.get(key) is not None:
                errs.append(E.invalid(f"spec.{key}", spec[key],
                                      "requires indexed completion mode"))
        if spec.get("successPolicy") is not None:
            errs.append(E.invalid("spec.successPolicy", GoLiteral("batch.SuccessPolicy{...}"),
                                  "requires indexed completion mode"))
    return errs


def _validate_replacement_policy(spec: dict) -> list[FieldError]:
    policy = spec.get("podReplacementPolicy")
    if policy is None:
        return []
    allowed = [FAILED] if spec.get("podFailurePolicy") is not None \
        else [FAILED, TERMINATING_OR_FAILED]
    if policy not in allowed:
        return [E.not_supported("spec.podReplacementPolicy", policy, allowed)]
    return []


def validate_job_spec(spec: dict) -> list[FieldError]:
    """ValidateJobSpec."""
    errs: list[FieldError] = []
    for key in ("parallelism", "completions", "activeDeadlineSeconds", "backoffLimit",
                "ttlSecondsAfterFinished", "backoffLimitPerIndex", "maxFailedIndexes"):
        errs += nonnegative(spec.get(key), f"spec.{key}")
    if spec.get("maxFailedIndexes") is not None and spec.get("backoffLimitPerIndex") is None:
        errs.append(E.required("spec.backoffLimitPerIndex", "when maxFailedIndexes is specified"))
    managed_by = spec.get("managedBy")
    if isinstance(managed_by, str) and len(managed_by) > MAX_MANAGED_BY:
        errs.append(E.too_long("spec.managedBy", MAX_MANAGED_BY))
    errs += _validate_completion_mode(spec)
    errs += _validate_replacement_policy(spec)
    template = spec.get("template")
    errs += validate_pod_template_spec(template if isinstance(template, dict) else {},
                                       "spec.template")
    errs += _validate_restart_policy(spec)
    selector = spec.get("selector")
    if selector is None:
        errs.append(E.required("spec.selector"))
    else:
        errs += validate_label_selector(selector, "spec.selector")
    if selector is not None and selector_is_valid(selector):
        labels = (((template or {}) if isinstance(template, dict) else {})
                  .get("metadata") or {}).get("labels")
        if not selector_matches(selector, labels):
            errs.append(E.invalid("spec.template.metadata.labels",
                                  labels if labels is not None else
                                  GoLiteral("map[string]string(nil)"),
                                  "`selector` does not match template `labels`"))
    return errs


def validate_job(obj: dict) -> list[FieldError]:
    """ValidateJob: jobs and replication controllers share the name rules (DNS subdomain)."""
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    errs = V.validate_object_meta(meta, True)
    errs += validate_generated_selector(obj)
    errs += validate_job_spec(spec)
    completions = spec.get("completions")
    if spec.get("completionMode") == INDEXED and isinstance(completions, int) and completions > 0:
        # The pods' hostnames are <job>-<index>.
        hostname = f"{meta.get('name', '')}-{completions - 1}"
        if V.is_dns1123_label(hostname):
            errs.append(E.invalid("metadata.name", meta.get("name", ""),
                                  f"will not able to create pod with invalid DNS label: "
                                  f"{hostname}"))
    return errs


# Spec fields that never change (ValidateJobSpecUpdate), with Go's type of their value.
IMMUTABLE_FIELDS = {"completions": None, "selector": None, "template": "core.PodTemplateSpec",
                    "completionMode": None, "podFailurePolicy": "batch.PodFailurePolicy",
                    "backoffLimitPerIndex": None, "managedBy": None,
                    "successPolicy": "batch.SuccessPolicy"}


def validate_spec_update(spec: dict, old_spec: dict) -> list[FieldError]:
    errs = []
    for key, go_type in IMMUTABLE_FIELDS.items():
        if spec.get(key) == old_spec.get(key):
            continue
        value: Any = spec.get(key)
        if key == "selector":
            value = go_label_selector(value)
        elif go_type:
            value = GoLiteral(f"{go_type}{{...}}")
        elif value is None:
            value = GoLiteral("null")
        errs.append(E.invalid(f"spec.{key}", value, "field is immutable"))
    return errs


def validate_status(status: dict) -> list[FieldError]:
    errs: list[FieldError] = []
    for key in ("active", "succeeded", "failed", "ready", "terminating"):
        errs += nonnegative(status.get(key), f"status.{key}")
    return errs


# ---- printing -----------------------------------------------------------------------------------

def has_condition(obj: dict, kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


def job_status_cell(obj: dict) -> str:
    """The STATUS column of kubectl 1.32."""
    if has_condition(obj, "Complete"):
        return "Complete"
    if has_condition(obj, "Failed"):
        return "Failed"
    if obj["metadata"].get("deletionTimestamp"):
        return "Terminating"
    for kind in ("Suspended", "FailureTarget", "SuccessCriteriaMet"):
        if has_condition(obj, kind):
            return kind
    return "Running"


def completions_cell(obj: dict) -> str:
    spec, succeeded = obj.get("spec") or {}, (obj.get("status") or {}).get("succeeded") or 0
    if spec.get("completions") is not None:
        return f"{succeeded}/{spec['completions']}"
    parallelism = spec.get("parallelism")
    if parallelism is not None and parallelism > 1:
        return f"{succeeded}/1 of {parallelism}"
    return f"{succeeded}/1"


def duration_cell(obj: dict) -> str:
    status = obj.get("status") or {}
    start = parse_time(status.get("startTime"))
    if start is None:
        return ""
    end = parse_time(status.get("completionTime"))
    if end is None:
        return since(status["startTime"])
    return human_duration(end - start)


# ---- strategy -----------------------------------------------------------------------------------

class JobStrategy(Strategy):
    group = "batch"
    kind = "Job"
    plural = "jobs"
    singular = "job"
    categories = ("all",)
    has_status = True
    columns = [
        NAME_COLUMN,
        Column("Status", description="Status of the job."),
        Column("Completions", description="The number of pods which reached phase Succeeded."),
        Column("Duration", description="Time required to complete the job."),
        AGE_COLUMN,
        *TEMPLATE_COLUMNS,
        Column("Selector", priority=1, description="A label query over pods that should match "
               "the pod count. Normally, the system sets this field for you."),
    ]

    def default(self, obj: dict) -> None:
        default_job(obj)

    def prepare_create(self, obj: dict) -> None:
        super().prepare_create(obj)
        spec = obj.get("spec") or {}
        if not spec.get("manualSelector"):
            generate_selector(obj)
            # Defaulting copies the template's labels to a Job without labels (Kubernetes
            # does so on its next read from storage; nanokube at once).
            labels = obj["spec"]["template"]["metadata"]["labels"]
            if not obj["metadata"].get("labels"):
                obj["metadata"]["labels"] = dict(labels)

    def validate(self, obj: dict) -> list[FieldError]:
        return validate_job(obj)

    def validate_update(self, new: dict, old: dict) -> list[FieldError]:
        errs = V.validate_object_meta_update(new.get("metadata") or {}, old.get("metadata") or {})
        spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
        errs += validate_job_spec(spec)
        errs += validate_spec_update(spec, old_spec)
        errs += validate_status(new.get("status") or {})
        return errs

    def table_row(self, obj: dict) -> list[Any]:
        containers, images = containers_cells(obj)
        return [obj["metadata"]["name"], job_status_cell(obj), completions_cell(obj),
                duration_cell(obj), since(obj["metadata"].get("creationTimestamp")),
                containers, images, selector_string((obj.get("spec") or {}).get("selector"))]
