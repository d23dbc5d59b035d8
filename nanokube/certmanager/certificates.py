"""The Certificate controller: keeps a signed certificate in each Certificate's Secret.

For each Certificate it decides, from the Secret and the spec, whether a certificate must be
issued (cert-manager's "issuing" triggers: the Secret is missing or holds no valid key pair, its
names differ from the spec, it was issued by another issuer, or the renewal time has come), asks
the referenced issuer to sign a new key, and writes tls.crt, tls.key and ca.crt into the Secret
(type kubernetes.io/tls), updating it in place so that its readers keep one name. The status
carries Ready, notBefore/notAfter and renewalTime = notAfter - renewBefore (a third of the
lifetime unless spec.renewBefore or renewBeforePercentage says otherwise); the key is looked at
again at that time.

When issuance fails (issuer missing or not Ready, ACME server unreachable...) the Secret is left
as it is, so the old certificate keeps serving; the Certificate gets Issuing=False with the
reason, a Warning Event, and is tried again with an exponential back-off.
"""
from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging

from nanokube.apitime import now_rfc3339, parse_duration
from nanokube.certmanager import conditions, pki
from nanokube.certmanager.issuers import Backend, IssuerError, issuer_type, secret_bytes
from nanokube.certmanager.names import (ALT_NAMES_ANNOTATION, CERTIFICATE_NAME_ANNOTATION,
                                        COMMON_NAME_SECRET_ANNOTATION, GROUP,
                                        IP_SANS_ANNOTATION, ISSUER_NAME_ANNOTATION, VERSION)
from nanokube.client import Client
from nanokube.controllers.events import NORMAL, WARNING, EventRecorder
from nanokube.controllers.informer import object_key
from nanokube.controllers.manager import Controller

log = logging.getLogger("nanokube.certmanager.certificates")

COMPONENT = "cert-manager-certificates"
ISSUER_KIND_SECRET_ANNOTATION = "cert-manager.io/issuer-kind"
ISSUER_GROUP_SECRET_ANNOTATION = "cert-manager.io/issuer-group"
TLS_SECRET_TYPE = "kubernetes.io/tls"
READY_MESSAGE = "Certificate is up to date and has not expired"
MAX_BACKOFF = 300.0


def as_certificate(obj: dict) -> dict:
    if obj.get("kind"):
        return obj
    return {"kind": "Certificate", "apiVersion": f"{GROUP}/{VERSION}", **obj}


def issuer_ref(cert: dict) -> tuple[str, str, str]:
    """(kind, name, group) with cert-manager's defaults."""
    ref = (cert.get("spec") or {}).get("issuerRef") or {}
    return ref.get("kind") or "Issuer", ref.get("name") or "", ref.get("group") or GROUP


def request_of(cert: dict) -> pki.Request:
    spec = cert.get("spec") or {}
    duration = pki.DEFAULT_DURATION
    if spec.get("duration"):
        duration = parse_duration(spec["duration"])
    return pki.Request(common_name=spec.get("commonName") or "",
                       dns_names=tuple(spec.get("dnsNames") or ()),
                       ip_addresses=tuple(spec.get("ipAddresses") or ()),
                       duration=duration, is_ca=bool(spec.get("isCA")),
                       organizations=tuple((spec.get("subject") or {}).get("organizations")
                                           or ()))


def renewal_of(cert: dict, x509_cert) -> dt.datetime:
    spec = cert.get("spec") or {}
    before = parse_duration(spec["renewBefore"]) if spec.get("renewBefore") else None
    return pki.renewal_time(x509_cert.not_valid_before_utc, x509_cert.not_valid_after_utc,
                            before, spec.get("renewBeforePercentage"))


class KeyPair:
    """What the Secret holds now, parsed (None members when it holds nothing usable)."""

    def __init__(self, secret: dict | None):
        self.secret = secret
        self.certs: list = []
        self.key = None
        crt, key = secret_bytes(secret, "tls.crt"), secret_bytes(secret, "tls.key")
        try:
            if crt:
                self.certs = pki.load_certs(crt)
            if key:
                self.key = pki.load_key(key)
        except ValueError:
            self.certs, self.key = [], None

    @property
    def leaf(self):
        return self.certs[0] if self.certs else None

    def valid(self) -> bool:
        return bool(self.leaf is not None and self.key is not None
                    and pki.public_keys_match(self.key, self.leaf))


def issuing_reason(cert: dict, pair: KeyPair, now: dt.datetime) -> tuple[str, str] | None:
    """Why a new certificate must be issued (reason, message), None when the Secret is fine."""
    name = cert["spec"]["secretName"]
    if pair.secret is None:
        return "DoesNotExist", "Issuing certificate as Secret does not exist"
    if not pair.valid():
        return "InvalidKeyPair", f"Issuing certificate as Secret {name!r} holds no valid " \
                                 "certificate and key"
    req = request_of(cert)
    leaf = pair.leaf
    if sorted(set(pki.dns_names(leaf))) != sorted(set(req.dns_names)) or \
            sorted(set(pki.ip_addresses(leaf))) != sorted(set(req.ip_addresses)):
        return "SecretMismatch", "Issuing certificate as Secret was previously issued for " \
                                 f"{', '.join(pki.dns_names(leaf) + pki.ip_addresses(leaf))}"
    annotations = pair.secret["metadata"].get("annotations") or {}
    kind, issuer, _ = issuer_ref(cert)
    if annotations.get(ISSUER_NAME_ANNOTATION, issuer) != issuer or \
            annotations.get(ISSUER_KIND_SECRET_ANNOTATION, kind) != kind:
        return "IncorrectIssuer", "Issuing certificate as Secret was previously issued by " \
            f"{annotations.get(ISSUER_KIND_SECRET_ANNOTATION)}.{GROUP}/" \
            f"{annotations.get(ISSUER_NAME_ANNOTATION)}"
    if leaf.not_valid_after_utc <= now:
        return "Expired", f"Issuing certificate as Secret expired at " \
                          f"{pki.rfc3339(leaf.not_valid_after_utc)}"
    renewal = renewal_of(cert, leaf)
    if renewal <= now:
        return "Renewing", f"Renewing certificate as renewal was scheduled at " \
                           f"{pki.rfc3339(renewal)}"
    return None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class CertificateController(Controller):
    name = "cert-manager-certificates"
    workers = 4           # an ACME order takes seconds; others go on meanwhile

    def __init__(self, client, informers, backends: dict[str, Backend]):
        super().__init__(client, informers)
        self.backends = backends
        self.certificates = informers.informer(GROUP, VERSION, "certificates")
        self.issuers = informers.informer(GROUP, VERSION, "issuers")
        self.cluster_issuers = informers.informer(GROUP, VERSION, "clusterissuers")
        self.secrets = informers.informer("", "v1", "secrets")
        self.recorder = EventRecorder(client, COMPONENT)
        self.certificates.add_handler(self._on_certificate)
        self.secrets.add_handler(self._on_secret)
        self.issuers.add_handler(lambda old, new: self._on_issuer("Issuer", new or old))
        self.cluster_issuers.add_handler(
            lambda old, new: self._on_issuer("ClusterIssuer", new or old))

    # ---- event handlers ----------------------------------------------------------------------
    def _on_certificate(self, old: dict | None, new: dict | None) -> None:
        if old is not None and new is not None and \
                old.get("spec") == new.get("spec") and \
                old["metadata"].get("deletionTimestamp") == new["metadata"].get("deletionTimestamp"):
            return      # a status write (ours); the renewal timer is already set
        self.enqueue(object_key(new or old))

    def _on_secret(self, old: dict | None, new: dict | None) -> None:
        obj = new or old
        ns, name = obj["metadata"].get("namespace"), obj["metadata"]["name"]
        for cert in self.certificates.list(ns):
            if (cert.get("spec") or {}).get("secretName") == name:
                self.enqueue(object_key(cert))

    def _on_issuer(self, kind: str, issuer: dict) -> None:
        name, ns = issuer["metadata"]["name"], issuer["metadata"].get("namespace")
        for cert in self.certificates.list(ns if kind == "Issuer" else None):
            ref_kind, ref_name, group = issuer_ref(cert)
            if (ref_kind, ref_name, group) == (kind, name, GROUP):
                self.enqueue(object_key(cert))

    # ---- reconcile ---------------------------------------------------------------------------
    def lookup_issuer(self, cert: dict) -> dict:
        kind, name, group = issuer_ref(cert)
        if group != GROUP or kind not in ("Issuer", "ClusterIssuer"):
            raise IssuerError("IssuerNotFound", f"issuerRef {kind}.{group}/{name} is not an "
                              "issuer nanokube knows")
        if kind == "Issuer":
            issuer = self.issuers.get(f"{cert['metadata']['namespace']}/{name}")
        else:
            issuer = self.cluster_issuers.get(name)
        if issuer is None:
            raise IssuerError("IssuerNotFound", f'{kind}.{GROUP} "{name}" not found')
        if not conditions.is_true(issuer, "Ready"):
            why = (conditions.get(issuer, "Ready") or {}).get("message") or "not checked yet"
            raise IssuerError("IssuerNotReady", f'{kind}.{GROUP} "{name}" is not Ready: {why}')
        return issuer

    async def reconcile(self, key: str) -> float | None:
        cert = self.certificates.get(key)
        if cert is None or cert["metadata"].get("deletionTimestamp"):
            return None
        cert = as_certificate(cert)
        ns = cert["metadata"]["namespace"]
        pair = KeyPair(self.secrets.get(f"{ns}/{cert['spec']['secretName']}"))
        now = dt.datetime.now(dt.timezone.utc)
        why = issuing_reason(cert, pair, now)
        if why is None:
            renewal = renewal_of(cert, pair.leaf)
            await self.write_status(cert, self.ready_status(cert, pair.leaf, renewal))
            return max(1.0, (renewal - now).total_seconds())
        return await self.issue(cert, pair, why)

    async def issue(self, cert: dict, pair: KeyPair, why: tuple[str, str]) -> float | None:
        reason, message = why
        if not conditions.is_true(cert, "Issuing"):
            await self.recorder.event(cert, NORMAL, "Issuing", message)
            await self.write_status(cert, {"conditions": conditions.with_condition(
                cert, "Issuing", "True", reason, message)})
        try:
            issuer = self.lookup_issuer(cert)
            backend = self.backends[issuer_type(issuer) or ""]
            request = request_of(cert)
            key = self.private_key(cert, pair)
            issued = await backend.sign(issuer, cert, key, request)
        except asyncio.CancelledError:
            raise
        except Exception as e:       # noqa: BLE001 - every failure is reported the same way
            return await self.failed(cert, pair, e)
        leaf = pki.load_certs(issued.chain)[0]
        await self.write_secret(cert, pair.secret, issued, key)
        renewal = renewal_of(cert, leaf)
        status = self.ready_status(cert, leaf, renewal)
        status["revision"] = int((cert.get("status") or {}).get("revision") or 0) + 1
        status["conditions"] = [c for c in status["conditions"] if c["type"] != "Issuing"]
        status["failedIssuanceAttempts"] = None
        status["lastFailureTime"] = None
        await self.write_status(cert, status)
        await self.recorder.event(cert, NORMAL, "Issuing",
                                  "The certificate has been successfully issued")
        log.info("certificate %s issued (%s), renewal at %s", object_key(cert),
                 ", ".join(request_of(cert).dns_names), pki.rfc3339(renewal))
        now = dt.datetime.now(dt.timezone.utc)
        return max(1.0, (renewal - now).total_seconds())

    def private_key(self, cert: dict, pair: KeyPair):
        """A new key (rotationPolicy Always, cert-manager's default since 1.18), or the one in
        the Secret with rotationPolicy Never."""
        options = (cert.get("spec") or {}).get("privateKey") or {}
        if options.get("rotationPolicy") == "Never" and pair.key is not None:
            return pair.key
        return pki.generate_private_key(options.get("algorithm") or "RSA", options.get("size"))

    async def failed(self, cert: dict, pair: KeyPair, error: Exception) -> float:
        detail = error.message if isinstance(error, IssuerError) else str(error) or repr(error)
        reason = error.reason if isinstance(error, IssuerError) else "Failed"
        message = f"The certificate request has failed to complete and will be retried: {detail}"
        attempts = int((cert.get("status") or {}).get("failedIssuanceAttempts") or 0) + 1
        conds = conditions.with_condition(cert, "Issuing", "False", "Failed", message)
        still_valid = pair.valid() and pair.leaf.not_valid_after_utc > \
            dt.datetime.now(dt.timezone.utc)
        if not still_valid:
            conds = conditions.with_condition({"status": {"conditions": conds},
                                               "metadata": cert["metadata"]},
                                              "Ready", "False", reason, detail)
        await self.write_status(cert, {"conditions": conds, "failedIssuanceAttempts": attempts,
                                       "lastFailureTime": now_rfc3339()})
        await self.recorder.event(cert, WARNING, "Failed", message)
        log.warning("certificate %s: %s", object_key(cert), message)
        return min(MAX_BACKOFF, 5.0 * 2 ** (attempts - 1))

    def ready_status(self, cert: dict, leaf, renewal: dt.datetime) -> dict:
        return {"conditions": conditions.with_condition(cert, "Ready", "True", "Ready",
                                                        READY_MESSAGE),
                "notBefore": pki.rfc3339(leaf.not_valid_before_utc),
                "notAfter": pki.rfc3339(leaf.not_valid_after_utc),
                "renewalTime": pki.rfc3339(renewal)}

    async def write_status(self, cert: dict, status: dict) -> None:
        current = cert.get("status") or {}
        if all(current.get(k) == v for k, v in status.items()):
            return
        meta = cert["metadata"]
        path = Client.resource_path(GROUP, VERSION, "certificates", meta["namespace"],
                                    meta["name"], "status")
        new = await self.client.patch(path, {"status": status})
        self.certificates.write_through(new)
        cert.clear()
        cert.update(as_certificate(new))

    async def write_secret(self, cert: dict, secret: dict | None, issued, key) -> None:
        """Create the Secret, or update it in place (same name, new data)."""
        spec = cert["spec"]
        kind, issuer, group = issuer_ref(cert)
        template = spec.get("secretTemplate") or {}
        annotations = {**(template.get("annotations") or {}),
                       CERTIFICATE_NAME_ANNOTATION: cert["metadata"]["name"],
                       ISSUER_NAME_ANNOTATION: issuer, ISSUER_KIND_SECRET_ANNOTATION: kind,
                       ISSUER_GROUP_SECRET_ANNOTATION: group,
                       ALT_NAMES_ANNOTATION: ",".join(spec.get("dnsNames") or []),
                       IP_SANS_ANNOTATION: ",".join(spec.get("ipAddresses") or []),
                       COMMON_NAME_SECRET_ANNOTATION: spec.get("commonName") or ""}
        labels = {**(template.get("labels") or {}), "controller.cert-manager.io/fao": "true"}
        encoding = (spec.get("privateKey") or {}).get("encoding") or "PKCS1"
        data = {"tls.crt": _b64(issued.chain), "tls.key": _b64(pki.key_to_pem(key, encoding))}
        if issued.ca:
            data["ca.crt"] = _b64(issued.ca)
        ns, name = cert["metadata"]["namespace"], spec["secretName"]
        if secret is None:
            body = {"apiVersion": "v1", "kind": "Secret", "type": TLS_SECRET_TYPE,
                    "metadata": {"name": name, "namespace": ns, "annotations": annotations,
                                 "labels": labels}, "data": data}
            # a 409 (created meanwhile) is retried by the work queue once the cache has it
            new = await self.client.create(Client.resource_path("", "v1", "secrets", ns), body)
        else:
            body = dict(secret)
            body["metadata"] = {**secret["metadata"],
                                "annotations": {**(secret["metadata"].get("annotations") or {}),
                                                **annotations},
                                "labels": {**(secret["metadata"].get("labels") or {}), **labels}}
            body["data"] = {**(secret.get("data") or {}), **data}
            if not issued.ca:
                body["data"].pop("ca.crt", None)
            body.setdefault("apiVersion", "v1")
            body.setdefault("kind", "Secret")
            new = await self.client.update(Client.resource_path("", "v1", "secrets", ns, name),
                                           body)
        self.secrets.write_through(new)
