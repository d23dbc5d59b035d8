"""Certificates benchmark (issue 7): Ingress create → its certificate served.

For the CA issuer (nanokube's default ClusterIssuer) and for ACME against Debian's Pebble on
loopback (real HTTP-01 validation through the Ingress controller): `kubectl apply` of an
annotated Ingress, then TLS handshakes with SNI to the ingress EXTERNAL-IP until the served
certificate verifies against the issuer's root. Each run uses a new host. Prints p50 and max.

Run as root: .venv/bin/python bench/certificates.py [--runs 5]
(cert-manager's own HTTP-01 self-check alone waits for 5 passes 2 s apart, ≈ 10 s.)
"""
from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from acme_server import Pebble, StubDNS, served_certificate   # noqa: E402
from harness import ClusterRun, wait_for                        # noqa: E402


def ingress(name: str, host: str, issuer: str) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "annotations": {"cert-manager.io/cluster-issuer": issuer}},
            "spec": {"ingressClassName": "nginx",
                     "tls": [{"hosts": [host], "secretName": f"{name}-cert"}],
                     "rules": [{"host": host, "http": {"paths": [{
                         "path": "/", "pathType": "Prefix", "backend": {"service": {
                             "name": "my-service", "port": {"number": 80}}}}]}}]}}


def served_by(c: ClusterRun, ip: str, host: str, root: str):
    try:
        return served_certificate(ip, host, root)
    except OSError:
        return None


def measure(c: ClusterRun, ip: str, issuer: str, hosts: list[str], root: str) -> list[float]:
    times = []
    for i, host in enumerate(hosts):
        name = f"{issuer}-{i}"
        t0 = time.monotonic()
        c.kubectl("apply", "-f", "-", input=json.dumps(ingress(name, host, issuer)))
        wait_for(f"{host} served", lambda: served_by(c, ip, host, root), timeout=120,
                 interval=0.02)
        times.append(time.monotonic() - t0)
        print(f"  {issuer} run {i + 1}: {times[-1]:.2f} s", flush=True)
    return times


def main() -> int:
    # a SIGTERM (timeout, kill) unwinds like Ctrl-C: the finally blocks take the cluster down
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nk-bench-certs-") as tmp:
        c = ClusterRun(Path(tmp), prefix="bc")
        dns = pebble = None
        try:
            c.nk("up", "--nodes", "1", timeout=90)
            c.kubectl("apply", "-f", str(ROOT / "examples/apps/my-app.yaml"),
                      "-f", str(ROOT / "examples/seed/clusterip-service.yaml"))
            c.kubectl("rollout", "status", "-n", "ingress-nginx",
                      "deployment/ingress-nginx-controller", "--timeout=90s")
            ip = wait_for("EXTERNAL-IP", lambda: (c.get(
                "service", "-n", "ingress-nginx", "ingress-nginx-controller").get("status") or {})
                .get("loadBalancer", {}).get("ingress"), timeout=30)[0]["ip"]
            ca_hosts = [f"ca{i}.bench.test" for i in range(args.runs)]
            acme_hosts = [f"acme{i}.bench.test" for i in range(args.runs)]
            dns = StubDNS({h: ip for h in acme_hosts}).start()
            # cert-manager runs in a pod: Pebble's ACME interface on the host's address on
            # the cluster's own LAN
            pebble = Pebble(Path(tmp) / "pebble", dns.port,
                            listen_ip=c.state()["network"]["host_ip"]).start()
            c.kubectl("apply", "-f", "-", input=json.dumps({
                "apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
                "metadata": {"name": "pebble"},
                "spec": {"acme": {"server": pebble.directory, "caBundle": pebble.ca_bundle,
                                  "privateKeySecretRef": {"name": "pebble-account"},
                                  "solvers": [{"http01": {"ingress": {
                                      "ingressClassName": "nginx"}}}]}}}))
            wait_for("the pebble issuer Ready", lambda: any(
                x["type"] == "Ready" and x["status"] == "True" for x in
                (c.get("clusterissuer", "pebble").get("status") or {}).get("conditions", [])),
                timeout=30)
            ca_root = c.nk("ca").stdout
            results = {"CA issuer (nanokube-ca)": measure(c, ip, "nanokube-ca", ca_hosts,
                                                           ca_root),
                       "ACME issuer (Pebble, HTTP-01)": measure(c, ip, "pebble", acme_hosts,
                                                                pebble.root().decode())}
        finally:
            if pebble:
                pebble.stop()
            if dns:
                dns.stop()
            c.nk("down", check=False)
    print(f"\nIngress create -> its certificate served (TLS handshake via EXTERNAL-IP), "
          f"{args.runs} runs each:")
    for what, times in results.items():
        print(f"  {what:32s} p50 {statistics.median(times):6.2f} s   max {max(times):6.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
