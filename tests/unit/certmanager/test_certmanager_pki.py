"""pki helpers: Go durations, cert-manager's renewal rule, issuing and key matching."""
from __future__ import annotations

import datetime as dt

import pytest

from nanokube.apitime import parse_duration
from nanokube.certmanager import pki


def test_go_durations():
    assert parse_duration("2160h") == 90 * 86400
    assert parse_duration("1h30m") == 5400
    assert parse_duration("59m50s") == 3590
    assert parse_duration("1.5h") == 5400
    for bad in ("", "1d", "h", "10", "1h x"):
        with pytest.raises(ValueError, match="time: invalid duration"):
            parse_duration(bad)
    assert pki.format_duration(3600) == "1h0m0s"


def test_renewal_two_thirds_unless_renew_before():
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    end = start + dt.timedelta(days=90)
    assert pki.renewal_time(start, end) == start + dt.timedelta(days=60)
    assert pki.renewal_time(start, end, 86400) == end - dt.timedelta(days=1)
    # a renewBefore not below the lifetime falls back to a third
    assert pki.renewal_time(start, end, 100 * 86400) == start + dt.timedelta(days=60)
    assert pki.renewal_time(start, end, None, 50) == start + dt.timedelta(days=45)


def test_ca_signs_a_leaf_with_the_requested_names():
    ca_pem, ca_key_pem = pki.new_ca("test CA")
    ca, ca_key = pki.load_certs(ca_pem)[0], pki.load_key(ca_key_pem)
    assert pki.is_ca(ca) and pki.public_keys_match(ca_key, ca)
    key = pki.generate_private_key("RSA")
    leaf = pki.sign(pki.Request(dns_names=("a.test", "b.test"), ip_addresses=("10.0.0.1",),
                                duration=3600), key.public_key(), ca_key, ca)
    leaf.verify_directly_issued_by(ca)
    assert pki.dns_names(leaf) == ["a.test", "b.test"]
    assert pki.ip_addresses(leaf) == ["10.0.0.1"]
    assert not pki.is_ca(leaf)
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == dt.timedelta(hours=1)
    assert pki.public_keys_match(key, leaf) and not pki.public_keys_match(ca_key, leaf)
    assert pki.key_to_pem(key).startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    assert pki.key_to_pem(key, "PKCS8").startswith(b"-----BEGIN PRIVATE KEY-----")


def test_csr_carries_the_sans():
    from cryptography import x509
    key = pki.generate_private_key("ECDSA", 256)
    csr = x509.load_pem_x509_csr(pki.make_csr(key, pki.Request(dns_names=("x.test",))))
    sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["x.test"]
