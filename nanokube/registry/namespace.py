"""Namespaces (core/v1, cluster-scoped)."""
from __future__ import annotations

from typing import Any

from nanokube.api import errors as E
from nanokube.api.errors import FieldError
from nanokube.api.tables import since
from nanokube.registry import validation as V
from nanokube.registry.base import AGE_COLUMN, NAME_COLUMN, Column, Strategy

FINALIZER_KUBERNETES = "kubernetes"
NAME_LABEL = "kubernetes.io/metadata.name"
_STANDARD_FINALIZERS = {FINALIZER_KUBERNETES, "orphan", "foregroundDeletion"}


def validate_finalizer_name(name: str, field: str) -> list[FieldError]:
    """validateFinalizerName: a qualified name, and domain-prefixed unless standard."""
    errs = [E.invalid(field, name, m) for m in V.is_qualified_name(name)]
    if "/" not in name and name not in _STANDARD_FINALIZERS:
        errs.append(E.invalid(field, name, "name is neither a standard finalizer name nor is "
                                           "it fully qualified"))
    return errs


class NamespaceStrategy(Strategy):
    kind = "Namespace"
    plural = "namespaces"
    singular = "namespace"
    short_names = ("ns",)
    namespaced = False
    has_status = True
    columns = [
        NAME_COLUMN,
        Column("Status", description="The status of the namespace"),
        AGE_COLUMN,
    ]

    def default(self, obj: dict) -> None:
        """SetDefaults_Namespace: the immutable name label; status phase Active."""
        meta = obj.setdefault("metadata", {})
        if meta.get("name"):
            meta.setdefault("labels", {})
            if meta["labels"] is None:
                meta["labels"] = {}
            meta["labels"][NAME_LABEL] = meta["name"]
        status = obj.get("status")
        if isinstance(status, dict) and not status.get("phase"):
            status["phase"] = "Active"

    def prepare_create(self, obj: dict) -> None:
        # The "kubernetes" finalizer is required on create, though it may go away later.
        obj["status"] = {"phase": "Active"}
        spec = obj.setdefault("spec", {})
        finalizers = spec.get("finalizers") or []
        if FINALIZER_KUBERNETES not in finalizers:
            finalizers.append(FINALIZER_KUBERNETES)
        spec["finalizers"] = finalizers

    def prepare_update(self, new: dict, old: dict) -> None:
        # spec.finalizers only changes through the /finalize subresource.
        super().prepare_update(new, old)
        old_finalizers = (old.get("spec") or {}).get("finalizers")
        spec = new.setdefault("spec", {})
        if old_finalizers is None:
            spec.pop("finalizers", None)
        else:
            spec["finalizers"] = list(old_finalizers)

    def validate(self, obj: dict) -> list[FieldError]:
        errs = V.validate_object_meta(obj.get("metadata") or {}, False,
                                      name_validator=V.is_dns1123_label)
        for i, name in enumerate((obj.get("spec") or {}).get("finalizers") or []):
            errs += validate_finalizer_name(name, f"spec.finalizers[{i}]")
        return errs

    def validate_update(self, new: dict, old: dict) -> list[FieldError]:
        errs = V.validate_object_meta_update(new.get("metadata") or {}, old.get("metadata") or {})
        return errs + self.validate(new)

    def table_row(self, obj: dict) -> list[Any]:
        return [obj["metadata"]["name"], (obj.get("status") or {}).get("phase") or "",
                since(obj["metadata"].get("creationTimestamp"))]

    def field_labels(self, obj: dict) -> dict[str, str]:
        return {"status.phase": (obj.get("status") or {}).get("phase") or ""}
