"""cert-manager's controllers (run by `nanokube cert-manager`), sharing one set of issuer
backends."""
from __future__ import annotations

from nanokube.certmanager.certificates import CertificateController
from nanokube.certmanager.ingressshim import IngressShim
from nanokube.certmanager.issuercontroller import IssuerController
from nanokube.certmanager.issuers import Context, backends


def build(client, informers) -> list:
    shared = backends(Context(client, informers.informer("", "v1", "secrets")))
    return [IssuerController(client, informers, shared),
            CertificateController(client, informers, shared),
            IngressShim(client, informers)]
