"""HTTP-01 challenges solved through the cluster's own Ingress controller, as cert-manager does.

For each challenge: a solver Pod (the `nanokube` image running `nanokube acmesolver`, which
answers GET /.well-known/acme-challenge/<token> with the key authorization on port 8089), a
ClusterIP Service in front of it, and an Ingress routing exactly that path of the domain to the
Service (pathType Exact, named cm-acme-http-solver-<hash>). All three are owned by the
Certificate and deleted once the challenge is over.

Before the ACME server is told to validate, the solver is checked the way the ACME server will
reach it: an HTTP GET to the address the ingress controller published in the solver Ingress's
status, with the domain as Host header (so no DNS name is ever resolved here).
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass


from nanokube.api.errors import StatusError
from nanokube.client import Client
from nanokube.httpclient import Session

log = logging.getLogger("nanokube.certmanager.http01")

SOLVER_PORT = 8089
SOLVER_LABEL = "acme.cert-manager.io/http01-solver"
CHALLENGE_PATH = "/.well-known/acme-challenge/"
SELF_CHECK_TIMEOUT = 90.0


@dataclass
class Challenge:
    domain: str
    token: str
    key: str                 # the key authorization: token.thumbprint

    @property
    def path(self) -> str:
        return CHALLENGE_PATH + self.token

    @property
    def name(self) -> str:
        digest = hashlib.sha256(f"{self.domain}/{self.token}".encode()).hexdigest()[:10]
        return f"cm-acme-http-solver-{digest}"


def solver_objects(ch: Challenge, namespace: str, owner: dict, ingress_options: dict) -> list:
    """(path, body) of the Pod, Service and Ingress solving one challenge."""
    labels = {SOLVER_LABEL: "true",
              "acme.cert-manager.io/http-domain": hashlib.sha256(ch.domain.encode())
              .hexdigest()[:10],
              "acme.cert-manager.io/http-token": hashlib.sha256(ch.token.encode())
              .hexdigest()[:10]}
    meta = {"name": ch.name, "namespace": namespace, "labels": labels,
            "ownerReferences": [{"apiVersion": owner["apiVersion"], "kind": owner["kind"],
                                 "name": owner["metadata"]["name"],
                                 "uid": owner["metadata"]["uid"], "controller": True,
                                 "blockOwnerDeletion": True}]}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
           "spec": {"restartPolicy": "OnFailure",
                    "containers": [{
                        "name": "acmesolver", "image": "nanokube",
                        "args": ["acmesolver", f"--listen-port={SOLVER_PORT}",
                                 f"--domain={ch.domain}", f"--token={ch.token}",
                                 f"--key={ch.key}"],
                        "ports": [{"name": "http", "containerPort": SOLVER_PORT}]}]}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": meta,
               "spec": {"type": ingress_options.get("serviceType") or "ClusterIP",
                        "selector": labels,
                        "ports": [{"name": "http", "port": SOLVER_PORT,
                                   "targetPort": SOLVER_PORT, "protocol": "TCP"}]}}
    annotations = {"nginx.ingress.kubernetes.io/whitelist-source-range": "0.0.0.0/0,::/0",
                   "nginx.ingress.kubernetes.io/ssl-redirect": "false"}
    spec: dict = {"rules": [{"host": ch.domain, "http": {"paths": [{
        "path": ch.path, "pathType": "Exact",
        "backend": {"service": {"name": ch.name, "port": {"number": SOLVER_PORT}}}}]}}]}
    if ingress_options.get("ingressClassName"):
        spec["ingressClassName"] = ingress_options["ingressClassName"]
    if ingress_options.get("class"):
        annotations["kubernetes.io/ingress.class"] = ingress_options["class"]
    ingress = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
               "metadata": {**meta, "annotations": annotations}, "spec": spec}
    return [(Client.resource_path("", "v1", "pods", namespace), pod),
            (Client.resource_path("", "v1", "services", namespace), service),
            (Client.resource_path("networking.k8s.io", "v1", "ingresses", namespace), ingress)]


async def present(client: Client, ch: Challenge, namespace: str, owner: dict,
                  ingress_options: dict) -> None:
    for path, body in solver_objects(ch, namespace, owner, ingress_options):
        try:
            await client.create(path, body)
        except StatusError as e:
            if e.code != 409:       # left over from an earlier attempt: the same content
                raise


async def cleanup(client: Client, ch: Challenge, namespace: str) -> None:
    for group, plural in (("networking.k8s.io", "ingresses"), ("", "services"), ("", "pods")):
        version = "v1"
        try:
            await client.delete(Client.resource_path(group, version, plural, namespace,
                                                     ch.name), gracePeriodSeconds=0)
        except StatusError as e:
            if e.code != 404:
                log.warning("cleanup of %s %s/%s: %s", plural, namespace, ch.name, e)


async def self_check(client: Client, ch: Challenge, namespace: str,
                     timeout: float = SELF_CHECK_TIMEOUT) -> None:
    """Wait until the challenge is served through the Ingress's published address, asked as
    the ACME server will ask: that address, with the domain in the Host header."""
    deadline = time.monotonic() + timeout
    last = "the solver Ingress has no address yet"
    path = Client.resource_path("networking.k8s.io", "v1", "ingresses", namespace, ch.name)
    http = Session(None, {}, connect_timeout=3.0)
    try:
        while time.monotonic() < deadline:
            ingress = await client.get(path)
            addresses = ((ingress.get("status") or {}).get("loadBalancer") or {}) \
                .get("ingress") or []
            address = next((a.get("ip") for a in addresses if a.get("ip")), None)
            if address:
                url = f"http://{address}{ch.path}"
                try:
                    async with await asyncio.wait_for(http.request(
                            "GET", url, headers={"Host": ch.domain}), 3.0) as resp:
                        body = (await asyncio.wait_for(resp.read(), 3.0)).decode(
                            errors="replace")
                    if resp.status == 200 and body.strip() == ch.key:
                        return
                    last = f"wrong status code '{resp.status}', expected '200'"
                except (OSError, asyncio.TimeoutError) as e:
                    last = f"{url}: {e or type(e).__name__}"
            await asyncio.sleep(0.5)
    finally:
        await http.close()
    raise TimeoutError(f"self check of {ch.domain}{ch.path} failed: {last}")
