import base64
import datetime as dt
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from nanokube.cli.common import default_kubeconfig
from nanokube.cli.kubeconfig import cluster_kubeconfig
from nanokube.cli.main import main
from nanokube.client import load_kubeconfig, ssl_context


def self_signed():
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def write_config(path, cert, key, extra_user=""):
    path.write_text(f"""apiVersion: v1
kind: Config
current-context: nanokube-default
clusters:
- name: other
  cluster: {{server: "https://10.0.0.1:6443"}}
- name: nanokube-default
  cluster:
    server: https://127.0.0.1:6443/
    certificate-authority-data: {b64(cert)}
contexts:
- name: nanokube-default
  context: {{cluster: nanokube-default, user: admin, namespace: team}}
- name: other
  context: {{cluster: other, user: tok}}
users:
- name: admin
  user:
    client-certificate-data: {b64(cert)}
    client-key-data: {b64(key)}
- name: tok
  user:
    token: abc
""")


def test_current_context_with_embedded_data(tmp_path):
    cert, key = self_signed()
    write_config(tmp_path / "kubeconfig", cert, key)
    cfg = load_kubeconfig(str(tmp_path / "kubeconfig"))
    assert cfg.server == "https://127.0.0.1:6443"
    assert (cfg.ca_data, cfg.cert_data, cfg.key_data) == (cert, cert, key)
    assert cfg.namespace == "team" and cfg.token is None
    ctx = ssl_context(cfg)
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert len(ctx.get_ca_certs()) == 1


def test_named_context_with_token(tmp_path):
    cert, key = self_signed()
    write_config(tmp_path / "kubeconfig", cert, key)
    cfg = load_kubeconfig(str(tmp_path / "kubeconfig"), "other")
    assert (cfg.server, cfg.token, cfg.namespace, cfg.ca_data) == \
        ("https://10.0.0.1:6443", "abc", "", None)


def test_files_are_relative_to_the_kubeconfig(tmp_path):
    cert, key = self_signed()
    (tmp_path / "pki").mkdir()
    (tmp_path / "pki" / "ca.crt").write_bytes(cert)
    (tmp_path / "pki" / "admin.key").write_bytes(key)
    (tmp_path / "pki" / "admin.crt").write_bytes(cert)
    (tmp_path / "kubeconfig").write_text("""current-context: c
clusters: [{name: k, cluster: {server: "https://h:1", certificate-authority: pki/ca.crt}}]
contexts: [{name: c, context: {cluster: k, user: u}}]
users: [{name: u, user: {client-certificate: pki/admin.crt, client-key: pki/admin.key}}]
""")
    cfg = load_kubeconfig(str(tmp_path / "kubeconfig"))
    assert (cfg.ca_data, cfg.cert_data, cfg.key_data) == (cert, cert, key)
    ssl_context(cfg)     # loads the chain without error


def test_unknown_context(tmp_path):
    cert, key = self_signed()
    write_config(tmp_path / "kubeconfig", cert, key)
    with pytest.raises(ValueError, match='context "nope" not found'):
        load_kubeconfig(str(tmp_path / "kubeconfig"), "nope")


def test_default_kubeconfig_path():
    assert default_kubeconfig("default", {}) == "/var/lib/nanokube/default/kubeconfig"
    assert default_kubeconfig("x", {"NANOKUBE_HOME": "/h"}) == "/h/x/kubeconfig"
    assert default_kubeconfig("x", {"KUBECONFIG": "/a:/b", "NANOKUBE_HOME": "/h"}) == "/a"
    assert cluster_kubeconfig("x", {"KUBECONFIG": "/a", "NANOKUBE_HOME": "/h"}) == \
        "/h/x/kubeconfig"


def test_kubeconfig_verb_prints_the_path(monkeypatch, capsys):
    monkeypatch.setenv("NANOKUBE_HOME", "/srv/nk")
    assert main(["kubeconfig", "--name", "lab"]) == 0
    assert capsys.readouterr().out == "/srv/nk/lab/kubeconfig\n"
