import base64
import os
import ssl
import stat
import time

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from nanokube.api import pki


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def ca(tmp_path):
    return pki.ensure_ca(str(tmp_path))


def test_ensure_ca_creates_a_p256_ca_valid_ten_years(tmp_path):
    cert_pem, key_pem = pki.ensure_ca(str(tmp_path))
    cert = x509.load_pem_x509_certificate(cert_pem)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "nanokube-ca"
    assert isinstance(cert.public_key().curve, ec.SECP256R1)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    days = (cert.not_valid_after_utc - cert.not_valid_before_utc).days
    assert 3649 <= days <= 3651
    assert mode(tmp_path / "ca.key") == 0o600
    assert (tmp_path / "ca.crt").read_bytes() == cert_pem


def test_ensure_ca_reuses_and_is_fast(tmp_path):
    first = pki.ensure_ca(str(tmp_path))
    start = time.perf_counter()
    second = pki.ensure_ca(str(tmp_path))
    assert time.perf_counter() - start < 0.02
    assert first == second


def test_no_temporary_files_left_behind(tmp_path, ca):
    pki.ensure_token_file(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["ca.crt", "ca.key", "tokens.csv"]


def test_serving_cert_sans_and_usage(ca):
    cert_pem, key_pem = pki.issue_serving_cert(ca, ["node1.example"], ["10.96.0.1", "192.168.50.1"])
    cert = x509.load_pem_x509_certificate(cert_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {
        "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local", "node1.example"}
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} == {
        "127.0.0.1", "10.96.0.1", "192.168.50.1"}
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca[0]))
    assert b"PRIVATE KEY" in key_pem


def test_client_cert_subject_and_usage(ca):
    cert_pem, _ = pki.issue_client_cert(ca, "admin", ["system:masters", "devs"])
    cert = x509.load_pem_x509_certificate(cert_pem)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "admin"
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == [
        "system:masters", "devs"]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_ensure_serving_cert_reuses_unless_a_san_is_missing(tmp_path, ca):
    d = str(tmp_path)
    cert_path, key_path = pki.ensure_serving_cert(d, ca, [], ["10.96.0.1"])
    first = open(cert_path, "rb").read()
    assert mode(key_path) == 0o600
    start = time.perf_counter()
    pki.ensure_serving_cert(d, ca, [], ["10.96.0.1"])
    assert time.perf_counter() - start < 0.02
    assert open(cert_path, "rb").read() == first
    pki.ensure_serving_cert(d, ca, [], ["10.96.0.1", "192.168.7.1"])
    assert open(cert_path, "rb").read() != first
    assert "192.168.7.1" in pki.cert_sans(open(cert_path, "rb").read())[1]


def test_ensure_serving_cert_reissues_for_a_new_ca(tmp_path, ca):
    cert_path, _ = pki.ensure_serving_cert(str(tmp_path / "a"), ca, [], [])
    other_ca = pki.ensure_ca(str(tmp_path / "other"))
    first = open(cert_path, "rb").read()
    pki.ensure_serving_cert(str(tmp_path / "a"), other_ca, [], [])
    second = x509.load_pem_x509_certificate(open(cert_path, "rb").read())
    assert open(cert_path, "rb").read() != first
    second.verify_directly_issued_by(x509.load_pem_x509_certificate(other_ca[0]))


def test_write_kubeconfig(tmp_path, ca):
    cert, key = pki.issue_client_cert(ca, "admin", ["system:masters"])
    path = str(tmp_path / "sub" / "kubeconfig")
    pki.write_kubeconfig(path, "https://127.0.0.1:6443", ca[0], cert, key, "nanokube-x",
                         "nanokube-x")
    assert mode(path) == 0o600
    config = yaml.safe_load(open(path))
    assert config["apiVersion"] == "v1" and config["kind"] == "Config"
    assert config["current-context"] == "nanokube-x"
    cluster = config["clusters"][0]
    assert cluster["name"] == "nanokube-x"
    assert cluster["cluster"]["server"] == "https://127.0.0.1:6443"
    assert base64.b64decode(cluster["cluster"]["certificate-authority-data"]) == ca[0]
    assert config["contexts"][0] == {"name": "nanokube-x",
                                     "context": {"cluster": "nanokube-x", "user": "admin"}}
    user = config["users"][0]
    assert user["name"] == "admin"
    assert base64.b64decode(user["user"]["client-certificate-data"]) == cert
    assert base64.b64decode(user["user"]["client-key-data"]) == key


def test_token_file_created_once_and_loaded(tmp_path):
    d = str(tmp_path)
    token = pki.ensure_token_file(d)
    assert len(token) >= 32
    assert mode(tmp_path / "tokens.csv") == 0o600
    start = time.perf_counter()
    assert pki.ensure_token_file(d) == token
    assert time.perf_counter() - start < 0.02
    assert pki.load_tokens(d) == {token: ("admin", ["system:masters"])}


def test_load_tokens_reads_the_kube_apiserver_csv_format(tmp_path):
    (tmp_path / "tokens.csv").write_text('t1,alice,uid1,"g1,g2"\nt2,bob,uid2\n\n')
    assert pki.load_tokens(str(tmp_path)) == {"t1": ("alice", ["g1", "g2"]), "t2": ("bob", [])}
    assert pki.load_tokens(str(tmp_path / "missing")) == {}


def test_authenticate_with_client_cert():
    peercert = {"subject": ((("organizationName", "system:masters"),),
                            (("commonName", "admin"),))}
    assert pki.authenticate(peercert, None, {}) == (
        "admin", ["system:masters", "system:authenticated"])


def test_authenticate_with_bearer_token():
    tokens = {"abc": ("alice", ["devs"])}
    assert pki.authenticate(None, "Bearer abc", tokens) == (
        "alice", ["devs", "system:authenticated"])
    assert pki.authenticate({}, "bearer abc", tokens)[0] == "alice"
    assert pki.authenticate(None, "Bearer nope", tokens) is None
    assert pki.authenticate(None, "Basic abc", tokens) is None
    assert pki.authenticate(None, "Bearer ", tokens) is None
    assert pki.authenticate(None, None, tokens) is None
    assert tokens == {"abc": ("alice", ["devs"])}  # not mutated


def _handshake(server_ctx, client_ctx):
    """Run a TLS handshake in memory (no sockets); return the server-side SSLObject."""
    s_in, s_out, c_in, c_out = (ssl.MemoryBIO() for _ in range(4))
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname="kubernetes.default.svc")
    done = {"s": False, "c": False}
    for _ in range(20):
        for name, obj, out, peer_in in (("c", client, c_out, s_in), ("s", server, s_out, c_in)):
            if not done[name]:
                try:
                    obj.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
            data = out.read()
            if data:
                peer_in.write(data)
        if all(done.values()):
            break
    # TLS 1.3 servers verify the client certificate after the client thinks it is done.
    client.write(b"ping")
    s_in.write(c_out.read())
    assert server.read(4) == b"ping"
    return server


@pytest.fixture
def tls(tmp_path, ca):
    d = str(tmp_path)
    cert_path, key_path = pki.ensure_serving_cert(d, ca, [], ["10.96.0.1"])
    return pki.server_ssl_context(cert_path, key_path, str(tmp_path / "ca.crt")), d


def _client_ctx(ca_path):
    ctx = ssl.create_default_context(cafile=ca_path)
    return ctx


def test_ssl_context_accepts_client_cert_and_authenticates(tls, ca, tmp_path):
    server_ctx, d = tls
    assert server_ctx.verify_mode == ssl.CERT_OPTIONAL
    assert server_ctx.minimum_version >= ssl.TLSVersion.TLSv1_2
    cert, key = pki.issue_client_cert(ca, "admin", ["system:masters"])
    (tmp_path / "c.crt").write_bytes(cert)
    (tmp_path / "c.key").write_bytes(key)
    client_ctx = _client_ctx(os.path.join(d, "ca.crt"))
    client_ctx.load_cert_chain(str(tmp_path / "c.crt"), str(tmp_path / "c.key"))
    server = _handshake(server_ctx, client_ctx)
    assert pki.authenticate(server.getpeercert(), None, {}) == (
        "admin", ["system:masters", "system:authenticated"])


def test_ssl_context_lets_clients_without_cert_in(tls):
    server_ctx, d = tls
    server = _handshake(server_ctx, _client_ctx(os.path.join(d, "ca.crt")))
    assert server.getpeercert() is None
    assert pki.authenticate(server.getpeercert(), "Bearer t", {"t": ("bob", [])}) == (
        "bob", ["system:authenticated"])


def test_ssl_context_rejects_client_cert_from_another_ca(tls, tmp_path):
    server_ctx, d = tls
    other = pki.ensure_ca(str(tmp_path / "other"))
    cert, key = pki.issue_client_cert(other, "mallory", ["system:masters"])
    (tmp_path / "m.crt").write_bytes(cert)
    (tmp_path / "m.key").write_bytes(key)
    client_ctx = _client_ctx(os.path.join(d, "ca.crt"))
    client_ctx.load_cert_chain(str(tmp_path / "m.crt"), str(tmp_path / "m.key"))
    with pytest.raises(ssl.SSLError):
        _handshake(server_ctx, client_ctx)
