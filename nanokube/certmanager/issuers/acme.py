"""The ACME issuer (RFC 8555), over the `acme` library (certbot's client), with HTTP-01.

check(): the account key lives in the Secret spec.acme.privateKeySecretRef (key `tls.key`,
made here when missing, as cert-manager does); the account is registered with the server (an
existing registration of the key is found again), which makes the issuer Ready.
sign(): an order for the Certificate's names; each authorization's HTTP-01 challenge is
presented through the cluster's Ingress controller (http01.py), self-checked, answered; the
order is finalized with a CSR of the Certificate's key and the full chain returned.

The `acme` library is synchronous (requests): its calls run in a worker thread so that the
controller-manager's event loop never blocks. `caBundle` is handed to requests as a CA file;
`skipTLSVerify` turns verification off (test servers such as Pebble).
"""
from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import logging
import os
import tempfile

import josepy
from acme import challenges, client as acme_client, errors as acme_errors, messages

from nanokube.certmanager import http01, pki
from nanokube.certmanager.issuers import (Backend, Context, Issued, IssuerError,
                                          resource_namespace, secret_bytes)
from nanokube.client import Client

log = logging.getLogger("nanokube.certmanager.acme")

USER_AGENT = "nanokube-cert-manager"
NETWORK_TIMEOUT = 10
ORDER_TIMEOUT = 90.0
ACCOUNT_KEY = "tls.key"


def _short(error: Exception) -> str:
    """requests' connection errors nest several layers deep; the innermost says it."""
    text = str(error) or type(error).__name__
    return text if len(text) < 300 else text[:300] + "..."


def select_solver(solvers: list, domain: str) -> dict | None:
    """The http01 solver for `domain`: one naming it in selector.dnsNames, else the one with the
    longest matching selector.dnsZones entry, else one with no selector (cert-manager's order)."""
    best, best_score = None, -1
    for solver in solvers or []:
        if not isinstance(solver, dict) or not solver.get("http01"):
            continue
        selector = solver.get("selector") or {}
        names, zones = selector.get("dnsNames") or [], selector.get("dnsZones") or []
        if names or zones:
            if domain in names:
                score = 10_000
            else:
                matching = [z for z in zones if domain == z or domain.endswith("." + z)]
                if not matching:
                    continue
                score = max(len(z) for z in matching)
        else:
            score = 0
        if score > best_score:
            best, best_score = solver, score
    return best


class ACMEIssuer(Backend):
    def __init__(self, ctx: Context):
        self.ctx = ctx
        self._ca_dir: tempfile.TemporaryDirectory | None = None

    # ---- the account -------------------------------------------------------------------------
    async def account_key(self, issuer: dict, create: bool) -> josepy.JWKRSA:
        acme = issuer["spec"]["acme"]
        ref = acme["privateKeySecretRef"]
        ns = resource_namespace(issuer)
        secret = self.ctx.secret(ns, ref["name"])
        pem = secret_bytes(secret, ref.get("key") or ACCOUNT_KEY)
        if pem is None:
            if not create or acme.get("disableAccountKeyGeneration"):
                raise IssuerError("ErrGetAccountKey", "Failed to get ACME account key: "
                                  f'secrets "{ref["name"]}" not found or holds no key')
            key = pki.generate_private_key("RSA", 2048)
            pem = pki.key_to_pem(key)
            body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                    "metadata": {"name": ref["name"], "namespace": ns},
                    "data": {ref.get("key") or ACCOUNT_KEY: base64.b64encode(pem).decode()}}
            new = await self.ctx.client.create(Client.resource_path("", "v1", "secrets", ns),
                                               body)
            self.ctx.secrets.write_through(new)
        try:
            return josepy.JWKRSA(key=pki.load_key(pem))
        except (ValueError, TypeError) as e:
            raise IssuerError("ErrGetAccountKey", f"Failed to load ACME account key: {e}") \
                from None

    def verify(self, issuer: dict):
        """What requests' `verify` gets: False, True, or the path of the caBundle."""
        acme = issuer["spec"]["acme"]
        if acme.get("skipTLSVerify"):
            return False
        if not acme.get("caBundle"):
            return True
        bundle = base64.b64decode(acme["caBundle"])
        if self._ca_dir is None:
            self._ca_dir = tempfile.TemporaryDirectory(prefix="nanokube-acme-")
        path = os.path.join(self._ca_dir.name, hashlib.sha256(bundle).hexdigest() + ".pem")
        if not os.path.exists(path):
            with open(path, "wb") as f:
                f.write(bundle)
        return path

    def _connect(self, issuer: dict, key: josepy.JWKRSA) -> tuple[acme_client.ClientV2, str]:
        """(client with its account set, account URI); runs in a worker thread."""
        acme = issuer["spec"]["acme"]
        net = acme_client.ClientNetwork(key, verify_ssl=self.verify(issuer),
                                        user_agent=USER_AGENT, timeout=NETWORK_TIMEOUT)
        directory = acme_client.ClientV2.get_directory(acme["server"], net)
        client = acme_client.ClientV2(directory, net)
        registration = messages.NewRegistration.from_data(
            email=acme.get("email") or None, terms_of_service_agreed=True)
        try:
            regr = client.new_account(registration)
        except acme_errors.ConflictError as e:      # the key is registered already
            regr = messages.RegistrationResource(uri=e.location, body=messages.Registration())
            net.account = regr
        return client, regr.uri

    async def check(self, issuer: dict) -> tuple[str, str, dict]:
        key = await self.account_key(issuer, create=True)
        try:
            _, uri = await asyncio.to_thread(self._connect, issuer, key)
        except Exception as e:       # noqa: BLE001 - network, TLS and protocol errors alike
            raise IssuerError("ErrRegisterACMEAccount",
                              f"Failed to register ACME account: {_short(e)}") from None
        acme = issuer["spec"]["acme"]
        return ("ACMEAccountRegistered", "The ACME account was registered with the ACME server",
                {"acme": {"uri": uri, "lastRegisteredEmail": acme.get("email") or ""}})

    # ---- orders ------------------------------------------------------------------------------
    async def sign(self, issuer: dict, certificate: dict, key, request: pki.Request) -> Issued:
        account = await self.account_key(issuer, create=False)
        csr = pki.make_csr(key, request)
        try:
            client, _ = await asyncio.to_thread(self._connect, issuer, account)
            order = await asyncio.to_thread(client.new_order, csr)
        except Exception as e:       # noqa: BLE001
            raise IssuerError("ErrCreateOrder", f"Failed to create ACME order: {_short(e)}") \
                from None
        pending = self.challenges(issuer, order, account)
        ns = certificate["metadata"]["namespace"]
        try:
            for ch, _, options in pending:
                await http01.present(self.ctx.client, ch, ns, certificate, options)
            for ch, _, _ in pending:
                await http01.self_check(self.ctx.client, ch, ns)
            for _, challb, _ in pending:
                await asyncio.to_thread(client.answer_challenge, challb,
                                        challb.response(account))
            deadline = dt.datetime.now() + dt.timedelta(seconds=ORDER_TIMEOUT)
            order = await asyncio.to_thread(client.poll_and_finalize, order, deadline)
        except acme_errors.ValidationError as e:
            problems = "; ".join(f"{a.body.identifier.value}: {c.error.detail}"
                                 for a in e.failed_authzrs for c in a.body.challenges
                                 if c.error is not None)
            raise IssuerError("Failed", f"ACME validation failed: {problems}") from None
        except IssuerError:
            raise
        except Exception as e:       # noqa: BLE001
            raise IssuerError("Failed", f"ACME order failed: {_short(e)}") from None
        finally:
            for ch, _, _ in pending:
                await http01.cleanup(self.ctx.client, ch, ns)
        return Issued(chain=order.fullchain_pem.encode())

    def challenges(self, issuer: dict, order, account) -> list:
        """(Challenge, challenge body, http01.ingress options) for every pending authorization."""
        out = []
        for authz in order.authorizations:
            if authz.body.status == messages.STATUS_VALID:
                continue
            domain = authz.body.identifier.value
            solver = select_solver(issuer["spec"]["acme"].get("solvers") or [], domain)
            if solver is None:
                raise IssuerError("NoSolver", f"no configured challenge solvers can be used "
                                  f"for domain {domain!r} (only http01 solvers are supported)")
            challb = next((c for c in authz.body.challenges
                           if isinstance(c.chall, challenges.HTTP01)), None)
            if challb is None:
                raise IssuerError("NoSolver", f"the ACME server offers no HTTP-01 challenge "
                                  f"for {domain!r}")
            options = (solver["http01"] or {}).get("ingress") or {}
            if options.get("name"):
                raise IssuerError("BadConfig", "http01.ingress.name (editing an existing "
                                  "Ingress) is not supported; leave it out")
            ch = http01.Challenge(domain=domain, token=challb.chall.encode("token"),
                                  key=challb.chall.validation(account))
            out.append((ch, challb, options))
        return out

    def forget(self, issuer: dict) -> None:
        pass
