"""ingress-shim's mapping of Ingress TLS entries to Certificates, and the ACME solver choice."""
from __future__ import annotations

from nanokube.certmanager.ingressshim import default_issuer, desired_certificates
from nanokube.certmanager.issuers.acme import select_solver
from nanokube.certmanager.names import default_secret_name

DEFAULT = {"name": "nanokube-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}


def ingress(tls, annotations=None):
    return {"metadata": {"name": "web", "namespace": "ns", "annotations": annotations or {}},
            "spec": {"tls": tls}}


def test_annotated_ingress_gets_one_certificate_per_tls_entry():
    ing = ingress([{"hosts": ["a.test", "b.test"], "secretName": "ab"},
                   {"hosts": ["c.test"]}],
                  {"cert-manager.io/cluster-issuer": "le", "cert-manager.io/duration": "48h"})
    got, problems = desired_certificates(ing, DEFAULT)
    assert problems == []
    assert got == {
        "ab": {"secretName": "ab", "dnsNames": ["a.test", "b.test"], "duration": "48h",
               "issuerRef": {"name": "le", "kind": "ClusterIssuer", "group": "cert-manager.io"}},
        "web-tls-1": {"secretName": "web-tls-1", "dnsNames": ["c.test"], "duration": "48h",
                      "issuerRef": {"name": "le", "kind": "ClusterIssuer",
                                    "group": "cert-manager.io"}}}


def test_namespaced_issuer_annotation():
    got, _ = desired_certificates(ingress([{"hosts": ["a.test"], "secretName": "s"}],
                                          {"cert-manager.io/issuer": "mine"}), None)
    assert got["s"]["issuerRef"] == {"name": "mine", "kind": "Issuer",
                                     "group": "cert-manager.io"}


def test_unannotated_ingress_uses_the_default_issuer_only_without_secret_name():
    ing = ingress([{"hosts": ["example.com", "another-example.com"]},
                   {"hosts": ["own.test"], "secretName": "mine"}])
    got, _ = desired_certificates(ing, DEFAULT)
    assert list(got) == ["web-tls"]
    assert got["web-tls"]["dnsNames"] == ["another-example.com", "example.com"]
    assert got["web-tls"]["issuerRef"] == DEFAULT
    assert desired_certificates(ing, None) == ({}, [])


def test_bad_entries_are_reported():
    ing = ingress([{"hosts": [], "secretName": "x"}, {"hosts": ["a.test"], "secretName": "s"},
                   {"hosts": ["b.test"], "secretName": "s"}],
                  {"cert-manager.io/issuer": "i"})
    got, problems = desired_certificates(ing, None)
    assert list(got) == ["s"]
    assert problems == ["TLS entry 0 for hosts [] must specify at least one host",
                        "Duplicate TLS entry for secretName 's'"]


def test_default_issuer_is_the_annotated_cluster_issuer():
    def ci(name, default):
        return {"metadata": {"name": name, "annotations":
                             {"nanokube.io/default-issuer": "true"} if default else {}}}
    assert default_issuer([ci("a", False), ci("z", True), ci("m", True)])["name"] == "m"
    assert default_issuer([ci("a", False)]) is None
    assert default_secret_name("web", 0) == "web-tls"
    assert default_secret_name("web", 2) == "web-tls-2"


def test_solver_selection_most_specific_wins():
    plain = {"http01": {"ingress": {"ingressClassName": "nginx"}}}
    zone = {"http01": {"ingress": {}}, "selector": {"dnsZones": ["example.test"]}}
    named = {"http01": {"ingress": {}}, "selector": {"dnsNames": ["a.example.test"]}}
    dns = {"dns01": {}}
    assert select_solver([plain, zone, named], "a.example.test") is named
    assert select_solver([plain, zone, named], "b.example.test") is zone
    assert select_solver([plain, zone], "other.test") is plain
    assert select_solver([dns, zone], "other.test") is None
