"""Secrets (core/v1)."""
from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from nanokube.api import errors as E
from nanokube.api.errors import FieldError
from nanokube.api.tables import since
from nanokube.registry import validation as V
from nanokube.registry.base import AGE_COLUMN, NAME_COLUMN, Column, Strategy
from nanokube.registry.configmap import MAX_SIZE, immutable_errors, key_errors

TYPE_OPAQUE = "Opaque"
TYPE_TLS = "kubernetes.io/tls"
_BASE64_CHAR = re.compile(r"[A-Za-z0-9+/=]")


def base64_error(value: Any) -> str | None:
    """Go's decoding error for a []byte field ("illegal base64 data at input byte N")."""
    if not isinstance(value, str):
        return "illegal base64 data at input byte 0"
    for i, ch in enumerate(value):
        if not _BASE64_CHAR.match(ch) or (ch == "=" and value[i:].strip("=")):
            return f"illegal base64 data at input byte {i}"
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return f"illegal base64 data at input byte {len(value) - len(value) % 4}"
    return None


def decoded(value: str) -> bytes:
    try:
        return base64.b64decode(value or "")
    except (binascii.Error, ValueError):
        return b""


class SecretStrategy(Strategy):
    kind = "Secret"
    plural = "secrets"
    singular = "secret"
    columns = [
        NAME_COLUMN,
        Column("Type", description="Used to facilitate programmatic handling of secret data. "
               "More info: https://kubernetes.io/docs/concepts/configuration/secret/"
               "#secret-types"),
        Column("Data", description="Data contains the secret data. Each key must consist of "
               "alphanumeric characters, '-', '_' or '.'. The serialized form of the secret "
               "data is a base64 encoded string, representing the arbitrary (possibly "
               "non-string) data value here. Described in https://tools.ietf.org/html/"
               "rfc4648#section-4"),
        AGE_COLUMN,
    ]

    def convert_from_version(self, obj: dict, version: str) -> dict:
        """Decoding: data values are base64; a bad one fails the request as Go's decoder does."""
        for value in (obj.get("data") or {}).values():
            err = base64_error(value)
            if err:
                raise E.bad_request(f'Secret in version "{version}" cannot be handled as a '
                                    f"Secret: {err}")
        return obj

    def default(self, obj: dict) -> None:
        """SetDefaults_Secret, and the v1 conversion that folds write-only stringData into data."""
        if not obj.get("type"):
            obj["type"] = TYPE_OPAQUE
        string_data = obj.pop("stringData", None)
        if string_data:
            data = obj.get("data") or {}
            for key, value in string_data.items():
                data[key] = base64.b64encode(str(value).encode()).decode()
            obj["data"] = data

    def validate(self, obj: dict) -> list[FieldError]:
        meta = obj.get("metadata") or {}
        errs = V.validate_object_meta(meta, True)
        data = obj.get("data") or {}
        errs += key_errors(data, "data")
        if sum(len(decoded(v)) for v in data.values()) > MAX_SIZE:
            errs.append(E.too_long("data", MAX_SIZE))
        kind = obj.get("type") or ""
        if kind == "kubernetes.io/service-account-token":
            if not (meta.get("annotations") or {}).get("kubernetes.io/service-account.name"):
                errs.append(E.required("metadata.annotations[kubernetes.io/service-account.name]"))
        elif kind in ("kubernetes.io/dockercfg", "kubernetes.io/dockerconfigjson"):
            key = ".dockercfg" if kind == "kubernetes.io/dockercfg" else ".dockerconfigjson"
            if key not in data:
                errs.append(E.required(f"data[{key}]"))
            else:
                try:
                    json.loads(decoded(data[key]) or b"null")
                except ValueError as exc:
                    errs.append(E.invalid(f"data[{key}]", "<secret contents redacted>", str(exc)))
        elif kind == "kubernetes.io/basic-auth":
            if "username" not in data and "password" not in data:
                errs += [E.required("data[username]"), E.required("data[password]")]
        elif kind == "kubernetes.io/ssh-auth":
            if not decoded(data.get("ssh-privatekey", "")):
                errs.append(E.required("data[ssh-privatekey]"))
        elif kind == TYPE_TLS:
            for key in ("tls.crt", "tls.key"):
                if key not in data:
                    errs.append(E.required(f"data[{key}]"))
        return errs

    def validate_update(self, new: dict, old: dict) -> list[FieldError]:
        errs = V.validate_object_meta_update(new.get("metadata") or {}, old.get("metadata") or {})
        if (new.get("type") or "") != (old.get("type") or ""):
            errs.append(E.invalid("type", new.get("type") or "", "field is immutable"))
        errs += immutable_errors(new, old, ("data",))
        return errs + self.validate(new)

    def table_row(self, obj: dict) -> list[Any]:
        return [obj["metadata"]["name"], obj.get("type") or "", len(obj.get("data") or {}),
                since(obj["metadata"].get("creationTimestamp"))]

    def field_labels(self, obj: dict) -> dict[str, str]:
        return {"type": obj.get("type") or ""}
