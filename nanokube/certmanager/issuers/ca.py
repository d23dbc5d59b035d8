"""The CA issuer: signs with a CA key pair kept in a Secret (tls.crt, tls.key) in the issuer's
namespace, or in `cert-manager` for a ClusterIssuer. tls.crt may hold the CA's chain (the CA
first); the issued tls.crt is the certificate followed by that chain, ca.crt its last element
(the root)."""
from __future__ import annotations

from nanokube.certmanager import pki
from nanokube.certmanager.issuers import (Backend, Context, Issued, IssuerError,
                                          resource_namespace, secret_bytes)


class CAIssuer(Backend):
    def __init__(self, ctx: Context):
        self.ctx = ctx

    def key_pair(self, issuer: dict):
        """(CA certificates, CA key) from the issuer's Secret; IssuerError when unusable."""
        name = issuer["spec"]["ca"]["secretName"]
        secret = self.ctx.secret(resource_namespace(issuer), name)
        if secret is None:
            raise IssuerError("ErrGetKeyPair", "Error getting keypair for CA issuer: "
                              f'secrets "{name}" not found')
        crt, key = secret_bytes(secret, "tls.crt"), secret_bytes(secret, "tls.key")
        if not crt or not key:
            raise IssuerError("ErrGetKeyPair", "Error getting keypair for CA issuer: secret "
                              f'"{name}" has no tls.crt or no tls.key')
        try:
            certs, ca_key = pki.load_certs(crt), pki.load_key(key)
        except ValueError as e:
            raise IssuerError("ErrGetKeyPair", "Error getting keypair for CA issuer: "
                              f"cannot decode secret \"{name}\": {e}") from None
        if not pki.public_keys_match(ca_key, certs[0]):
            raise IssuerError("ErrInvalidKeyPair", "Error getting keypair for CA issuer: the "
                              "private key does not match the certificate")
        if not pki.is_ca(certs[0]):
            raise IssuerError("ErrInvalidKeyPair", "Error getting keypair for CA issuer: "
                              f'the certificate in secret "{name}" is not a CA')
        return certs, ca_key

    async def check(self, issuer: dict) -> tuple[str, str, dict]:
        self.key_pair(issuer)
        return "KeyPairVerified", "Signing CA verified", {}

    async def sign(self, issuer: dict, certificate: dict, key, request: pki.Request) -> Issued:
        certs, ca_key = self.key_pair(issuer)
        leaf = pki.sign(request, key.public_key(), ca_key, certs[0])
        chain = pki.cert_to_pem(leaf) + b"".join(pki.cert_to_pem(c) for c in certs)
        return Issued(chain=chain, ca=pki.cert_to_pem(certs[-1]))
