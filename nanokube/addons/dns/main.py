"""`nanokube dns` / `python -m nanokube.addons.dns`: the cluster DNS server.

    nanokube dns --kubeconfig K | --in-cluster  --listen 0.0.0.0:53 --cluster-domain cluster.local
                 [--health-listen :8080] [--ready-listen :8181] [--metrics-listen :9153]
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import ssl

# Importing this module stays cheap (the CLI imports it to build `nanokube --help`): the server,
# the API client and dnspython are imported when the command runs.

log = logging.getLogger("nanokube.dns")

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The sub-command's own options (--kubeconfig and --context are the CLI's global ones)."""
    p.add_argument("--in-cluster", action="store_true",
                   help="reach the API as a pod does: $KUBERNETES_SERVICE_HOST/PORT and the "
                        "service account's token and CA")
    p.add_argument("--listen", default="0.0.0.0:53", metavar="IP:PORT",
                   help="UDP and TCP address to answer on (default 0.0.0.0:53)")
    p.add_argument("--cluster-domain", default="cluster.local", metavar="ZONE")
    p.add_argument("--ttl", type=int, default=5, metavar="SECONDS",
                   help="TTL of answers and of negative answers (default 5, as CoreDNS)")
    p.add_argument("--health-listen", default="", metavar="IP:PORT",
                   help="serve GET /health here (CoreDNS: :8080); off by default")
    p.add_argument("--ready-listen", default="", metavar="IP:PORT",
                   help="serve GET /ready here once Services are synced (CoreDNS: :8181)")
    p.add_argument("--metrics-listen", default="", metavar="IP:PORT",
                   help="serve Prometheus /metrics here (CoreDNS: :9153)")


def in_cluster_client(sa_dir: str = SERVICE_ACCOUNT_DIR):
    """The API client of a pod: the `kubernetes` Service's address from the environment, the
    service account's bearer token and the cluster CA (client-go's rest.InClusterConfig)."""
    from nanokube.client import Client
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        raise RuntimeError("--in-cluster: KUBERNETES_SERVICE_HOST is not set")
    with open(os.path.join(sa_dir, "token")) as f:
        token = f.read().strip()
    ctx = ssl.create_default_context(cafile=os.path.join(sa_dir, "ca.crt"))
    host = f"[{host}]" if ":" in host else host
    namespace = "default"
    ns_file = os.path.join(sa_dir, "namespace")
    if os.path.exists(ns_file):
        with open(ns_file) as f:
            namespace = f.read().strip() or namespace
    return Client(f"https://{host}:{port}", ctx, token, namespace)


def make_client(args):
    from nanokube.client import Client
    if getattr(args, "in_cluster", False):
        return in_cluster_client()
    path = getattr(args, "kubeconfig", None) or os.environ.get("KUBECONFIG")
    if not path:
        home = os.environ.get("NANOKUBE_HOME", "/var/lib/nanokube")
        path = os.path.join(home, getattr(args, "cluster_name", None) or "default", "kubeconfig")
    return Client.from_kubeconfig(path.split(os.pathsep)[0], getattr(args, "context", None))


async def run(args, stop: asyncio.Event | None = None) -> None:
    from nanokube.addons.dns.controller import ClusterDNS, watch_cluster
    from nanokube.addons.dns.server import DNSServer, metrics_text, serve_http, split_hostport
    from nanokube import daemon
    stop = daemon.stop_event(stop)
    dns = ClusterDNS(args.cluster_domain, args.ttl)
    host, port = split_hostport(args.listen, 53)
    server = DNSServer(dns.answers, host, port)
    await server.start()
    log.info("answering for %s on %s:%d (udp, tcp)", dns.zone, host, server.port)
    ready = asyncio.Event()
    http_servers = []
    endpoints = [
        (args.health_listen, "/health", lambda: (200, "OK")),
        (args.ready_listen, "/ready", lambda: (200, "OK") if ready.is_set() else (503, "")),
        (args.metrics_listen, "/metrics",
         lambda: (200, metrics_text(server.counters, dns.answers))),
    ]
    routes: dict[str, dict] = {}          # several paths may share one address
    for address, path, handler in endpoints:
        if address:
            routes.setdefault(address, {})[path] = handler
    for address, paths in routes.items():
        h, p = split_hostport(address, 8080)
        http_servers.append(await serve_http(h, p, paths))
    client = make_client(args)
    watcher = asyncio.create_task(watch_cluster(client, dns, ready))
    try:
        await stop.wait()
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        server.close()
        for s in http_servers:
            s.close()
        await client.close()


def main(args) -> int:
    from nanokube import daemon
    daemon.run(run(args))
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """For `python -m nanokube.addons.dns`, which has no CLI global options."""
    p = argparse.ArgumentParser(prog="python -m nanokube.addons.dns",
                                description="the cluster DNS server")
    p.add_argument("--kubeconfig", metavar="PATH")
    p.add_argument("--context")
    add_arguments(p)
    return p.parse_args(argv)
