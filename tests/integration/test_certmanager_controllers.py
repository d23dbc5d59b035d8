"""cert-manager's controllers (issuers, certificates, ingress-shim) against a real API server.

`nanokube server` runs as a subprocess; the controllers run in the test's event loop, as
`nanokube cert-manager` (the addon) runs them. No nodes, no root: the CA and SelfSigned issuers and the ACME
issuer's failure paths (the full ACME flow through Pebble is in test_certmanager_e2e.py).
"""
from __future__ import annotations

import asyncio
import base64
import datetime as dt
import time

import pytest
from cryptography import x509

from harness import ApiServerProcess, free_port
from nanokube.certmanager import controllers as certmanager, pki
from nanokube.certmanager.defaultissuer import objects as default_issuer_objects
from nanokube.client import Client
from nanokube.controllers.informer import InformerFactory

GROUP, VERSION = "cert-manager.io", "v1"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = ApiServerProcess(tmp_path_factory.mktemp("certmanager") / "data").start()
    yield srv
    srv.stop()


@pytest.fixture
async def api(server):
    client = Client.from_kubeconfig(server.kubeconfig)
    informers = InformerFactory(client)
    controllers = certmanager.build(client, informers)
    tasks = [asyncio.create_task(i.run()) for i in informers.all()]
    await asyncio.wait_for(informers.wait_synced(), 10)
    tasks += [asyncio.create_task(c.run()) for c in controllers]
    try:
        yield client
    finally:
        for c in controllers:
            c.queue.shutdown()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.close()


def path(plural, ns=None, name=None, sub=None, group=GROUP):
    version = VERSION if group == GROUP else "v1"
    return Client.resource_path(group, version, plural, ns, name, sub)


async def eventually(what, check, timeout=20.0):
    from nanokube.api.errors import StatusError
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = await check()
        except StatusError as e:      # not there yet
            if e.code != 404:
                raise
            last = None
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


def cond(obj, type_):
    return next((c for c in (obj.get("status") or {}).get("conditions") or []
                 if c["type"] == type_), {})


async def create(api, obj):
    group, _, version = obj["apiVersion"].rpartition("/")
    plural = {"Namespace": "namespaces", "Secret": "secrets", "ClusterIssuer": "clusterissuers",
              "Issuer": "issuers", "Certificate": "certificates",
              "Ingress": "ingresses"}[obj["kind"]]
    ns = obj["metadata"].get("namespace")
    return await api.create(Client.resource_path(group, version, plural, ns), obj)


async def secret_cert(api, ns, name):
    secret = await api.get(path("secrets", ns, name, group=""))
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    return secret, data, x509.load_pem_x509_certificate(data["tls.crt"])


async def ready(api, plural, ns, name, timeout=20.0):
    async def check():
        obj = await api.get(path(plural, ns, name))
        return obj if cond(obj, "Ready").get("status") == "True" else None
    return await eventually(f"{plural} {name} Ready", check, timeout)


async def events(api, ns, name):
    listing = await api.list(path("events", ns, group=""))
    return [(e["type"], e["reason"], e["message"]) for e in listing["items"]
            if e["involvedObject"]["name"] == name]


async def test_default_ca_issues_for_ingress_tls_without_secret_name(api):
    for obj in default_issuer_objects("test"):
        await create(api, obj)
    issuer = await ready(api, "clusterissuers", None, "nanokube-ca")
    assert cond(issuer, "Ready")["reason"] == "KeyPairVerified"
    assert cond(issuer, "Ready")["message"] == "Signing CA verified"
    await create(api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web"}})
    ing = await create(api, {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "site", "namespace": "web"},
        "spec": {"tls": [{"hosts": ["example.com", "another-example.com"]}],
                 "rules": [{"host": "example.com", "http": {"paths": [{
                     "path": "/", "pathType": "Prefix", "backend": {"service": {
                         "name": "s", "port": {"number": 80}}}}]}}]}})
    cert = await ready(api, "certificates", "web", "site-tls")
    assert cert["spec"]["secretName"] == "site-tls"
    assert cert["spec"]["issuerRef"] == {"name": "nanokube-ca", "kind": "ClusterIssuer",
                                         "group": GROUP}
    owner = cert["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("Ingress", "site",
                                                            ing["metadata"]["uid"])
    secret, data, leaf = await secret_cert(api, "web", "site-tls")
    assert secret["type"] == "kubernetes.io/tls" and set(data) == {"tls.crt", "tls.key",
                                                                   "ca.crt"}
    assert sorted(pki.dns_names(leaf)) == ["another-example.com", "example.com"]
    ca = x509.load_pem_x509_certificate(data["ca.crt"])
    leaf.verify_directly_issued_by(ca)
    assert pki.public_keys_match(pki.load_key(data["tls.key"]), leaf)
    assert secret["metadata"]["annotations"]["cert-manager.io/certificate-name"] == "site-tls"
    # renewal at two thirds of the lifetime (90 days by default)
    renewal = dt.datetime.fromisoformat(cert["status"]["renewalTime"].replace("Z", "+00:00"))
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert lifetime == dt.timedelta(days=90)
    assert abs((renewal - leaf.not_valid_before_utc) - lifetime * 2 / 3) < dt.timedelta(seconds=2)
    assert ("Normal", "CreateCertificate", 'Successfully created Certificate "site-tls"') in \
        await events(api, "web", "site")

    # the hosts change: the Certificate follows and the same Secret gets a new certificate
    uid = secret["metadata"]["uid"]
    ing = await api.get(path("ingresses", "web", "site", group="networking.k8s.io"))
    ing["spec"]["tls"][0]["hosts"] = ["example.com", "www.example.com"]
    await api.update(path("ingresses", "web", "site", group="networking.k8s.io"), ing)

    async def reissued():
        s, _, c = await secret_cert(api, "web", "site-tls")
        return s["metadata"]["uid"] == uid and \
            sorted(pki.dns_names(c)) == ["example.com", "www.example.com"]
    await eventually("re-issue for the new hosts", reissued)
    cert = await api.get(path("certificates", "web", "site-tls"))
    assert cert["status"]["revision"] == 2


async def test_annotated_ingress_selfsigned_issuer_and_table_columns(api):
    await create(api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
    await create(api, {"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
                       "metadata": {"name": "self", "namespace": "shop"},
                       "spec": {"selfSigned": {}}})
    await create(api, {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "shop", "namespace": "shop",
                     "annotations": {"cert-manager.io/issuer": "self"}},
        "spec": {"tls": [{"hosts": ["shop.test"], "secretName": "shop-cert"}],
                 "rules": [{"host": "shop.test", "http": {"paths": [{
                     "path": "/", "pathType": "Prefix", "backend": {"service": {
                         "name": "s", "port": {"number": 80}}}}]}}]}})
    await ready(api, "certificates", "shop", "shop-cert")
    _, data, leaf = await secret_cert(api, "shop", "shop-cert")
    assert data["ca.crt"] == data["tls.crt"] and leaf.issuer == leaf.subject
    table = await api.request("GET", path("certificates", "shop"),
                              accept="application/json;as=Table;v=v1;g=meta.k8s.io")
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name", "Ready", "Secret", "Issuer", "Status", "Age"]
    assert table["rows"][0]["cells"][:5] == ["shop-cert", "True", "shop-cert", "self",
                                             "Certificate is up to date and has not expired"]
    table = await api.request("GET", path("issuers", "shop"),
                              accept="application/json;as=Table;v=v1;g=meta.k8s.io")
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Ready", "Status", "Age"]


async def test_short_certificate_renews_and_broken_issuer_keeps_old_secret(api):
    ca_crt, ca_key = pki.new_ca("test CA")
    await create(api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "renew"}})
    await create(api, {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                       "metadata": {"name": "ca", "namespace": "renew"},
                       "data": {"tls.crt": base64.b64encode(ca_crt).decode(),
                                "tls.key": base64.b64encode(ca_key).decode()}})
    await create(api, {"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
                       "metadata": {"name": "ca", "namespace": "renew"},
                       "spec": {"ca": {"secretName": "ca"}}})
    # renewBefore just under the duration: renewed about every three seconds
    await create(api, {"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                       "metadata": {"name": "short", "namespace": "renew"},
                       "spec": {"secretName": "short", "dnsNames": ["short.test"],
                                "duration": "1h", "renewBefore": "59m57s",
                                "issuerRef": {"name": "ca"}}})
    await ready(api, "certificates", "renew", "short")
    _, _, first = await secret_cert(api, "renew", "short")

    async def renewed():
        _, _, c = await secret_cert(api, "renew", "short")
        return c.serial_number != first.serial_number
    await eventually("a renewal", renewed, timeout=30)
    assert ("Normal", "Issuing", "The certificate has been successfully issued") in \
        await events(api, "renew", "short")

    # the CA Secret goes: the issuer says why, renewals fail, the old certificate stays
    await api.delete(path("secrets", "renew", "ca", group=""))

    async def issuer_broken():
        obj = await api.get(path("issuers", "renew", "ca"))
        return cond(obj, "Ready").get("status") == "False" and cond(obj, "Ready")
    broken = await eventually("issuer not ready", issuer_broken)
    assert broken["reason"] == "ErrGetKeyPair"
    assert broken["message"] == 'Error getting keypair for CA issuer: secrets "ca" not found'
    assert ("Warning", "ErrGetKeyPair", broken["message"]) in await events(api, "renew", "ca")

    async def failing():
        obj = await api.get(path("certificates", "renew", "short"))
        return cond(obj, "Issuing").get("reason") == "Failed" and obj
    cert = await eventually("issuance failure", failing, timeout=30)
    assert 'Issuer.cert-manager.io "ca" is not Ready' in cond(cert, "Issuing")["message"]
    assert cond(cert, "Ready")["status"] == "True"     # the old certificate is still valid
    assert any(t == "Warning" and r == "Failed" for t, r, _ in
               await events(api, "renew", "short"))
    _, _, kept = await secret_cert(api, "renew", "short")
    assert kept.not_valid_after_utc > dt.datetime.now(dt.timezone.utc)


async def test_acme_issuer_with_unreachable_server_is_not_ready(api):
    port = free_port()     # nothing listens there
    await create(api, {"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
                       "metadata": {"name": "acme-down"},
                       "spec": {"acme": {"server": f"https://127.0.0.1:{port}/dir",
                                         "skipTLSVerify": True,
                                         "privateKeySecretRef": {"name": "acme-down-key"},
                                         "solvers": [{"http01": {"ingress": {}}}]}}})

    async def not_ready():
        obj = await api.get(path("clusterissuers", None, "acme-down"))
        return cond(obj, "Ready").get("status") == "False" and cond(obj, "Ready")
    c = await eventually("acme issuer not ready", not_ready)
    assert c["reason"] == "ErrRegisterACMEAccount"
    assert c["message"].startswith("Failed to register ACME account: ")
    # the account key was made and kept
    key = await api.get(path("secrets", "cert-manager", "acme-down-key", group=""))
    assert "tls.key" in key["data"]


async def test_validation_in_cert_managers_words(api):
    from nanokube.api.errors import StatusError
    await create(api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bad"}})
    with pytest.raises(StatusError) as e:
        await create(api, {"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                           "metadata": {"name": "c", "namespace": "bad"},
                           "spec": {"secretName": "c", "issuerRef": {"name": "x"},
                                    "dnsNames": ["a.test"], "duration": "30m"}})
    assert "spec.duration: Invalid value: \"30m\": certificate duration must be greater " \
           "than 1h0m0s" in str(e.value)
    with pytest.raises(StatusError) as e:
        await create(api, {"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
                           "metadata": {"name": "i", "namespace": "bad"},
                           "spec": {"selfSigned": {}, "ca": {"secretName": "x"}}})
    assert "may not specify more than one issuer type" in str(e.value)
