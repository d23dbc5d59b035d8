"""ingress-shim: Certificates for Ingresses, as cert-manager's certificate-shim.

An Ingress annotated with `cert-manager.io/cluster-issuer` or `cert-manager.io/issuer` gets one
Certificate per `spec.tls` entry, named after the entry's secretName, with the entry's hosts as
dnsNames, controlled by the Ingress (garbage-collected with it). Optional annotations
`cert-manager.io/duration`, `renew-before` and `common-name` go to the Certificate. A change of
hosts updates the Certificate (which then re-issues); an entry that goes away takes its
Certificate with it.

nanokube's addition: a TLS entry that names no Secret, on an Ingress that names no issuer, gets
its certificate from the default issuer (the ClusterIssuer annotated
`nanokube.io/default-issuer: "true"`, made by `nanokube up`), stored in the Secret
`default_secret_name(ingress, index)` that the ingress controller serves for those hosts.
An annotated Ingress's entries without a secretName use that name too.
"""
from __future__ import annotations

import ipaddress
import logging

from nanokube.certmanager.names import (CLUSTER_ISSUER_ANNOTATION, COMMON_NAME_ANNOTATION,
                                        DEFAULT_ISSUER_ANNOTATION, DURATION_ANNOTATION, GROUP,
                                        ISSUER_ANNOTATION, ISSUER_GROUP_ANNOTATION,
                                        ISSUER_KIND_ANNOTATION, RENEW_BEFORE_ANNOTATION,
                                        VERSION, default_secret_name)
from nanokube.client import Client
from nanokube.controllers.events import NORMAL, WARNING, EventRecorder
from nanokube.controllers.informer import object_key
from nanokube.controllers.manager import Controller, controller_ref

log = logging.getLogger("nanokube.certmanager.ingressshim")

COMPONENT = "cert-manager-ingress-shim"


def annotated_issuer(ingress: dict) -> dict | None:
    """The issuerRef the Ingress's annotations name, if any."""
    annotations = ingress["metadata"].get("annotations") or {}
    if annotations.get(CLUSTER_ISSUER_ANNOTATION):
        return {"name": annotations[CLUSTER_ISSUER_ANNOTATION], "kind": "ClusterIssuer",
                "group": GROUP}
    if annotations.get(ISSUER_ANNOTATION):
        return {"name": annotations[ISSUER_ANNOTATION],
                "kind": annotations.get(ISSUER_KIND_ANNOTATION) or "Issuer",
                "group": annotations.get(ISSUER_GROUP_ANNOTATION) or GROUP}
    return None


def default_issuer(cluster_issuers: list[dict]) -> dict | None:
    """The default ClusterIssuer's issuerRef (the first by name if several say so)."""
    names = sorted(ci["metadata"]["name"] for ci in cluster_issuers
                   if (ci["metadata"].get("annotations") or {}).get(DEFAULT_ISSUER_ANNOTATION)
                   == "true")
    return {"name": names[0], "kind": "ClusterIssuer", "group": GROUP} if names else None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def desired_certificates(ingress: dict, default: dict | None) -> tuple[dict, list[str]]:
    """{certificate name: spec} for the Ingress, and the problems found (BadConfig)."""
    meta = ingress["metadata"]
    annotations = meta.get("annotations") or {}
    issuer = annotated_issuer(ingress)
    out: dict[str, dict] = {}
    problems: list[str] = []
    for index, tls in enumerate((ingress.get("spec") or {}).get("tls") or []):
        secret = tls.get("secretName")
        if issuer is None and (secret or default is None):
            continue           # not ours: a Secret the user manages, or no default issuer
        hosts = [h for h in tls.get("hosts") or [] if h]
        if not hosts:
            problems.append(f"TLS entry {index} for hosts [] must specify at least one host")
            continue
        name = secret or default_secret_name(meta["name"], index)
        if name in out:
            problems.append(f"Duplicate TLS entry for secretName {name!r}")
            continue
        spec = {"secretName": name, "issuerRef": dict(issuer or default),
                "dnsNames": sorted({h for h in hosts if not _is_ip(h)})}
        ips = sorted({h for h in hosts if _is_ip(h)})
        if ips:
            spec["ipAddresses"] = ips
        if not spec["dnsNames"]:
            del spec["dnsNames"]
        for annotation, field in ((DURATION_ANNOTATION, "duration"),
                                  (RENEW_BEFORE_ANNOTATION, "renewBefore"),
                                  (COMMON_NAME_ANNOTATION, "commonName")):
            if annotations.get(annotation):
                spec[field] = annotations[annotation]
        out[name] = spec
    return out, problems


class IngressShim(Controller):
    name = "cert-manager-ingress-shim"

    def __init__(self, client, informers):
        super().__init__(client, informers)
        self.ingresses = informers.informer("networking.k8s.io", "v1", "ingresses")
        self.certificates = informers.informer(GROUP, VERSION, "certificates")
        self.cluster_issuers = informers.informer(GROUP, VERSION, "clusterissuers")
        self.recorder = EventRecorder(client, COMPONENT)
        self.ingresses.add_handler(self._on_ingress)
        self.certificates.add_handler(self._on_certificate)
        self.cluster_issuers.add_handler(self._on_cluster_issuer)

    def _on_ingress(self, old: dict | None, new: dict | None) -> None:
        if old is not None and new is not None and old.get("spec") == new.get("spec") and \
                old["metadata"].get("annotations") == new["metadata"].get("annotations"):
            return          # a status update
        self.enqueue(object_key(new or old))

    def _on_certificate(self, old: dict | None, new: dict | None) -> None:
        obj = new or old
        ref = controller_ref(obj)
        if ref and ref.get("kind") == "Ingress" and (old is None or new is None or
                                                     old.get("spec") != new.get("spec")):
            self.enqueue(f"{obj['metadata']['namespace']}/{ref['name']}")

    def _on_cluster_issuer(self, old: dict | None, new: dict | None) -> None:
        before = (old or {}).get("metadata", {}).get("annotations") or {}
        after = (new or {}).get("metadata", {}).get("annotations") or {}
        if before.get(DEFAULT_ISSUER_ANNOTATION) != after.get(DEFAULT_ISSUER_ANNOTATION) or \
                old is None or new is None:
            for key in self.ingresses.keys():
                self.enqueue(key)

    def owned(self, ingress: dict) -> dict[str, dict]:
        uid = ingress["metadata"]["uid"]
        return {c["metadata"]["name"]: c
                for c in self.certificates.list(ingress["metadata"]["namespace"])
                if (controller_ref(c) or {}).get("uid") == uid}

    async def reconcile(self, key: str) -> float | None:
        ingress = self.ingresses.get(key)
        if ingress is None or ingress["metadata"].get("deletionTimestamp"):
            return None          # its Certificates go with it (garbage collector)
        ingress = ingress if ingress.get("kind") else \
            {"kind": "Ingress", "apiVersion": "networking.k8s.io/v1", **ingress}
        ns = ingress["metadata"]["namespace"]
        desired, problems = desired_certificates(
            ingress, default_issuer(self.cluster_issuers.list()))
        for problem in problems:
            await self.recorder.event(ingress, WARNING, "BadConfig", problem)
        owned = self.owned(ingress)
        for name, spec in desired.items():
            current = self.certificates.get(f"{ns}/{name}")
            if current is None:
                await self.create(ingress, name, spec)
            elif name not in owned:
                await self.recorder.event(ingress, WARNING, "BadConfig", f"Certificate "
                                          f"{name!r} exists and is not owned by this Ingress")
            elif any(current["spec"].get(k) != v for k, v in spec.items()) or \
                    set(current["spec"]) - set(spec) - {"usages", "privateKey"}:
                await self.update(ingress, current, spec)
        for name, cert in owned.items():
            if name not in desired:
                path = Client.resource_path(GROUP, VERSION, "certificates", ns, name)
                await self.client.delete(path)
                self.certificates.write_through(None, f"{ns}/{name}")
                await self.recorder.event(ingress, NORMAL, "DeleteCertificate",
                                          f'Successfully deleted unrequired Certificate "{name}"')
        return None

    async def create(self, ingress: dict, name: str, spec: dict) -> None:
        meta = ingress["metadata"]
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Certificate",
                "metadata": {"name": name, "namespace": meta["namespace"],
                             "labels": dict(meta.get("labels") or {}),
                             "ownerReferences": [{
                                 "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                                 "name": meta["name"], "uid": meta["uid"], "controller": True,
                                 "blockOwnerDeletion": True}]},
                "spec": spec}
        new = await self.client.create(Client.resource_path(GROUP, VERSION, "certificates",
                                                            meta["namespace"]), body)
        self.certificates.write_through(new)
        await self.recorder.event(ingress, NORMAL, "CreateCertificate",
                                  f'Successfully created Certificate "{name}"')

    async def update(self, ingress: dict, current: dict, spec: dict) -> None:
        body = dict(current)
        body.setdefault("apiVersion", f"{GROUP}/{VERSION}")
        body.setdefault("kind", "Certificate")
        body["spec"] = {**{k: v for k, v in current["spec"].items()
                           if k in ("usages", "privateKey")}, **spec}
        name = current["metadata"]["name"]
        new = await self.client.update(Client.resource_path(
            GROUP, VERSION, "certificates", current["metadata"]["namespace"], name), body)
        self.certificates.write_through(new)
        await self.recorder.event(ingress, NORMAL, "UpdateCertificate",
                                  f'Successfully updated Certificate "{name}"')
