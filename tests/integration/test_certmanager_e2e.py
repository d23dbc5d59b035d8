"""Issue 7 end to end: certificates issued, stored, served and renewed on a real cluster.

`nanokube up` (which makes the default CA ClusterIssuer), the seed's apps and Ingress, Debian's
Pebble on loopback resolving the test's hosts through a stub DNS server to the ingress
EXTERNAL-IP. Every check is a TLS handshake with SNI to the EXTERNAL-IP from this host (the
cluster's LAN), never a name lookup.
"""
from __future__ import annotations

import json
import os
import shutil
import ssl
import time

import pytest

from acme_server import Pebble, StubDNS, served_certificate
from harness import ROOT, ClusterRun, alive, leftovers, wait_for
from test_ingress_e2e import external_ip
from nanokube.certmanager import pki

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("nginx")
    or not shutil.which("kubectl") or not Pebble.available(),
    reason="needs root (network namespaces), nft, nginx, kubectl and Debian's pebble")

NS = "ingress-nginx"
ACME_HOST = "acme.nanokube.test"


def apply(c: ClusterRun, obj: dict) -> None:
    c.kubectl("apply", "-f", "-", input=json.dumps(obj))


def ingress(name: str, host: str, annotations: dict, secret: str | None = None) -> dict:
    tls = {"hosts": [host], **({"secretName": secret} if secret else {})}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "annotations": annotations},
            "spec": {"ingressClassName": "nginx", "tls": [tls],
                     "rules": [{"host": host, "http": {"paths": [{
                         "path": "/", "pathType": "Prefix", "backend": {"service": {
                             "name": "my-service", "port": {"number": 80}}}}]}}]}}


def condition(obj: dict, type_: str) -> dict:
    return next((x for x in (obj.get("status") or {}).get("conditions") or []
                 if x["type"] == type_), {})


def served(c: ClusterRun, host: str, cadata: str | None = None):
    try:
        return served_certificate(c.ip, host, cadata)
    except (OSError, ssl.SSLError):
        return None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("certs")
    c = ClusterRun(tmp, prefix="cm")
    pids: list[int] = []
    try:
        c.nk("up", "--nodes", "1", timeout=90)
        pids = list(c.state()["pids"].values())
        c.kubectl("apply", "-f", str(ROOT / "examples/apps/my-app.yaml"),
                  "-f", str(ROOT / "examples/seed/clusterip-service.yaml"),
                  "-f", str(ROOT / "examples/seed/second-service.yaml"))
        c.kubectl("rollout", "status", "-n", NS, "deployment/ingress-nginx-controller",
                  "--timeout=90s")
        c.ip = wait_for("the ingress EXTERNAL-IP", lambda: external_ip(c), timeout=30)
        yield c
    finally:
        c.nk("down", check=False)
    assert leftovers(c.name) == []
    assert [p for p in pids if alive(p)] == []


@pytest.fixture(scope="module")
def pebble(cluster, tmp_path_factory):
    dns = StubDNS({ACME_HOST: cluster.ip, "renamed." + ACME_HOST: cluster.ip}).start()
    # cert-manager runs in a pod: Pebble's ACME interface on the host's address on the
    # cluster's own LAN (the pods reach the API server there too), never beyond it
    host_ip = cluster.state()["network"]["host_ip"]
    server = Pebble(tmp_path_factory.mktemp("pebble"), dns.port, listen_ip=host_ip).start()
    try:
        yield server
    finally:
        server.stop()
        dns.stop()


def test_seed_tls_hosts_verify_against_nanokube_ca(cluster):
    c = cluster
    ca = c.nk("ca").stdout
    assert ca.startswith("-----BEGIN CERTIFICATE-----")
    assert pki.is_ca(pki.load_certs(ca.encode())[0])
    issuer = c.get("clusterissuer", "nanokube-ca")
    assert condition(issuer, "Ready")["status"] == "True"
    c.kubectl("apply", "-f", str(ROOT / "examples/seed/ingress.yaml"))
    for host in ("example.com", "another-example.com"):
        leaf = wait_for(f"{host} served with a certificate of nanokube's CA",
                        lambda: served(c, host, ca), timeout=30, interval=0.2)
        assert host in pki.dns_names(leaf)
    cert = c.get("certificate", "my-ingress-tls")
    assert condition(cert, "Ready")["status"] == "True"
    out = c.kubectl("get", "certificate", "my-ingress-tls").stdout.split("\n")
    assert out[0].split() == ["NAME", "READY", "SECRET", "AGE"]
    assert out[1].split()[:3] == ["my-ingress-tls", "True", "my-ingress-tls"]
    out = c.kubectl("get", "clusterissuer").stdout.split("\n")
    assert out[0].split() == ["NAME", "READY", "AGE"]


def test_acme_issuer_through_pebble(cluster, pebble):
    c = cluster
    apply(c, {"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
              "metadata": {"name": "pebble"},
              "spec": {"acme": {"server": pebble.directory, "email": "admin@nanokube.test",
                                "caBundle": pebble.ca_bundle,
                                "privateKeySecretRef": {"name": "pebble-account"},
                                "solvers": [{"http01": {"ingress": {
                                    "ingressClassName": "nginx"}}}]}}})
    wait_for("the ACME issuer Ready", lambda: condition(
        c.get("clusterissuer", "pebble"), "Ready").get("status") == "True", timeout=30)
    apply(c, ingress("acme", ACME_HOST, {"cert-manager.io/cluster-issuer": "pebble"},
                     "acme-tls"))
    wait_for("the ACME certificate Ready", lambda: condition(
        c.get("certificate", "acme-tls"), "Ready").get("status") == "True", timeout=120,
        interval=0.5)
    root = pebble.root().decode()
    leaf = wait_for("the ACME certificate served", lambda: served(c, ACME_HOST, root),
                    timeout=30, interval=0.2)
    assert pki.dns_names(leaf) == [ACME_HOST]
    # the solver's Pod, Service and Ingress are gone
    wait_for("solver cleanup", lambda: not [
        i for i in c.get("ingress")["items"]
        if i["metadata"]["name"].startswith("cm-acme-http-solver-")], timeout=20)
    assert not [p for p in c.get("pods")["items"]
                if p["metadata"]["name"].startswith("cm-acme-http-solver-")]
    secret = c.get("secret", "acme-tls")
    assert secret["type"] == "kubernetes.io/tls"

    # Pebble goes away, the hosts change: the re-issue fails, says why, the old cert serves on
    pebble.stop()
    body = ingress("acme", ACME_HOST, {"cert-manager.io/cluster-issuer": "pebble"}, "acme-tls")
    body["spec"]["tls"][0]["hosts"] = [ACME_HOST, "renamed." + ACME_HOST]
    apply(c, body)

    def failed():
        cert = c.get("certificate", "acme-tls")
        return condition(cert, "Issuing").get("reason") == "Failed" and cert
    cert = wait_for("the failed re-issue", failed, timeout=60, interval=0.5)
    assert "ACME order" in condition(cert, "Issuing")["message"] or \
        "ACME" in condition(cert, "Issuing")["message"]
    events = c.get("events", "--field-selector", "involvedObject.name=acme-tls")["items"]
    assert any(e["type"] == "Warning" and e["reason"] == "Failed" for e in events)
    still = served(c, ACME_HOST, root)
    assert still is not None and still.serial_number == leaf.serial_number


def test_short_certificate_renews_and_nginx_serves_the_new_one(cluster):
    c = cluster
    ca = c.nk("ca").stdout
    host = "short.nanokube.test"
    apply(c, ingress("short", host, {"cert-manager.io/cluster-issuer": "nanokube-ca",
                                     "cert-manager.io/duration": "1h",
                                     "cert-manager.io/renew-before": "59m50s"}, "short-tls"))
    first = wait_for("the short certificate served", lambda: served(c, host, ca), timeout=30,
                     interval=0.2)
    renewed = wait_for("a renewed certificate served", lambda: (
        (x := served(c, host, ca)) is not None and x.serial_number != first.serial_number
        and x), timeout=40, interval=0.5)
    assert renewed.not_valid_before_utc > first.not_valid_before_utc
    cert = c.get("certificate", "short-tls")
    assert cert["status"]["revision"] >= 2


def test_missing_ca_secret_is_reported_and_the_old_certificate_serves_on(cluster):
    c = cluster
    ca_crt, ca_key = pki.new_ca("doomed CA")
    import base64
    apply(c, {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
              "metadata": {"name": "doomed-ca"},
              "data": {"tls.crt": base64.b64encode(ca_crt).decode(),
                       "tls.key": base64.b64encode(ca_key).decode()}})
    apply(c, {"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
              "metadata": {"name": "doomed"}, "spec": {"ca": {"secretName": "doomed-ca"}}})
    host = "doomed.nanokube.test"
    apply(c, ingress("doomed", host, {"cert-manager.io/issuer": "doomed",
                                      "cert-manager.io/duration": "1h",
                                      "cert-manager.io/renew-before": "59m50s"}, "doomed-tls"))
    first = wait_for("served", lambda: served(c, host, ca_crt.decode()), timeout=30,
                     interval=0.2)
    c.kubectl("delete", "secret", "doomed-ca")
    wait_for("the issuer not Ready", lambda: condition(
        c.get("issuer", "doomed"), "Ready").get("reason") == "ErrGetKeyPair", timeout=20)
    wait_for("the renewal failing", lambda: condition(
        c.get("certificate", "doomed-tls"), "Issuing").get("reason") == "Failed",
        timeout=30, interval=0.5)
    time.sleep(1)
    still = served(c, host, ca_crt.decode())       # verified: still the doomed CA's, not NGINX's
    assert still is not None and still.not_valid_before_utc >= first.not_valid_before_utc
