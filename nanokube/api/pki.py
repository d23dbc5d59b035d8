"""The cluster's PKI: a CA, serving and client certificates, the admin kubeconfig, static tokens,
the server's TLS context and request authentication (x509 client certs and bearer tokens).

Everything is created once under the cluster folder and reused afterwards; reuse only reads files.
Keys are ECDSA P-256, as kubeadm/k3s use by default.
"""
from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import ipaddress
import os
import secrets
import ssl
import tempfile

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
TOKEN_FILE = "tokens.csv"
CA_COMMON_NAME = "nanokube-ca"
CA_VALIDITY = dt.timedelta(days=3650)
LEAF_VALIDITY = dt.timedelta(days=3650)
# Backdate certificates a little so that a clock slightly behind does not reject them.
_BACKDATE = dt.timedelta(minutes=5)

ADMIN_USER = "admin"
ADMIN_GROUPS = ["system:masters"]
# Added to every authenticated user, as the kube-apiserver does.
AUTHENTICATED_GROUP = "system:authenticated"

# Names every API server certificate carries so that in-cluster clients reach it by Service name.
KUBERNETES_SERVICE_NAMES = ["localhost", "kubernetes", "kubernetes.default",
                            "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"]


# --- files ---------------------------------------------------------------------------------------

def write_file_atomic(path: str, data: bytes, mode: int = 0o600) -> None:
    """Write a temporary file in the same folder and rename it: readers never see half a file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


# --- certificates --------------------------------------------------------------------------------

def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def _name(cn: str, orgs: list[str] | tuple = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def ensure_ca(directory: str) -> tuple[bytes, bytes]:
    """Return (cert_pem, key_pem) of the cluster CA, creating it on first use."""
    cert_path = os.path.join(directory, CA_CERT)
    key_path = os.path.join(directory, CA_KEY)
    if os.path.exists(cert_path) and os.path.exists(key_path):
        return _read(cert_path), _read(key_path)
    key = _new_key()
    name = _name(CA_COMMON_NAME)
    now = _now()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=True, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = _key_pem(key)
    # Key first: a cert without its key would be reused as if the pair were complete.
    write_file_atomic(key_path, key_pem, 0o600)
    write_file_atomic(cert_path, cert_pem, 0o644)
    return cert_pem, key_pem


def _issue(ca: tuple[bytes, bytes], subject: x509.Name, usage: x509.ObjectIdentifier,
           sans: list[x509.GeneralName] | None = None) -> tuple[bytes, bytes]:
    ca_cert = x509.load_pem_x509_certificate(ca[0])
    ca_key = serialization.load_pem_private_key(ca[1], password=None)
    key = _new_key()
    now = _now()
    builder = (x509.CertificateBuilder()
               .subject_name(subject).issuer_name(ca_cert.subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - _BACKDATE)
               .not_valid_after(min(now + LEAF_VALIDITY, ca_cert.not_valid_after_utc))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                            key_encipherment=True, data_encipherment=False,
                                            key_agreement=False, key_cert_sign=False,
                                            crl_sign=False, encipher_only=False,
                                            decipher_only=False), critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   ca_cert.public_key()), critical=False))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def serving_sans(hosts: list[str], ips: list[str]) -> tuple[list[str], list[str]]:
    """The (DNS names, IPs) an API server certificate carries, in a stable order, deduplicated."""
    names: list[str] = []
    for h in KUBERNETES_SERVICE_NAMES + list(hosts):
        if h not in names:
            names.append(h)
    addrs: list[str] = []
    for ip in ["127.0.0.1"] + list(ips):
        text = str(ipaddress.ip_address(ip))
        if text not in addrs:
            addrs.append(text)
    return names, addrs


def issue_serving_cert(ca: tuple[bytes, bytes], hosts: list[str],
                       ips: list[str]) -> tuple[bytes, bytes]:
    """A serverAuth certificate for the API server; the caller passes the first service IP."""
    names, addrs = serving_sans(hosts, ips)
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in addrs]
    return _issue(ca, _name("kube-apiserver"), ExtendedKeyUsageOID.SERVER_AUTH, sans)


def issue_client_cert(ca: tuple[bytes, bytes], cn: str, orgs: list[str]) -> tuple[bytes, bytes]:
    """A clientAuth certificate: CN is the user name and each O a group, as Kubernetes reads it."""
    return _issue(ca, _name(cn, orgs), ExtendedKeyUsageOID.CLIENT_AUTH)


def cert_sans(cert_pem: bytes) -> tuple[set[str], set[str]]:
    """(DNS names, IPs) of a certificate; empty sets when it has no SAN extension."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set(), set()
    return (set(ext.get_values_for_type(x509.DNSName)),
            {str(a) for a in ext.get_values_for_type(x509.IPAddress)})


def ensure_serving_cert(directory: str, ca: tuple[bytes, bytes], hosts: list[str], ips: list[str],
                        name: str = "apiserver") -> tuple[str, str]:
    """Return (cert_path, key_path) of <name>.crt/.key, reissued only when a SAN is missing or the
    certificate is not from this CA or expires within 30 days."""
    cert_path = os.path.join(directory, name + ".crt")
    key_path = os.path.join(directory, name + ".key")
    if os.path.exists(cert_path) and os.path.exists(key_path):
        cert_pem = _read(cert_path)
        have_names, have_ips = cert_sans(cert_pem)
        want_names, want_ips = serving_sans(hosts, ips)
        if (set(want_names) <= have_names and set(want_ips) <= have_ips
                and _still_valid(cert_pem, ca[0])):
            return cert_path, key_path
    cert_pem, key_pem = issue_serving_cert(ca, hosts, ips)
    write_file_atomic(key_path, key_pem, 0o600)
    write_file_atomic(cert_path, cert_pem, 0o644)
    return cert_path, key_path


def _still_valid(cert_pem: bytes, ca_pem: bytes) -> bool:
    cert = x509.load_pem_x509_certificate(cert_pem)
    ca_cert = x509.load_pem_x509_certificate(ca_pem)
    if cert.issuer != ca_cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(ca_cert)
    except Exception:  # signature mismatch: a CA of the same name was regenerated
        return False
    return cert.not_valid_after_utc - _now() > dt.timedelta(days=30)


# --- kubeconfig ----------------------------------------------------------------------------------

def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def kubeconfig_dict(server_url: str, ca_pem: bytes, client_cert_pem: bytes, client_key_pem: bytes,
                    cluster_name: str, context_name: str, user_name: str = "admin") -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": {
            "certificate-authority-data": _b64(ca_pem), "server": server_url}}],
        "contexts": [{"name": context_name, "context": {
            "cluster": cluster_name, "user": user_name}}],
        "current-context": context_name,
        "preferences": {},
        "users": [{"name": user_name, "user": {
            "client-certificate-data": _b64(client_cert_pem),
            "client-key-data": _b64(client_key_pem)}}],
    }


def write_kubeconfig(path: str, server_url: str, ca_pem: bytes, client_cert_pem: bytes,
                     client_key_pem: bytes, cluster_name: str, context_name: str,
                     user_name: str = "admin") -> None:
    """Write a self-contained kubeconfig (embedded *-data), readable by its owner only."""
    config = kubeconfig_dict(server_url, ca_pem, client_cert_pem, client_key_pem, cluster_name,
                             context_name, user_name)
    text = yaml.safe_dump(config, default_flow_style=False, sort_keys=False)
    write_file_atomic(path, text.encode(), 0o600)


# --- static tokens (kube-apiserver --token-auth-file format: token,user,uid,"group1,group2") ----

def ensure_token_file(directory: str) -> str:
    """Return the admin bearer token, creating the token file on first use."""
    path = os.path.join(directory, TOKEN_FILE)
    if os.path.exists(path):
        for token, (user, _groups) in load_tokens(directory).items():
            if user == ADMIN_USER:
                return token
    token = secrets.token_hex(32)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(
        [token, ADMIN_USER, ADMIN_USER, ",".join(ADMIN_GROUPS)])
    write_file_atomic(path, buf.getvalue().encode(), 0o600)
    return token


def load_tokens(directory: str) -> dict[str, tuple[str, list[str]]]:
    """token -> (user, groups) from the token file; {} when there is none."""
    path = os.path.join(directory, TOKEN_FILE)
    if not os.path.exists(path):
        return {}
    tokens: dict[str, tuple[str, list[str]]] = {}
    with open(path, newline="") as f:
        for row in csv.reader(f):
            if len(row) < 2 or not row[0] or row[0].startswith("#"):
                continue
            groups = [g for g in row[3].split(",") if g] if len(row) > 3 else []
            tokens[row[0]] = (row[1], groups)
    return tokens


# --- TLS and authentication ----------------------------------------------------------------------

def server_ssl_context(cert_path: str, key_path: str, ca_path: str) -> ssl.SSLContext:
    """TLS 1.2+ server context that asks for a client certificate signed by the CA but also lets
    clients without one in (they authenticate with a bearer token instead)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_path, key_path)
    ctx.load_verify_locations(cafile=ca_path)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def _cert_identity(peercert: dict) -> tuple[str, list[str]] | None:
    """User (CN) and groups (O) from ssl.getpeercert()'s subject: ((('commonName', 'x'),), ...)."""
    cn = None
    orgs: list[str] = []
    for rdn in peercert.get("subject", ()):
        for attr, value in rdn:
            if attr == "commonName":
                cn = value
            elif attr == "organizationName":
                orgs.append(value)
    return (cn, orgs) if cn else None


def authenticate(peercert: dict | None, authorization_header: str | None,
                 tokens: dict[str, tuple[str, list[str]]]) -> tuple[str, list[str]] | None:
    """(user, groups) of the request, or None (401). A verified client certificate wins, then
    an `Authorization: Bearer <token>` header. Every user gets the system:authenticated group."""
    identity = _cert_identity(peercert) if peercert else None
    if identity is None and authorization_header:
        # As the kube-apiserver: SplitN(" ", 3), scheme compared case-insensitively.
        parts = authorization_header.strip().split(" ", 2)
        if len(parts) >= 2 and parts[0].lower() == "bearer" and parts[1]:
            found = tokens.get(parts[1])
            if found is not None:
                identity = (found[0], list(found[1]))
    if identity is None:
        return None
    user, groups = identity
    if AUTHENTICATED_GROUP not in groups:
        groups = groups + [AUTHENTICATED_GROUP]
    return user, groups
