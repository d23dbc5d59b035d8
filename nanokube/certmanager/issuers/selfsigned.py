"""The SelfSigned issuer: every certificate is signed by its own private key (ca.crt is the
certificate itself). Always ready; used to bootstrap a CA (a Certificate with isCA: true)."""
from __future__ import annotations

from nanokube.certmanager import pki
from nanokube.certmanager.issuers import Backend, Issued


class SelfSignedIssuer(Backend):
    async def check(self, issuer: dict) -> tuple[str, str, dict]:
        return "IsReady", "", {}

    async def sign(self, issuer: dict, certificate: dict, key, request: pki.Request) -> Issued:
        pem = pki.cert_to_pem(pki.sign(request, key.public_key(), key, None))
        return Issued(chain=pem, ca=pem)
