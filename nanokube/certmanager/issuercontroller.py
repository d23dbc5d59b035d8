"""The issuers controller: sets the Ready condition of every Issuer and ClusterIssuer.

A CA issuer is Ready once its Secret holds a CA key pair; an ACME issuer once its account is
registered with the ACME server (the account key is made and kept in the Secret named by
privateKeySecretRef); a SelfSigned issuer always. A change of a referenced Secret looks again;
an issuer that is not Ready is looked at again after a pause (the ACME server may come back).
"""
from __future__ import annotations

import logging

from nanokube.certmanager import conditions
from nanokube.certmanager.issuers import (Backend, IssuerError, issuer_type,
                                          resource_namespace)
from nanokube.certmanager.names import GROUP, VERSION
from nanokube.client import Client
from nanokube.controllers.events import NORMAL, WARNING, EventRecorder
from nanokube.controllers.informer import object_key
from nanokube.controllers.manager import Controller

log = logging.getLogger("nanokube.certmanager.issuers")

COMPONENT = "cert-manager-issuers"
RETRY_NOT_READY = 15.0
KINDS = {"Issuer": "issuers", "ClusterIssuer": "clusterissuers"}


def referenced_secrets(issuer: dict) -> set[str]:
    """"namespace/name" of the Secrets an issuer reads."""
    spec = issuer.get("spec") or {}
    names = {(spec.get("ca") or {}).get("secretName"),
             ((spec.get("acme") or {}).get("privateKeySecretRef") or {}).get("name")}
    ns = resource_namespace(issuer)
    return {f"{ns}/{n}" for n in names if n}


def as_kind(obj: dict, kind: str) -> dict:
    """Items of a list carry no kind; Events need it."""
    return obj if obj.get("kind") else {"kind": kind, "apiVersion": f"{GROUP}/{VERSION}", **obj}


class IssuerController(Controller):
    name = "cert-manager-issuers"
    workers = 2

    def __init__(self, client, informers, backends: dict[str, Backend]):
        super().__init__(client, informers)
        self.backends = backends
        self.informers_by_kind = {kind: informers.informer(GROUP, VERSION, plural)
                                  for kind, plural in KINDS.items()}
        self.secrets = informers.informer("", "v1", "secrets")
        self.recorder = EventRecorder(client, COMPONENT)
        for kind, informer in self.informers_by_kind.items():
            informer.add_handler(self._handler(kind))
        self.secrets.add_handler(self._on_secret)

    def _handler(self, kind: str):
        def handle(old: dict | None, new: dict | None) -> None:
            if old is not None and new is not None and old.get("spec") == new.get("spec"):
                return          # our own status write
            if old is not None:
                self._forget(old)
            self.enqueue(f"{kind}:{object_key(new or old)}")
        return handle

    def _forget(self, issuer: dict) -> None:
        backend = self.backends.get(issuer_type(issuer) or "")
        if backend:
            backend.forget(issuer)

    def _on_secret(self, old: dict | None, new: dict | None) -> None:
        key = object_key(new or old)
        for kind, informer in self.informers_by_kind.items():
            for issuer in informer.list():
                if key in referenced_secrets(issuer):
                    self.enqueue(f"{kind}:{object_key(issuer)}")

    async def reconcile(self, key: str) -> float | None:
        kind, _, obj_key = key.partition(":")
        issuer = self.informers_by_kind[kind].get(obj_key)
        if issuer is None or issuer["metadata"].get("deletionTimestamp"):
            return None
        issuer = as_kind(issuer, kind)
        backend = self.backends.get(issuer_type(issuer) or "")
        extra: dict = {}
        if backend is None:
            ready, reason, message = "False", "BadConfig", "no issuer type is configured"
        else:
            try:
                reason, message, extra = await backend.check(issuer)
                ready = "True"
            except IssuerError as e:
                ready, reason, message = "False", e.reason, e.message
        before = conditions.get(issuer, "Ready") or {}
        changed = (before.get("status"), before.get("reason"), before.get("message")) != \
            (ready, reason, message)
        status = issuer.get("status") or {}
        if changed or any(status.get(k) != v for k, v in extra.items()):
            body = {"status": {"conditions": conditions.with_condition(
                issuer, "Ready", ready, reason, message), **extra}}
            meta = issuer["metadata"]
            path = Client.resource_path(GROUP, VERSION, KINDS[kind], meta.get("namespace"),
                                        meta["name"], "status")
            new = await self.client.patch(path, body)
            self.informers_by_kind[kind].write_through(new)
        if changed:
            await self.recorder.event(issuer, NORMAL if ready == "True" else WARNING, reason,
                                      message or "Issuer is ready")
            log.info("%s %s: Ready=%s %s: %s", kind, obj_key, ready, reason, message)
        return None if ready == "True" else RETRY_NOT_READY
