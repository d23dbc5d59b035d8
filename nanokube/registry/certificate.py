"""Certificates (cert-manager.io/v1, namespaced): an X.509 certificate kept up to date in the
Secret named by spec.secretName. Served as a built-in kind so that cert-manager manifests apply
as they are; the Certificate controller (nanokube/certmanager/certificates.py) does the work.

Validation follows cert-manager's webhook: an issuerRef and a secretName, at least one subject
name, a duration of at least one hour, a renewBefore of at least five minutes and below the
duration, and a known private key algorithm.
"""
from __future__ import annotations

from typing import Any

from nanokube.api import errors as E
from nanokube.api.errors import FieldError
from nanokube.api.tables import since
from nanokube.apitime import parse_duration
from nanokube.certmanager.pki import (DEFAULT_DURATION, MIN_DURATION, MIN_RENEW_BEFORE,
                                      format_duration)
from nanokube.registry import validation as V
from nanokube.registry.base import AGE_COLUMN, NAME_COLUMN, Column, Strategy

GROUP = "cert-manager.io"
VERSION = "v1"
CATEGORIES = ("cert-manager",)
KEY_ALGORITHMS = ["ECDSA", "Ed25519", "RSA"]


def condition(obj: dict, type_: str) -> dict:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return cond
    return {}


def _duration(spec: dict, name: str, errs: list[FieldError]) -> float | None:
    text = spec.get(name)
    if text is None:
        return None
    try:
        return parse_duration(str(text))
    except ValueError as e:
        errs.append(E.invalid(f"spec.{name}", text, str(e)))
        return None


def validate_spec(spec: dict) -> list[FieldError]:
    errs: list[FieldError] = []
    if not spec.get("secretName"):
        errs.append(E.required("spec.secretName", "must be specified"))
    else:
        errs += [E.invalid("spec.secretName", spec["secretName"], m)
                 for m in V.is_dns1123_subdomain(str(spec["secretName"]))]
    if not (spec.get("issuerRef") or {}).get("name"):
        errs.append(E.required("spec.issuerRef.name", "must be specified"))
    if not any(spec.get(f) for f in ("commonName", "dnsNames", "ipAddresses", "uris",
                                     "emailAddresses")):
        errs.append(E.invalid("spec", "", "at least one of commonName, dnsNames, uris, "
                              "ipAddresses, or emailAddresses must be set"))
    for i, ip in enumerate(spec.get("ipAddresses") or []):
        errs += V.is_valid_ip(f"spec.ipAddresses[{i}]", str(ip))
    duration = _duration(spec, "duration", errs)
    before = _duration(spec, "renewBefore", errs)
    if duration is not None and duration < MIN_DURATION:
        errs.append(E.invalid("spec.duration", spec["duration"], "certificate duration must "
                              f"be greater than {format_duration(MIN_DURATION)}"))
    if before is not None:
        if before < MIN_RENEW_BEFORE:
            errs.append(E.invalid("spec.renewBefore", spec["renewBefore"], "certificate "
                                  f"renewBefore must be greater than "
                                  f"{format_duration(MIN_RENEW_BEFORE)}"))
        elif before >= (duration or DEFAULT_DURATION):
            errs.append(E.invalid("spec.renewBefore", spec["renewBefore"],
                                  f"certificate duration {format_duration(duration or DEFAULT_DURATION)}"
                                  f" must be greater than renewBefore {format_duration(before)}"))
    if spec.get("renewBefore") is not None and spec.get("renewBeforePercentage") is not None:
        errs.append(E.invalid("spec.renewBefore", spec["renewBefore"], "renewBefore and "
                              "renewBeforePercentage are mutually exclusive and cannot both "
                              "be set"))
    pct = spec.get("renewBeforePercentage")
    if pct is not None and (not isinstance(pct, int) or not 0 < pct < 100):
        errs.append(E.invalid("spec.renewBeforePercentage", pct, "must be between 1 and 99"))
    algorithm = (spec.get("privateKey") or {}).get("algorithm")
    if algorithm is not None and algorithm not in KEY_ALGORITHMS:
        errs.append(E.not_supported("spec.privateKey.algorithm", algorithm, KEY_ALGORITHMS))
    encoding = (spec.get("privateKey") or {}).get("encoding")
    if encoding is not None and encoding not in ("PKCS1", "PKCS8"):
        errs.append(E.not_supported("spec.privateKey.encoding", encoding, ["PKCS1", "PKCS8"]))
    return errs


class CertificateStrategy(Strategy):
    group = GROUP
    version = VERSION
    served_versions = (VERSION,)
    kind = "Certificate"
    plural = "certificates"
    singular = "certificate"
    short_names = ("cert", "certs")
    categories = CATEGORIES
    has_status = True
    columns = [
        NAME_COLUMN,
        Column("Ready"),
        Column("Secret"),
        Column("Issuer", priority=1),
        Column("Status", priority=1),
        AGE_COLUMN,
    ]

    def validate(self, obj: dict) -> list[FieldError]:
        errs = V.validate_object_meta(obj.get("metadata") or {}, True)
        return errs + validate_spec(obj.get("spec") or {})

    def validate_update(self, new: dict, old: dict) -> list[FieldError]:
        errs = V.validate_object_meta_update(new.get("metadata") or {}, old.get("metadata") or {})
        return errs + validate_spec(new.get("spec") or {})

    def table_row(self, obj: dict) -> list[Any]:
        spec = obj.get("spec") or {}
        ready = condition(obj, "Ready")
        return [obj["metadata"]["name"], ready.get("status"), spec.get("secretName"),
                (spec.get("issuerRef") or {}).get("name"), ready.get("message"),
                since(obj["metadata"].get("creationTimestamp"))]
