"""Leases (coordination.k8s.io/v1): leader election and node heartbeats."""
from __future__ import annotations

from typing import Any

from nanokube.api import errors as E
from nanokube.api.errors import FieldError
from nanokube.api.tables import since
from nanokube.registry import validation as V
from nanokube.registry.base import AGE_COLUMN, NAME_COLUMN, Column, Strategy


class LeaseStrategy(Strategy):
    group = "coordination.k8s.io"
    kind = "Lease"
    plural = "leases"
    singular = "lease"
    columns = [
        NAME_COLUMN,
        Column("Holder", description="The holder of the lease"),
        AGE_COLUMN,
    ]

    def validate(self, obj: dict) -> list[FieldError]:
        errs = V.validate_object_meta(obj.get("metadata") or {}, True)
        spec = obj.get("spec") or {}
        duration = spec.get("leaseDurationSeconds")
        if isinstance(duration, int) and duration <= 0:
            errs.append(E.invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"))
        transitions = spec.get("leaseTransitions")
        if isinstance(transitions, int) and transitions < 0:
            errs.append(E.invalid("spec.leaseTransitions", transitions,
                                  "must be greater than or equal to 0"))
        return errs

    def validate_update(self, new: dict, old: dict) -> list[FieldError]:
        errs = V.validate_object_meta_update(new.get("metadata") or {}, old.get("metadata") or {})
        return errs + self.validate(new)

    def table_row(self, obj: dict) -> list[Any]:
        return [obj["metadata"]["name"], (obj.get("spec") or {}).get("holderIdentity") or "",
                since(obj["metadata"].get("creationTimestamp"))]
