"""Issuers and ClusterIssuers (cert-manager.io/v1): who signs Certificates. An Issuer serves
its own namespace; a ClusterIssuer (cluster-scoped) every namespace, its Secrets living in the
cluster resource namespace `cert-manager`. Exactly one of spec.selfSigned, spec.ca, spec.acme.
"""
from __future__ import annotations

import base64
from typing import Any

from nanokube.api import errors as E
from nanokube.api.errors import FieldError
from nanokube.api.tables import since
from nanokube.registry import validation as V
from nanokube.registry.base import AGE_COLUMN, NAME_COLUMN, Column, Strategy
from nanokube.registry.certificate import CATEGORIES, GROUP, VERSION, condition

ISSUER_TYPES = ("acme", "ca", "selfSigned")


def _validate_acme(acme: dict) -> list[FieldError]:
    errs: list[FieldError] = []
    if not acme.get("server"):
        errs.append(E.required("spec.acme.server", "server URL is required"))
    if not (acme.get("privateKeySecretRef") or {}).get("name"):
        errs.append(E.required("spec.acme.privateKeySecretRef.name", "private key secret "
                               "name is a required field"))
    if acme.get("caBundle") and acme.get("skipTLSVerify"):
        errs.append(E.invalid("spec.acme.caBundle", "<snip>", "caBundle and skipTLSVerify are "
                              "mutually exclusive and cannot both be set"))
    if acme.get("caBundle"):
        try:
            base64.b64decode(acme["caBundle"], validate=True)
        except ValueError:
            errs.append(E.invalid("spec.acme.caBundle", "<snip>", "must be base64 encoded"))
    solvers = acme.get("solvers")
    if solvers is not None and not isinstance(solvers, list):
        errs.append(E.invalid("spec.acme.solvers", solvers, "must be a list of solvers"))
    for i, solver in enumerate(solvers or []):
        if not isinstance(solver, dict) or not (solver.get("http01") or solver.get("dns01")):
            errs.append(E.required(f"spec.acme.solvers[{i}]", "no solver type configured"))
        elif solver.get("dns01"):
            errs.append(E.forbidden(f"spec.acme.solvers[{i}].dns01", "DNS01 solvers are not "
                                    "supported by nanokube; use http01"))
    return errs


def validate_spec(spec: dict) -> list[FieldError]:
    chosen = [t for t in ISSUER_TYPES if spec.get(t) is not None]
    if not chosen:
        return [E.required("spec", "at least one issuer type must be set")]
    if len(chosen) > 1:
        return [E.forbidden(f"spec.{chosen[1]}", "may not specify more than one issuer type")]
    if chosen[0] == "ca" and not (spec.get("ca") or {}).get("secretName"):
        return [E.required("spec.ca.secretName", "")]
    if chosen[0] == "ca":
        return [E.invalid("spec.ca.secretName", spec["ca"]["secretName"], m)
                for m in V.is_dns1123_subdomain(str(spec["ca"]["secretName"]))]
    if chosen[0] == "acme":
        return _validate_acme(spec.get("acme") or {})
    return []


class IssuerStrategy(Strategy):
    group = GROUP
    version = VERSION
    served_versions = (VERSION,)
    kind = "Issuer"
    plural = "issuers"
    singular = "issuer"
    categories = CATEGORIES
    has_status = True
    columns = [NAME_COLUMN, Column("Ready"), Column("Status", priority=1), AGE_COLUMN]

    def validate(self, obj: dict) -> list[FieldError]:
        errs = V.validate_object_meta(obj.get("metadata") or {}, self.namespaced)
        return errs + validate_spec(obj.get("spec") or {})

    def validate_update(self, new: dict, old: dict) -> list[FieldError]:
        errs = V.validate_object_meta_update(new.get("metadata") or {}, old.get("metadata") or {})
        return errs + validate_spec(new.get("spec") or {})

    def table_row(self, obj: dict) -> list[Any]:
        ready = condition(obj, "Ready")
        return [obj["metadata"]["name"], ready.get("status"), ready.get("message"),
                since(obj["metadata"].get("creationTimestamp"))]


class ClusterIssuerStrategy(IssuerStrategy):
    kind = "ClusterIssuer"
    plural = "clusterissuers"
    singular = "clusterissuer"
    namespaced = False
