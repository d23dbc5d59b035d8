"""The cluster's default issuer: a local CA made by `nanokube up`.

`up` generates a CA key pair (ECDSA P-256, ten years), keeps it in the Secret
`cert-manager/nanokube-ca` (tls.crt, tls.key, as a CA issuer expects) and creates the
ClusterIssuer `nanokube-ca` of type CA over it, annotated `nanokube.io/default-issuer: "true"`.
ingress-shim issues from it for Ingress TLS entries that name no Secret (see ingressshim.py).
`nanokube ca` prints its certificate so that clients can trust it.
"""
from __future__ import annotations

import base64
import sys

from nanokube.certmanager.names import (API_VERSION, CLUSTER_RESOURCE_NAMESPACE,
                                        DEFAULT_ISSUER_ANNOTATION, DEFAULT_ISSUER_NAME)


def objects(cluster_name: str) -> list[dict]:
    """The Namespace, Secret and ClusterIssuer of the default issuer, with a fresh CA."""
    from nanokube.certmanager.pki import new_ca
    crt, key = new_ca(f"nanokube {cluster_name} ingress CA")
    b64 = lambda data: base64.b64encode(data).decode()   # noqa: E731
    return [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": CLUSTER_RESOURCE_NAMESPACE}},
        {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
         "metadata": {"name": DEFAULT_ISSUER_NAME, "namespace": CLUSTER_RESOURCE_NAMESPACE},
         "data": {"tls.crt": b64(crt), "tls.key": b64(key)}},
        {"apiVersion": API_VERSION, "kind": "ClusterIssuer",
         "metadata": {"name": DEFAULT_ISSUER_NAME,
                      "annotations": {DEFAULT_ISSUER_ANNOTATION: "true"}},
         "spec": {"ca": {"secretName": DEFAULT_ISSUER_NAME}}},
    ]


async def fetch_ca(kubeconfig: str, issuer: str = DEFAULT_ISSUER_NAME) -> bytes:
    """The CA certificate of a CA ClusterIssuer, from its Secret."""
    from nanokube.client import Client
    async with Client.from_kubeconfig(kubeconfig) as client:
        ci = await client.get(Client.resource_path("cert-manager.io", "v1", "clusterissuers",
                                                   None, issuer))
        secret_name = ((ci.get("spec") or {}).get("ca") or {}).get("secretName")
        if not secret_name:
            raise ValueError(f'ClusterIssuer "{issuer}" is not a CA issuer')
        secret = await client.get(Client.resource_path(
            "", "v1", "secrets", CLUSTER_RESOURCE_NAMESPACE, secret_name))
    return base64.b64decode((secret.get("data") or {}).get("tls.crt") or "")


def print_ca(args) -> int:
    import asyncio

    from nanokube.api.errors import StatusError
    from nanokube.client import APIConnectionError
    from nanokube.controllers.manager import kubeconfig_path
    try:
        pem = asyncio.run(fetch_ca(kubeconfig_path(args)))
    except (StatusError, APIConnectionError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(pem.decode())
    return 0
