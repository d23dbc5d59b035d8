"""Events (core/v1)."""
from __future__ import annotations

from typing import Any

from nanokube.api import errors as E
from nanokube.api.errors import FieldError
from nanokube.api.tables import since
from nanokube.registry import validation as V
from nanokube.registry.base import Column, Strategy

REPORTING_INSTANCE_MAX = 128
ACTION_MAX = 128
REASON_MAX = 128
NOTE_MAX = 1024


def _source_cell(obj: dict) -> str:
    """formatEventSource: component (or reportingComponent), then ", host" if any."""
    source = obj.get("source") or {}
    component = source.get("component") or obj.get("reportingComponent") or ""
    instance = source.get("host") or obj.get("reportingInstance") or ""
    return f"{component}, {instance}" if instance else component


class EventStrategy(Strategy):
    kind = "Event"
    plural = "events"
    singular = "event"
    short_names = ("ev",)
    columns = [
        Column("Last Seen", description="The time at which the most recent occurrence of this "
               "event was recorded."),
        Column("Type", description="Type of this event (Normal, Warning), new types could be "
               "added in the future"),
        Column("Reason", description="This should be a short, machine understandable string "
               "that gives the reason for the transition into the object's current status."),
        Column("Object", description="The object that this event is about."),
        Column("Subobject", priority=1, description="If referring to a piece of an object "
               "instead of an entire object, this string should contain a valid JSON/Go-field "
               "access statement, such as desiredState.manifest.containers[2]."),
        Column("Source", priority=1, description="The component reporting this event. Should "
               "be a short machine understandable string."),
        Column("Message", description="A human-readable description of the status of this "
               "operation."),
        Column("First Seen", priority=1, description="The time at which the event was first "
               "recorded. (Time of server receipt is in TypeMeta.)"),
        Column("Count", priority=1, description="The number of times this event has occurred."),
        Column("Name", priority=1, format="name", description="Name must be unique within a "
               "namespace."),
    ]

    def validate(self, obj: dict) -> list[FieldError]:
        """legacyValidateEvent, as the v1 API applies it."""
        meta = obj.get("metadata") or {}
        errs = V.validate_object_meta(meta, True)
        namespace = meta.get("namespace") or ""
        involved_ns = (obj.get("involvedObject") or {}).get("namespace") or ""
        mismatch = E.invalid("involvedObject.namespace", involved_ns,
                             "does not match event.namespace")
        if not obj.get("eventTime"):
            if not involved_ns:
                if namespace not in ("", "default"):
                    errs.append(mismatch)
            elif namespace != involved_ns:
                errs.append(mismatch)
        else:
            if not involved_ns and namespace not in ("default", "kube-system"):
                errs.append(mismatch)
            controller = obj.get("reportingComponent") or ""
            if not controller:
                errs.append(E.required("reportingComponent"))
            errs += [E.invalid("reportingComponent", controller, m)
                     for m in V.is_qualified_name(controller)]
            for name, limit in (("reportingInstance", REPORTING_INSTANCE_MAX),
                                ("action", ACTION_MAX), ("reason", REASON_MAX)):
                value = obj.get(name) or ""
                if not value:
                    errs.append(E.required(name))
                if len(value) > limit:
                    errs.append(E.invalid(name, "", f"can have at most {limit} characters"))
            if len(obj.get("message") or "") > NOTE_MAX:
                errs.append(E.invalid("message", "", f"can have at most {NOTE_MAX} characters"))
        return errs

    def validate_update(self, new: dict, old: dict) -> list[FieldError]:
        errs = V.validate_object_meta_update(new.get("metadata") or {}, old.get("metadata") or {})
        return errs + self.validate(new)

    def table_row(self, obj: dict) -> list[Any]:
        first = since(obj["firstTimestamp"]) if obj.get("firstTimestamp") \
            else since(obj.get("eventTime"))
        last = since(obj["lastTimestamp"]) if obj.get("lastTimestamp") else first
        count = obj.get("count") or 0
        series = obj.get("series")
        if series:
            last = since(series.get("lastObservedTime"))
            count = series.get("count") or 0
        elif count == 0:
            count = 1   # singleton events of the new API carry no count
        involved = obj.get("involvedObject") or {}
        kind = (involved.get("kind") or "").lower()
        target = f"{kind}/{involved['name']}" if involved.get("name") else kind
        return [last, obj.get("type") or "", obj.get("reason") or "", target,
                involved.get("fieldPath") or "", _source_cell(obj),
                (obj.get("message") or "").strip(), first, count, obj["metadata"]["name"]]

    def field_labels(self, obj: dict) -> dict[str, str]:
        involved = obj.get("involvedObject") or {}
        fields = {f"involvedObject.{key}": involved.get(key) or ""
                  for key in ("kind", "namespace", "name", "uid", "apiVersion",
                              "resourceVersion", "fieldPath")}
        fields.update({
            "reason": obj.get("reason") or "",
            "reportingComponent": obj.get("reportingComponent") or "",
            "source": (obj.get("source") or {}).get("component") or "",
            "type": obj.get("type") or "",
        })
        return fields
