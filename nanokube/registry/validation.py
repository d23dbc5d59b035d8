"""Validators shared by every kind, with apimachinery's exact messages (util/validation)."""
from __future__ import annotations

import ipaddress
import re

from nanokube.api import errors as E
from nanokube.api.errors import FieldError

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_PORT_NAME_CHARS = re.compile(r"^[-a-z0-9]+$")
_PORT_NAME_LETTER = re.compile(r"[a-z]")


def _regex_error(msg: str, regex: str, *examples: str) -> str:
    # Same shape as validation.RegexError, including its double space before "or".
    text = msg
    if examples:
        text += " (e.g. " + ",  or ".join(f"'{e}'" for e in examples) + ", "
    else:
        text += " ("
    return text + f"regex used for validation is '{regex}')"


def _max_len(n: int) -> str:
    return f"must be no more than {n} characters"


def is_dns1123_label(value: str) -> list[str]:
    errs = []
    if len(value) > DNS1123_LABEL_MAX:
        errs.append(_max_len(DNS1123_LABEL_MAX))
    if not _DNS1123_LABEL.match(value):
        errs.append(_regex_error(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
            "'-', and must start and end with an alphanumeric character",
            "[a-z0-9]([-a-z0-9]*[a-z0-9])?", "my-name", "123-abc"))
    return errs


def is_dns1123_subdomain(value: str) -> list[str]:
    errs = []
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        errs.append(_max_len(DNS1123_SUBDOMAIN_MAX))
    if not _DNS1123_SUBDOMAIN.match(value):
        errs.append(_regex_error(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
            "'-' or '.', and must start and end with an alphanumeric character",
            r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", "example.com"))
    return errs


def is_dns1035_label(value: str) -> list[str]:
    errs = []
    if len(value) > DNS1123_LABEL_MAX:
        errs.append(_max_len(DNS1123_LABEL_MAX))
    if not _DNS1035_LABEL.match(value):
        errs.append(_regex_error(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
            "with an alphabetic character, and end with an alphanumeric character",
            "[a-z]([-a-z0-9]*[a-z0-9])?", "my-name", "abc-123"))
    return errs


_QN_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"


def is_qualified_name(value: str) -> list[str]:
    parts = value.split("/")
    if len(parts) == 1:
        name, prefix = parts[0], None
    elif len(parts) == 2:
        prefix, name = parts
    else:
        return [_regex_error(
            "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must "
            "start and end with an alphanumeric character", _QN_FMT, "MyName", "my.name",
            "123-abc") + " with an optional DNS subdomain prefix and '/' (e.g. "
            "'example.com/MyName')"]
    errs = []
    if prefix is not None:
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs += ["prefix part " + m for m in is_dns1123_subdomain(prefix)]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part " + _max_len(63))
    if name and not _QUALIFIED_NAME.match(name):
        errs.append("name part " + _regex_error(
            "must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
            "with an alphanumeric character", _QN_FMT, "MyName", "my.name", "123-abc"))
    return errs


def is_label_value(value: str) -> list[str]:
    errs = []
    if len(value) > 63:
        errs.append(_max_len(63))
    if not _LABEL_VALUE.match(value):
        errs.append(_regex_error(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', "
            "'_' or '.', and must start and end with an alphanumeric character",
            "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?", "MyValue", "my_value", "12345"))
    return errs


def is_valid_port_num(port) -> list[str]:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        return ["must be between 1 and 65535, inclusive"]
    return []


def is_valid_port_name(name: str) -> list[str]:
    errs = []
    if len(name) > 15:
        errs.append("must be no more than 15 characters")
    if not _PORT_NAME_CHARS.match(name):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not _PORT_NAME_LETTER.search(name):
        errs.append("must contain at least one letter (a-z)")
    if "--" in name:
        errs.append("must not contain consecutive hyphens")
    if name and (name[0] == "-" or name[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def parse_ip(value: str):
    """An IP as Go's netip parses it for validation: no zone, no leading zeros in IPv4."""
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def is_valid_ip(field: str, value: str) -> list[FieldError]:
    if parse_ip(value) is None:
        return [E.invalid(field, value,
                          "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")]
    return []


def is_valid_cidr(field: str, value: str) -> list[FieldError]:
    try:
        ipaddress.ip_network(value, strict=False)
        if "/" not in value:
            raise ValueError
    except ValueError:
        return [E.invalid(field, value,
                          "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)")]
    return []


def validate_labels(labels, field: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for k, v in (labels or {}).items():
        for msg in is_qualified_name(k):
            errs.append(E.invalid(field, k, msg))
        for msg in is_label_value(v if isinstance(v, str) else str(v)):
            errs.append(E.invalid(field, v, msg))
    return errs


TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024


def validate_annotations(annotations, field: str) -> list[FieldError]:
    errs: list[FieldError] = []
    total = 0
    for k, v in (annotations or {}).items():
        for msg in is_qualified_name(k.lower()):
            errs.append(E.invalid(field, k, msg))
        total += len(k) + len(v or "")
    if total > TOTAL_ANNOTATION_SIZE_LIMIT:
        errs.append(E.FieldError("FieldValueTooLong", field,
                                 detail=f"must have at most {TOTAL_ANNOTATION_SIZE_LIMIT} bytes"))
    return errs


def validate_object_meta(meta: dict, namespaced: bool, name_validator=is_dns1123_subdomain,
                         field: str = "metadata") -> list[FieldError]:
    """ValidateObjectMeta: name (or generateName), namespace, labels, annotations."""
    errs: list[FieldError] = []
    name = meta.get("name") or ""
    if meta.get("generateName") and not name:
        for msg in name_validator(meta["generateName"].rstrip("-") or "a"):
            errs.append(E.invalid(f"{field}.generateName", meta["generateName"], msg))
    if not name:
        errs.append(E.required(f"{field}.name", "name or generateName is required"))
    else:
        for msg in name_validator(name):
            errs.append(E.invalid(f"{field}.name", name, msg))
    ns = meta.get("namespace") or ""
    if namespaced:
        if not ns:
            errs.append(E.required(f"{field}.namespace"))
        else:
            for msg in is_dns1123_label(ns):
                errs.append(E.invalid(f"{field}.namespace", ns, msg))
    elif ns:
        errs.append(E.forbidden(f"{field}.namespace", "not allowed on this type"))
    errs += validate_labels(meta.get("labels"), f"{field}.labels")
    errs += validate_annotations(meta.get("annotations"), f"{field}.annotations")
    return errs


def validate_object_meta_update(new: dict, old: dict, field: str = "metadata") -> list[FieldError]:
    """ValidateObjectMetaUpdate: identity fields are immutable."""
    errs: list[FieldError] = []
    for key in ("name", "namespace", "uid", "creationTimestamp"):
        if new.get(key) != old.get(key) and key in ("name", "namespace"):
            errs.append(E.invalid(f"{field}.{key}", new.get(key), "field is immutable"))
    return errs
