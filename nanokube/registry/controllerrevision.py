"""ControllerRevisions (apps/v1): immutable snapshots of a controller's template, which the
StatefulSet controller keeps as its revision history (`kubectl rollout history sts/NAME`)."""
from __future__ import annotations

import json
from typing import Any

from nanokube.api import errors as E
from nanokube.api.errors import FieldError, GoLiteral
from nanokube.api.tables import since
from nanokube.registry import validation as V
from nanokube.registry.base import AGE_COLUMN, NAME_COLUMN, Column, Strategy
from nanokube.registry.deployment import nonnegative


def go_raw_extension(data: Any) -> GoLiteral:
    """A RawExtension as Go's %#v prints it: its JSON bytes."""
    raw = json.dumps(data, separators=(",", ":")).encode() if data is not None else b""
    return GoLiteral("runtime.RawExtension{Raw:[]byte{" + ", ".join(f"0x{b:x}" for b in raw) +
                     "}, Object:runtime.Object(nil)}")


def controller_cell(obj: dict) -> str:
    """<kind>.<group>/<name> of the controller (the ControllerRevision printer's form)."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            group = (ref.get("apiVersion") or "").rpartition("/")[0]
            kind = (ref.get("kind") or "").lower()
            return f"{kind}.{group}/{ref.get('name', '')}" if group else \
                f"{kind}/{ref.get('name', '')}"
    return "<none>"


class ControllerRevisionStrategy(Strategy):
    group = "apps"
    kind = "ControllerRevision"
    plural = "controllerrevisions"
    singular = "controllerrevision"
    columns = [
        NAME_COLUMN,
        Column("Controller", description="Controller of the object"),
        Column("Revision", description="Revision indicates the revision of the state "
               "represented by Data."),
        AGE_COLUMN,
    ]

    def validate(self, obj: dict) -> list[FieldError]:
        """ValidateControllerRevision."""
        errs = V.validate_object_meta(obj.get("metadata") or {}, True)
        if obj.get("data") is None:
            errs.append(E.required("data", "data is mandatory"))
        errs += nonnegative(obj.get("revision"), "revision")
        return errs

    def validate_update(self, new: dict, old: dict) -> list[FieldError]:
        """ValidateControllerRevisionUpdate: data never changes (revision may)."""
        errs = V.validate_object_meta_update(new.get("metadata") or {}, old.get("metadata") or {})
        errs += self.validate(new)
        if new.get("data") != old.get("data"):
            errs.append(E.invalid("data", go_raw_extension(new.get("data")),
                                  "field is immutable"))
        return errs

    def table_row(self, obj: dict) -> list[Any]:
        return [obj["metadata"]["name"], controller_cell(obj), obj.get("revision") or 0,
                since(obj["metadata"].get("creationTimestamp"))]
