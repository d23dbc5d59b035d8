"""X.509 helpers for the issuers and the Certificate controller, over `cryptography`.

Keys are RSA 2048 by default (cert-manager's default) or ECDSA P-256/P-384 or Ed25519; RSA keys
are written PKCS#1 ("RSA PRIVATE KEY") unless the Certificate asks for PKCS#8, as cert-manager
does. Durations are Go duration strings ("2160h", "1h30m", "90s"), as in the CRDs.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_DURATION = 90 * 24 * 3600.0          # 2160h
MIN_DURATION = 3600.0                        # cert-manager rejects shorter durations
MIN_RENEW_BEFORE = 5 * 60.0



def format_duration(seconds: float) -> str:
    """As Go prints a Duration: 2160h0m0s."""
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m}m{s}s"


# ---- keys -------------------------------------------------------------------------------------

def generate_private_key(algorithm: str = "RSA", size: int | None = None):
    algorithm = (algorithm or "RSA").upper()
    if algorithm == "RSA":
        return rsa.generate_private_key(public_exponent=65537, key_size=size or 2048)
    if algorithm == "ECDSA":
        curve = {None: ec.SECP256R1, 256: ec.SECP256R1, 384: ec.SECP384R1,
                 521: ec.SECP521R1}.get(size)
        if curve is None:
            raise ValueError(f"unsupported ECDSA key size {size}")
        return ec.generate_private_key(curve())
    if algorithm == "ED25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unsupported private key algorithm {algorithm!r}")


def key_to_pem(key, encoding: str = "PKCS1") -> bytes:
    if isinstance(key, rsa.RSAPrivateKey) and encoding != "PKCS8":
        fmt = serialization.PrivateFormat.TraditionalOpenSSL
    elif isinstance(key, ec.EllipticCurvePrivateKey) and encoding != "PKCS8":
        fmt = serialization.PrivateFormat.TraditionalOpenSSL
    else:
        fmt = serialization.PrivateFormat.PKCS8
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


def load_key(pem: bytes):
    return serialization.load_pem_private_key(pem, password=None)


def _sign_hash(key):
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


# ---- certificates -----------------------------------------------------------------------------

@dataclass
class Request:
    """What a Certificate asks for (its spec, parsed)."""
    common_name: str = ""
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    duration: float = DEFAULT_DURATION
    is_ca: bool = False
    organizations: tuple[str, ...] = ()

    def subject(self) -> x509.Name:
        attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in self.organizations]
        if self.common_name:
            attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, self.common_name))
        return x509.Name(attrs)

    def sans(self) -> list[x509.GeneralName]:
        names: list[x509.GeneralName] = [x509.DNSName(d) for d in self.dns_names]
        names += [x509.IPAddress(ipaddress.ip_address(i)) for i in self.ip_addresses]
        return names


def make_csr(key, req: Request) -> bytes:
    """A PEM CSR for the request (ACME takes its identifiers from the SANs)."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(req.subject())
    if req.sans():
        builder = builder.add_extension(x509.SubjectAlternativeName(req.sans()), critical=False)
    return builder.sign(key, _sign_hash(key)).public_bytes(serialization.Encoding.PEM)


def sign(req: Request, public_key, issuer_key, issuer_cert: x509.Certificate | None,
         now: dt.datetime | None = None) -> x509.Certificate:
    """Issue a certificate for `public_key`; self-signed when issuer_cert is None.

    The duration is capped at the issuer's own notAfter, as cert-manager's CA issuer does."""
    now = now or dt.datetime.now(dt.timezone.utc)
    not_before = now
    not_after = now + dt.timedelta(seconds=req.duration)
    subject = req.subject()
    if issuer_cert is not None:
        not_after = min(not_after, issuer_cert.not_valid_after_utc)
        issuer_name = issuer_cert.subject
    else:
        issuer_name = subject
    usage = x509.KeyUsage(digital_signature=True, key_encipherment=not req.is_ca,
                          key_cert_sign=req.is_ca, crl_sign=False, content_commitment=False,
                          data_encipherment=False, key_agreement=False, encipher_only=False,
                          decipher_only=False)
    builder = (x509.CertificateBuilder()
               .subject_name(subject).issuer_name(issuer_name).public_key(public_key)
               .serial_number(x509.random_serial_number())
               .not_valid_before(not_before).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=req.is_ca, path_length=None),
                              critical=True)
               .add_extension(usage, critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key),
                              critical=False))
    if not req.is_ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    if issuer_cert is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_cert.public_key()),
            critical=False)
    if req.sans():
        # the SAN extension is critical when the subject is empty (RFC 5280 4.2.1.6)
        builder = builder.add_extension(x509.SubjectAlternativeName(req.sans()),
                                        critical=not req.common_name and
                                        not req.organizations)
    return builder.sign(issuer_key, _sign_hash(issuer_key))


def cert_to_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def load_certs(pem: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem)


def dns_names(cert: x509.Certificate) -> list[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return ext.value.get_values_for_type(x509.DNSName)


def ip_addresses(cert: x509.Certificate) -> list[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return [str(ip) for ip in ext.value.get_values_for_type(x509.IPAddress)]


def is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def public_keys_match(key, cert: x509.Certificate) -> bool:
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return key.public_key().public_bytes(*fmt) == cert.public_key().public_bytes(*fmt)


def new_ca(common_name: str, duration: float = 10 * 365 * 24 * 3600.0) -> tuple[bytes, bytes]:
    """A self-signed CA (certificate PEM, key PEM): the default issuer's root."""
    key = generate_private_key("ECDSA", 256)
    cert = sign(Request(common_name=common_name, duration=duration, is_ca=True,
                        organizations=("nanokube",)), key.public_key(), key, None)
    return cert_to_pem(cert), key_to_pem(key)


# ---- renewal ----------------------------------------------------------------------------------

def renew_before(duration: float, renew_before: float | None = None,
                 renew_before_percentage: int | None = None) -> float:
    """cert-manager's rule: spec.renewBefore when 0 < it < the duration, else the percentage
    of the duration, else a third of it (renew two-thirds through the lifetime)."""
    if renew_before is not None and 0 < renew_before < duration:
        return renew_before
    if renew_before_percentage is not None and 0 < renew_before_percentage < 100:
        return duration * renew_before_percentage / 100.0
    return duration / 3.0


def renewal_time(not_before: dt.datetime, not_after: dt.datetime,
                 renew_before_seconds: float | None = None,
                 renew_before_percentage: int | None = None) -> dt.datetime:
    """notAfter minus renewBefore, computed on the certificate's actual lifetime."""
    lifetime = (not_after - not_before).total_seconds()
    before = renew_before(lifetime, renew_before_seconds, renew_before_percentage)
    return not_after - dt.timedelta(seconds=before)


def rfc3339(when: dt.datetime) -> str:
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
