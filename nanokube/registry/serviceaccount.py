"""ServiceAccounts (core/v1)."""
from __future__ import annotations

from typing import Any

from nanokube.api import errors as E
from nanokube.api.errors import FieldError
from nanokube.api.tables import since
from nanokube.registry import validation as V
from nanokube.registry.base import AGE_COLUMN, NAME_COLUMN, Column, Strategy


class ServiceAccountStrategy(Strategy):
    kind = "ServiceAccount"
    plural = "serviceaccounts"
    singular = "serviceaccount"
    short_names = ("sa",)
    columns = [
        NAME_COLUMN,
        Column("Secrets", description="Secrets is a list of the secrets in the same namespace "
               "that pods running using this ServiceAccount are allowed to use."),
        AGE_COLUMN,
    ]

    def validate(self, obj: dict) -> list[FieldError]:
        errs = V.validate_object_meta(obj.get("metadata") or {}, True)
        for i, ref in enumerate(obj.get("imagePullSecrets") or []):
            if not (ref or {}).get("name"):
                errs.append(E.required(f"imagePullSecrets[{i}].name"))
        return errs

    def validate_update(self, new: dict, old: dict) -> list[FieldError]:
        errs = V.validate_object_meta_update(new.get("metadata") or {}, old.get("metadata") or {})
        return errs + self.validate(new)

    def table_row(self, obj: dict) -> list[Any]:
        return [obj["metadata"]["name"], len(obj.get("secrets") or []),
                since(obj["metadata"].get("creationTimestamp"))]
