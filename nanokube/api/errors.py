"""Kubernetes Status errors and field errors, rendered exactly as the Go API server renders them.

Field errors follow apimachinery's field.Error: `<field>: <body>` where the body depends on the
error type, and values are printed the way Go's `%#v`/`%v` would print them (see `go_repr`).
"""
from __future__ import annotations

from dataclasses import dataclass, field as dc_field
from typing import Any


class GoLiteral:
    """A value whose Go rendering is already known, e.g. a struct dump `core.ServicePort{...}`."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


def go_quote(s: str) -> str:
    """strconv.Quote for the characters that occur in API values."""
    out = ['"']
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append("\\x%02x" % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def go_repr(value: Any) -> str:
    """Render a bad value as field.Error does: ints/bools plain, strings quoted, nil as null,
    string lists as []string{...}, anything else via a GoLiteral or Python's repr as a fallback."""
    if value is None:
        return "null"
    if isinstance(value, GoLiteral):
        return value.text
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "[]string{" + ", ".join(go_quote(v) for v in value) + "}"
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        items = ", ".join(f"{go_quote(k)}:{go_quote(v)}" for k, v in sorted(value.items()))
        return "map[string]string{" + items + "}"
    return repr(value)


# field.ErrorType -> (cause reason, text used in the body)
_TYPES = {
    "FieldValueNotFound": "Not found",
    "FieldValueRequired": "Required value",
    "FieldValueDuplicate": "Duplicate value",
    "FieldValueInvalid": "Invalid value",
    "FieldValueNotSupported": "Unsupported value",
    "FieldValueForbidden": "Forbidden",
    "FieldValueTooLong": "Too long",
    "FieldValueTooMany": "Too many",
    "InternalError": "Internal error",
    "FieldValueTypeInvalid": "Invalid value",
}

_NO_VALUE = object()


@dataclass
class FieldError:
    type: str
    field: str
    value: Any = _NO_VALUE
    detail: str = ""

    def body(self) -> str:
        label = _TYPES[self.type]
        if self.type in ("FieldValueRequired", "FieldValueForbidden", "FieldValueTooLong",
                         "InternalError"):
            return f"{label}: {self.detail}" if self.detail else label
        text = label
        if self.value is not _NO_VALUE:
            text += ": " + go_repr(self.value)
        if self.detail:
            text += ": " + self.detail
        return text

    def __str__(self) -> str:
        return f"{self.field}: {self.body()}" if self.field else self.body()


def required(field: str, detail: str = "") -> FieldError:
    return FieldError("FieldValueRequired", field, detail=detail)


def invalid(field: str, value: Any, detail: str = "") -> FieldError:
    return FieldError("FieldValueInvalid", field, value, detail)


def not_supported(field: str, value: Any, valid: list[str] | None = None) -> FieldError:
    detail = ""
    if valid:
        detail = "supported values: " + ", ".join(go_quote(v) for v in sorted(valid))
    return FieldError("FieldValueNotSupported", field, value, detail)


def duplicate(field: str, value: Any) -> FieldError:
    return FieldError("FieldValueDuplicate", field, value)


def forbidden(field: str, detail: str) -> FieldError:
    return FieldError("FieldValueForbidden", field, detail=detail)


def too_long(field: str, max_length: int) -> FieldError:
    return FieldError("FieldValueTooLong", field,
                      detail=f"may not be more than {max_length} bytes")


def too_many(field: str, actual: int, max_items: int) -> FieldError:
    return FieldError("FieldValueTooMany", field, actual,
                      f"must have at most {max_items} items")


def not_found(field: str, value: Any) -> FieldError:
    return FieldError("FieldValueNotFound", field, value)


def internal(field: str, detail: str) -> FieldError:
    return FieldError("InternalError", field, detail=detail)


def aggregate(errs: list[FieldError]) -> str:
    """utilerrors.NewAggregate: one message alone, several as [a, b], duplicates removed."""
    msgs: list[str] = []
    for e in errs:
        s = str(e)
        if s not in msgs:
            msgs.append(s)
    return msgs[0] if len(msgs) == 1 else "[" + ", ".join(msgs) + "]"


@dataclass
class StatusError(Exception):
    """An error the API returns as a metav1.Status object."""

    code: int
    reason: str
    message: str
    details: dict | None = None
    headers: dict = dc_field(default_factory=dict)

    def __str__(self) -> str:
        return self.message

    def to_status(self) -> dict:
        status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                  "message": self.message, "reason": self.reason}
        if self.details is not None:
            status["details"] = self.details
        status["code"] = self.code
        return status


def _details(name: str, group: str, kind: str, causes: list | None = None) -> dict:
    d: dict = {}
    if name:
        d["name"] = name
    if group:
        d["group"] = group
    d["kind"] = kind
    if causes is not None:
        d["causes"] = causes
    return d


def _qualified(resource_or_kind: str, group: str) -> str:
    return f"{resource_or_kind}.{group}" if group else resource_or_kind


def invalid_error(kind: str, group: str, name: str, errs: list[FieldError]) -> StatusError:
    causes = [{"reason": e.type, "message": e.body(), "field": e.field} for e in errs]
    msg = f'{_qualified(kind, group)} "{name}" is invalid: {aggregate(errs)}'
    return StatusError(422, "Invalid", msg, _details(name, group, kind, causes))


def not_found_error(resource: str, group: str, name: str) -> StatusError:
    return StatusError(404, "NotFound", f'{_qualified(resource, group)} "{name}" not found',
                       _details(name, group, resource))


def already_exists_error(resource: str, group: str, name: str) -> StatusError:
    return StatusError(409, "AlreadyExists",
                       f'{_qualified(resource, group)} "{name}" already exists',
                       _details(name, group, resource))


def conflict_error(resource: str, group: str, name: str, why: str = "") -> StatusError:
    why = why or ("the object has been modified; please apply your changes to the latest "
                  "version and try again")
    return StatusError(409, "Conflict", f'Operation cannot be fulfilled on '
                       f'{_qualified(resource, group)} "{name}": {why}',
                       _details(name, group, resource))


def bad_request(message: str) -> StatusError:
    return StatusError(400, "BadRequest", message)


def gone(message: str) -> StatusError:
    return StatusError(410, "Expired", message)


def internal_error(message: str) -> StatusError:
    return StatusError(500, "InternalError", f"Internal error occurred: {message}",
                       {"causes": [{"message": message}]})


def method_not_allowed(verb: str, resource: str) -> StatusError:
    return StatusError(405, "MethodNotAllowed",
                       f'{verb} is not supported on resources of kind "{resource}"',
                       {})


def unauthorized() -> StatusError:
    return StatusError(401, "Unauthorized", "Unauthorized")


def forbidden_error(resource: str, group: str, name: str, why: str) -> StatusError:
    return StatusError(403, "Forbidden",
                       f'{_qualified(resource, group)} "{name}" is forbidden: {why}',
                       _details(name, group, resource))


def too_large(message: str = "the request is too large") -> StatusError:
    return StatusError(413, "RequestEntityTooLarge", f"Request entity too large: {message}")


def unsupported_media_type(content_type: str) -> StatusError:
    return StatusError(415, "UnsupportedMediaType",
                       f"the body of the request was in an unknown format - accepted media "
                       f"types include: application/json, application/yaml, "
                       f"application/vnd.kubernetes.protobuf (got {content_type})")
