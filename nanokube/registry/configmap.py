"""ConfigMaps (core/v1), and the config-key rules Secrets share."""
from __future__ import annotations

import re
from typing import Any

from nanokube.api import errors as E
from nanokube.api.errors import FieldError
from nanokube.api.tables import since
from nanokube.registry import validation as V
from nanokube.registry.base import AGE_COLUMN, NAME_COLUMN, Column, Strategy
from nanokube.registry.pod import chdir_prefix_errors

MAX_SIZE = 1024 * 1024   # core.MaxSecretSize, also the ConfigMap limit
IMMUTABLE_DETAIL = "field is immutable when `immutable` is set"


def is_config_map_key(value: str) -> list[str]:
    """validation.IsConfigMapKey."""
    errs = []
    if len(value) > V.DNS1123_SUBDOMAIN_MAX:
        errs.append(f"must be no more than {V.DNS1123_SUBDOMAIN_MAX} characters")
    if not re.fullmatch(r"[-._a-zA-Z0-9]+", value):
        errs.append("a valid config key must consist of alphanumeric characters, '-', '_' or "
                    "'.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for "
                    "validation is '[-._a-zA-Z0-9]+')")
    return errs + chdir_prefix_errors(value)


def key_errors(data: dict | None, field: str) -> list[FieldError]:
    """Invalid keys of a data map, reported at `<field>[<key>]` (Go's Path.Key)."""
    errs: list[FieldError] = []
    for key in sorted(data or {}):
        errs += [E.invalid(f"{field}[{key}]", key, m) for m in is_config_map_key(key)]
    return errs


def immutable_errors(new: dict, old: dict, fields: tuple[str, ...]) -> list[FieldError]:
    """Once `immutable: true`, the flag and the data stay as they are."""
    if not old.get("immutable"):
        return []
    errs: list[FieldError] = []
    if not new.get("immutable"):
        errs.append(E.forbidden("immutable", IMMUTABLE_DETAIL))
    for name in fields:
        if new.get(name) != old.get(name):
            errs.append(E.forbidden(name, IMMUTABLE_DETAIL))
    return errs


class ConfigMapStrategy(Strategy):
    kind = "ConfigMap"
    plural = "configmaps"
    singular = "configmap"
    short_names = ("cm",)
    columns = [
        NAME_COLUMN,
        Column("Data", description="Data contains the configuration data. Each key must consist "
               "of alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte "
               "sequences must use the BinaryData field. The keys stored in Data must not "
               "overlap with the keys in the BinaryData field, this is enforced during "
               "validation process."),
        AGE_COLUMN,
    ]

    def validate(self, obj: dict) -> list[FieldError]:
        errs = V.validate_object_meta(obj.get("metadata") or {}, True)
        data, binary = obj.get("data") or {}, obj.get("binaryData") or {}
        size = 0
        for key in sorted(data):
            errs += [E.invalid(f"data[{key}]", key, m) for m in is_config_map_key(key)]
            if key in binary:
                errs.append(E.invalid(f"data[{key}]", key,
                                      "duplicate of key present in binaryData"))
            size += len(data[key] or "")
        for key in sorted(binary):
            errs += [E.invalid(f"binaryData[{key}]", key, m) for m in is_config_map_key(key)]
            if key in data:
                errs.append(E.invalid(f"binaryData[{key}]", key,
                                      "duplicate of key present in data"))
            size += len(binary[key] or "") * 3 // 4
        if size > MAX_SIZE:
            errs.append(E.too_long("", MAX_SIZE))
        return errs

    def validate_update(self, new: dict, old: dict) -> list[FieldError]:
        errs = V.validate_object_meta_update(new.get("metadata") or {}, old.get("metadata") or {})
        errs += immutable_errors(new, old, ("data", "binaryData"))
        return errs + self.validate(new)

    def table_row(self, obj: dict) -> list[Any]:
        count = len(obj.get("data") or {}) + len(obj.get("binaryData") or {})
        return [obj["metadata"]["name"], count, since(obj["metadata"].get("creationTimestamp"))]
