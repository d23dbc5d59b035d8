"""ServiceAccount tokens: the TokenRequest API (serviceaccounts/NAME/token) and their checking.

Tokens are JWTs signed with ES256 by the API server's own key (pki/sa.key), with the claims
Kubernetes puts in bound tokens (iss, sub system:serviceaccount:NS:NAME, aud, exp, iat, nbf and
the kubernetes.io claim naming the namespace, service account and bound pod), so that a pod
reaches the API as real pods do: the token and CA under
/var/run/secrets/kubernetes.io/serviceaccount.
"""
from __future__ import annotations

import base64
import json
import os
import time

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (decode_dss_signature,
                                                             encode_dss_signature)

ISSUER = "https://kubernetes.default.svc.cluster.local"
DEFAULT_AUDIENCE = ISSUER
DEFAULT_EXPIRATION = 3607          # what the kubelet asks for projected tokens
MAX_EXPIRATION = 48 * 3600


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenIssuer:
    def __init__(self, key: ec.EllipticCurvePrivateKey):
        self.key = key
        self.public = key.public_key()

    @classmethod
    def ensure(cls, pki_dir: str) -> "TokenIssuer":
        path = os.path.join(pki_dir, "sa.key")
        if os.path.exists(path):
            with open(path, "rb") as f:
                return cls(serialization.load_pem_private_key(f.read(), None))
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        tmp = path + ".tmp"
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
            f.write(pem)
        os.replace(tmp, path)
        return cls(key)

    def issue(self, namespace: str, name: str, uid: str, audiences: list[str],
              expiration: int, bound: dict | None = None) -> tuple[str, int]:
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": f"system:serviceaccount:{namespace}:{name}",
                  "aud": audiences or [DEFAULT_AUDIENCE], "iat": now, "nbf": now,
                  "exp": now + expiration,
                  "kubernetes.io": {"namespace": namespace,
                                    "serviceaccount": {"name": name, "uid": uid}}}
        if bound and bound.get("kind") == "Pod":
            claims["kubernetes.io"]["pod"] = {"name": bound.get("name", ""),
                                              "uid": bound.get("uid", "")}
        head = _b64(json.dumps({"alg": "ES256", "typ": "JWT"}).encode())
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        der = self.key.sign(f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        sig = _b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
        return f"{head}.{body}.{sig}", claims["exp"]

    def authenticate(self, token: str) -> tuple[str, list[str]] | None:
        """(user, groups) for a valid, unexpired token of ours, else None."""
        try:
            head, body, sig = token.split(".")
            raw = _unb64(sig)
            if len(raw) != 64:
                return None
            der = encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                       int.from_bytes(raw[32:], "big"))
            self.public.verify(der, f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
            claims = json.loads(_unb64(body))
        except (ValueError, InvalidSignature):
            return None
        if claims.get("iss") != ISSUER or claims.get("exp", 0) < time.time():
            return None
        info = claims.get("kubernetes.io") or {}
        ns = info.get("namespace", "")
        return claims.get("sub", ""), ["system:serviceaccounts", f"system:serviceaccounts:{ns}",
                                       "system:authenticated"]


def token_request_response(request: dict, token: str, exp: int) -> dict:
    spec = dict(request.get("spec") or {})
    return {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": None}, "spec": spec,
            "status": {"token": token, "expirationTimestamp": time.strftime(
                "%Y-%m-%dT%H:%M:%SZ", time.gmtime(exp))}}
