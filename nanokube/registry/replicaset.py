"""ReplicaSets (apps/v1)."""
from __future__ import annotations

from typing import Any

from nanokube.api.errors import FieldError
from nanokube.api.tables import since
from nanokube.registry import validation as V
from nanokube.registry.base import AGE_COLUMN, NAME_COLUMN, Column, Strategy
from nanokube.registry.deployment import (TEMPLATE_COLUMNS, containers_cells, default_template,
                                          nonnegative, selector_string,
                                          validate_selector_and_template,
                                          validate_selector_immutable)


class ReplicaSetStrategy(Strategy):
    group = "apps"
    kind = "ReplicaSet"
    plural = "replicasets"
    singular = "replicaset"
    short_names = ("rs",)
    categories = ("all",)
    has_status = True
    columns = [
        NAME_COLUMN,
        Column("Desired", type="integer", description="Replicas is the number of desired pods. "
               "This is a pointer to distinguish between explicit zero and unspecified. "
               "Defaults to 1."),
        Column("Current", type="integer", description="Replicas is the most recently observed "
               "number of replicas."),
        Column("Ready", type="integer", description="The number of non-terminating pods "
               "targeted by this ReplicaSet with a Ready Condition."),
        AGE_COLUMN,
        *TEMPLATE_COLUMNS,
        Column("Selector", priority=1, description="Selector is a label query over pods that "
               "should match the replica count."),
    ]

    def default(self, obj: dict) -> None:
        spec = obj.setdefault("spec", {})
        if spec.get("replicas") is None:
            spec["replicas"] = 1
        default_template(spec)

    def validate(self, obj: dict) -> list[FieldError]:
        errs = V.validate_object_meta(obj.get("metadata") or {}, True)
        spec = obj.get("spec") or {}
        errs += validate_selector_and_template(spec, "deployment")
        errs += nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds")
        return errs

    def validate_update(self, new: dict, old: dict) -> list[FieldError]:
        errs = V.validate_object_meta_update(new.get("metadata") or {}, old.get("metadata") or {})
        errs += self.validate(new)
        errs += validate_selector_immutable(new, old)
        return errs

    def table_row(self, obj: dict) -> list[Any]:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        containers, images = containers_cells(obj)
        return [obj["metadata"]["name"], spec.get("replicas") or 0, status.get("replicas") or 0,
                status.get("readyReplicas") or 0,
                since(obj["metadata"].get("creationTimestamp")), containers, images,
                selector_string(spec.get("selector"))]

    def field_labels(self, obj: dict) -> dict[str, str]:
        return {"status.replicas": str((obj.get("status") or {}).get("replicas") or 0)}
