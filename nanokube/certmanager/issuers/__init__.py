"""The issuer backends and what they share.

A backend knows one issuer type (spec.selfSigned, spec.ca, spec.acme). `check(issuer)` says
whether an Issuer/ClusterIssuer can sign (its Ready condition: reason and message, or an
IssuerError), `sign(issuer, certificate, key, request)` issues a certificate for the
Certificate's private key. Backends read Secrets from the controller-manager's cache and write
through the API.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass

from nanokube.certmanager.names import CLUSTER_RESOURCE_NAMESPACE
from nanokube.certmanager.pki import Request
from nanokube.client import Client
from nanokube.controllers.informer import Informer


class IssuerError(Exception):
    """The issuer cannot sign: `reason` is the condition reason, the message says why."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class Issued:
    chain: bytes        # tls.crt: the certificate, then the intermediates (PEM)
    ca: bytes = b""     # ca.crt: the CA that signed it, when the issuer knows it


@dataclass
class Context:
    client: Client
    secrets: Informer

    def secret(self, namespace: str, name: str) -> dict | None:
        return self.secrets.get(f"{namespace}/{name}")


def resource_namespace(issuer: dict) -> str:
    """An Issuer's Secrets live in its namespace, a ClusterIssuer's in `cert-manager`."""
    return (issuer.get("metadata") or {}).get("namespace") or CLUSTER_RESOURCE_NAMESPACE


def secret_bytes(secret: dict | None, key: str) -> bytes | None:
    value = ((secret or {}).get("data") or {}).get(key)
    if value is None:
        return None
    try:
        return base64.b64decode(value)
    except ValueError:
        return None


def issuer_type(issuer: dict) -> str | None:
    spec = issuer.get("spec") or {}
    return next((t for t in ("selfSigned", "ca", "acme") if spec.get(t) is not None), None)


class Backend:
    async def check(self, issuer: dict) -> tuple[str, str, dict]:
        """(reason, message, extra status) of a Ready issuer; raises IssuerError otherwise."""
        raise NotImplementedError

    async def sign(self, issuer: dict, certificate: dict, key, request: Request) -> Issued:
        raise NotImplementedError

    def forget(self, issuer: dict) -> None:
        """The issuer is gone or changed: drop what was cached about it."""


class _OnFirstUse(Backend):
    """The ACME backend, made when an ACME issuer first needs it: the `acme` library (with
    josepy, requests and pyOpenSSL) costs the controller-manager about 15 MB, which a cluster
    with only the default CA issuer never pays."""

    def __init__(self, make):
        self._make = make
        self._real: Backend | None = None

    def _backend(self) -> Backend:
        if self._real is None:
            self._real = self._make()
        return self._real

    async def check(self, issuer: dict) -> tuple[str, str, dict]:
        return await self._backend().check(issuer)

    async def sign(self, issuer: dict, certificate: dict, key, request: Request) -> Issued:
        return await self._backend().sign(issuer, certificate, key, request)

    def forget(self, issuer: dict) -> None:
        if self._real is not None:
            self._real.forget(issuer)


def _acme(ctx: Context) -> Backend:
    from nanokube.certmanager.issuers.acme import ACMEIssuer
    return ACMEIssuer(ctx)


def backends(ctx: Context) -> dict[str, Backend]:
    from nanokube.certmanager.issuers.ca import CAIssuer
    from nanokube.certmanager.issuers.selfsigned import SelfSignedIssuer
    return {"selfSigned": SelfSignedIssuer(), "ca": CAIssuer(ctx),
            "acme": _OnFirstUse(lambda: _acme(ctx))}
