"""`nanokube ingress-controller`: the ingress-nginx controller, with NGINX as its child.

    nanokube ingress-controller --kubeconfig K | --in-cluster
        [--ingress-class nginx] [--controller-class k8s.io/ingress-nginx]
        [--publish-service ingress-nginx/ingress-nginx-controller]
        [--http-port 80] [--https-port 443] [--status-port 10254] [--runtime-dir DIR]

The controller waits for its caches, writes the first configuration, then starts
`nginx -p DIR -c DIR/nginx.conf -g 'daemon off;'` (so NGINX answers /healthz on the status
port, and the pod turns ready, only once it serves the cluster's Ingresses). SIGTERM stops
NGINX gracefully (SIGQUIT) and then the controller. If NGINX dies, the controller exits so
that the kubelet restarts the container.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime
import logging
import os
import shutil
import tempfile

log = logging.getLogger("nanokube.ingress")

FAKE_CERT_CN = "Kubernetes Ingress Controller Fake Certificate"   # ingress-nginx's name


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The sub-command's own options (--kubeconfig and --context are the CLI's global ones)."""
    p.add_argument("--in-cluster", action="store_true",
                   help="reach the API as a pod does (service account token and CA)")
    p.add_argument("--ingress-class", default="nginx", metavar="NAME",
                   help="the IngressClass (and legacy annotation value) handled (default nginx)")
    p.add_argument("--controller-class", default="k8s.io/ingress-nginx", metavar="NAME",
                   help="spec.controller of the IngressClasses handled")
    p.add_argument("--publish-service", default="ingress-nginx/ingress-nginx-controller",
                   metavar="NS/NAME", help="the Service whose LoadBalancer addresses go into "
                   "the Ingresses' status (empty: no status updates)")
    p.add_argument("--http-port", type=int, default=80, metavar="PORT")
    p.add_argument("--https-port", type=int, default=443, metavar="PORT")
    p.add_argument("--status-port", type=int, default=10254, metavar="PORT",
                   help="NGINX answers GET /healthz here")
    p.add_argument("--runtime-dir", default="", metavar="DIR",
                   help="nginx.conf, certificates, pid, logs and temp files (default: a new "
                        "temporary folder, removed on exit)")
    p.add_argument("--nginx", default="nginx", metavar="PATH", help="the NGINX binary")


def default_certificate(directory: str) -> tuple[str, str]:
    """A self-signed certificate for TLS hosts without a Secret, as ingress-nginx's fake one;
    written as (crt, key) files of mode 0600."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    from nanokube.ingress.controller import write_atomically

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme Co"),
                      x509.NameAttribute(NameOID.COMMON_NAME, FAKE_CERT_CN)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("ingress.local")]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    crt_path = os.path.join(directory, "default.crt")
    key_path = os.path.join(directory, "default.key")
    write_atomically(crt_path, cert.public_bytes(serialization.Encoding.PEM), 0o600)
    write_atomically(key_path, key.private_bytes(serialization.Encoding.PEM,
                                                 serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()), 0o600)
    return crt_path, key_path


async def run(args, stop: asyncio.Event | None = None) -> int:
    from nanokube.addons.dns.main import make_client
    from nanokube.controllers.informer import InformerFactory
    from nanokube.ingress.controller import IngressController, Nginx

    from nanokube import daemon
    stop = daemon.stop_event(stop)
    made_dir = not args.runtime_dir
    runtime_dir = os.path.abspath(args.runtime_dir or tempfile.mkdtemp(prefix="ingress-nginx-"))
    os.makedirs(runtime_dir, exist_ok=True)
    os.chmod(runtime_dir, 0o755)        # NGINX workers (nobody) use the temp folders in it
    client = make_client(args)
    informers = InformerFactory(client)
    nginx = Nginx(runtime_dir, args.nginx)
    controller = IngressController(
        client, informers, runtime_dir, default_certificate(runtime_dir), nginx,
        class_name=args.ingress_class, controller_class=args.controller_class,
        publish_service=args.publish_service or None, http_port=args.http_port,
        https_port=args.https_port, status_port=args.status_port)
    tasks = [asyncio.create_task(i.run(), name=f"informer-{i.plural}") for i in informers.all()]
    code = 0
    try:
        stopping = asyncio.create_task(stop.wait())
        tasks.append(stopping)
        synced = asyncio.create_task(informers.wait_synced())
        tasks.append(synced)
        await asyncio.wait({synced, stopping}, return_when=asyncio.FIRST_COMPLETED)
        # the first configuration must exist before NGINX starts
        tasks.append(asyncio.create_task(controller.run(), name="sync"))
        first = asyncio.create_task(controller.synced.wait())
        await asyncio.wait({first, stopping}, return_when=asyncio.FIRST_COMPLETED)
        first.cancel()
        if stop.is_set():
            return 0
        await nginx.start()
        exited = asyncio.create_task(nginx.proc.wait())
        await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not stop.is_set():
            log.error("nginx exited with %s; exiting", nginx.proc.returncode)
            code = 1
    finally:
        log.info("stopping")
        await nginx.stop()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.close()
        if made_dir:
            shutil.rmtree(runtime_dir, ignore_errors=True)
    return code


def main(args) -> int:
    from nanokube import daemon
    return daemon.run(run(args))
