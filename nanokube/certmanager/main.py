"""`nanokube cert-manager`: cert-manager's controllers (issuers, certificates, ingress-shim) as
the cert-manager addon runs them, a Deployment in namespace cert-manager as cert-manager's own
manifests install it; not part of the controller-manager, so the control plane carries neither
the ACME library nor the certificate code.

    nanokube cert-manager --kubeconfig K | --in-cluster
"""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The sub-command's own options (--kubeconfig and --context are the CLI's global ones)."""
    p.add_argument("--in-cluster", action="store_true",
                   help="use the pod's ServiceAccount token and the kubernetes Service")


async def run(args, stop=None) -> None:
    from nanokube import daemon
    from nanokube.addons.dns.main import make_client
    from nanokube.certmanager.controllers import build
    from nanokube.controllers.manager import run_controllers
    stop = daemon.stop_event(stop)
    client = make_client(args)
    try:
        await run_controllers(client, args, stop,
                              build=lambda c, informers, _: build(c, informers))
    finally:
        await client.close()


def main(args) -> int:
    from nanokube import daemon
    return daemon.run(run(args))
