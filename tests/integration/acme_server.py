"""Debian's Pebble (a test ACME server) and a tiny DNS server for it, on this machine only.

Shared by the cert-manager end-to-end test and bench/certificates.py. Pebble listens on
127.0.0.1 or the test cluster's own host address (ACME; management on 127.0.0.1), validates
HTTP-01 on port 80, and resolves names through
`-dnsserver` pointed at `StubDNS`, which answers A queries for the test's own hosts with the
cluster's ingress EXTERNAL-IP and refuses everything else: no real name is ever resolved.
Its listener certificate is made here (the package ships none) and handed to the ClusterIssuer
as its caBundle.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

from harness import stop_process
from nanokube.certmanager import pki


def free_port(kind=socket.SOCK_STREAM, ip: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


class StubDNS:
    """UDP DNS on 127.0.0.1: `records` maps a host to the IPv4 address answered for it."""

    def __init__(self, records: dict[str, str] | None = None):
        self.records = {k.lower().rstrip("."): v for k, v in (records or {}).items()}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.queries: list[str] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> "StubDNS":
        self._thread.start()
        return self

    def _answer(self, wire: bytes) -> bytes:
        query = dns.message.from_wire(wire)
        reply = dns.message.make_response(query)
        question = query.question[0]
        name = question.name.to_text().lower().rstrip(".")
        self.queries.append(name)
        if name not in self.records:
            reply.set_rcode(dns.rcode.REFUSED)      # not ours: never looked up elsewhere
        elif question.rdtype == dns.rdatatype.A:
            reply.answer.append(dns.rrset.from_text(question.name, 5, "IN", "A",
                                                    self.records[name]))
        return reply.to_wire()                       # other types: an empty NOERROR

    def _serve(self) -> None:
        while True:
            try:
                wire, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            try:
                self.sock.sendto(self._answer(wire), peer)
            except Exception:       # noqa: BLE001 - a bad query must not stop the server
                continue

    def stop(self) -> None:
        self.sock.close()


class Pebble:
    """`pebble` with a fresh listener certificate; stop() ends it (by its pid). Its ACME
    interface listens on `listen_ip` (loopback, or the host's address on the test cluster's own
    LAN, where cert-manager's pod reaches it); the management interface on loopback."""

    def __init__(self, workdir: Path, dns_port: int, http_port: int = 80,
                 listen_ip: str = "127.0.0.1"):
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.listen_ip = listen_ip
        self.port, self.management_port = free_port(ip=listen_ip), free_port()
        self.dns_port, self.http_port = dns_port, http_port
        self.proc: subprocess.Popen | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("pebble") is not None

    @property
    def directory(self) -> str:
        return f"https://{self.listen_ip}:{self.port}/dir"

    def _listener_cert(self) -> None:
        ca_key = pki.generate_private_key("ECDSA", 256)
        ca = pki.sign(pki.Request(common_name="pebble test listener CA", is_ca=True,
                                  duration=86400.0), ca_key.public_key(), ca_key, None)
        key = pki.generate_private_key("ECDSA", 256)
        cert = pki.sign(pki.Request(common_name=self.listen_ip,
                                    ip_addresses=tuple({"127.0.0.1", self.listen_ip}),
                                    dns_names=("localhost",), duration=86400.0),
                        key.public_key(), ca_key, ca)
        (self.dir / "cert.pem").write_bytes(pki.cert_to_pem(cert))
        (self.dir / "key.pem").write_bytes(pki.key_to_pem(key, "PKCS8"))
        self.ca_pem = pki.cert_to_pem(ca)

    @property
    def ca_bundle(self) -> str:
        """The ClusterIssuer's caBundle: the CA of Pebble's listener certificate."""
        return base64.b64encode(self.ca_pem).decode()

    def start(self, timeout: float = 15) -> "Pebble":
        self._listener_cert()
        config = {"pebble": {
            "listenAddress": f"{self.listen_ip}:{self.port}",
            "managementListenAddress": f"127.0.0.1:{self.management_port}",
            "certificate": str(self.dir / "cert.pem"), "privateKey": str(self.dir / "key.pem"),
            "httpPort": self.http_port, "tlsPort": 443, "ocspResponderURL": "",
            "externalAccountBindingRequired": False}}
        (self.dir / "pebble-config.json").write_text(json.dumps(config))
        # no random sleep before validating, no nonces rejected on purpose, no authz reuse;
        # PEBBLE_VA_ALWAYS_VALID is never set: every challenge is really validated
        env = dict(os.environ, PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT="0",
                   PEBBLE_AUTHZREUSE="0")
        env.pop("PEBBLE_VA_ALWAYS_VALID", None)
        self.log = open(self.dir / "pebble.log", "ab")
        self.proc = subprocess.Popen(
            ["pebble", "-config", str(self.dir / "pebble-config.json"),
             "-dnsserver", f"127.0.0.1:{self.dns_port}"],
            stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=self.dir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pebble exited: {(self.dir / 'pebble.log').read_text()}")
            try:
                self.get(self.directory)
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("pebble did not start")

    def get(self, url: str) -> bytes:
        ctx = ssl.create_default_context(cadata=self.ca_pem.decode())
        with urllib.request.urlopen(url, context=ctx, timeout=5) as r:
            return r.read()

    def root(self) -> bytes:
        """The root that issued certificates chain to (management interface)."""
        return self.get(f"https://127.0.0.1:{self.management_port}/roots/0")

    def stop(self) -> None:
        stop_process(self.proc)
        if self.proc is not None:
            self.log.close()


def served_certificate(ip: str, host: str, cadata: str | None = None, port: int = 443):
    """The leaf certificate (cryptography object) served for SNI `host` at ip:port; verified
    against `cadata` when given (ssl.SSLCertVerificationError otherwise)."""
    from cryptography import x509
    ctx = ssl.create_default_context(cadata=cadata) if cadata else \
        ssl._create_unverified_context()      # noqa: S323 - we only read the certificate
    with socket.create_connection((ip, port), timeout=5) as sock:
        with ctx.wrap_socket(sock, server_hostname=host) as tls:
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
