"""`nanokube` entry point: one argparse sub-command per verb.

Every sub-command is an entry of SUBCOMMANDS: its help, the arguments it takes (added here so
that `nanokube --help` imports nothing heavy) and the "module:function" it runs, imported only
when it runs and called with the parsed arguments; its return value is the exit code.
Other modules register theirs (`up`, `down`, `status`, `exec`, `logs`, `agent`) with `register`
or by adding an entry below.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Subcommand:
    help: str
    target: str                                                  # "package.module:function"
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None


class _AppendOverDefault(argparse.Action):
    """append, but the first use replaces the default instead of adding to it."""

    def __call__(self, parser, namespace, values, option_string=None):
        current = getattr(namespace, self.dest, None)
        if current is self.default or current is None:
            current = []
        setattr(namespace, self.dest, [*current, values])


def _bool(text: str) -> bool:
    if text.lower() in ("1", "t", "true", "yes"):
        return True
    if text.lower() in ("0", "f", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value: {text!r}")


# ---- arguments of each sub-command --------------------------------------------------------------

def _go_duration(text: str) -> float:
    from nanokube.apitime import parse_duration
    try:
        return parse_duration(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _server_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", required=True, metavar="DIR")
    p.add_argument("--listen", action=_AppendOverDefault, default=["127.0.0.1:6443"],
                   metavar="HOST:PORT", help="address to serve on (repeatable)")
    p.add_argument("--service-cluster-ip-range", default="10.96.0.0/12", metavar="CIDR")
    p.add_argument("--service-node-port-range", default="30000-32767", metavar="A-B")
    p.add_argument("--advertise-address", default=None, metavar="IP")
    p.add_argument("--store", default=None, metavar="URL",
                   help="etcd://HOST:PORT[,HOST:PORT...] (default: SQLite in --data-dir)")
    p.add_argument("--tls-san", action="append", default=None, metavar="HOST|IP",
                   help="one more name or address for the serving certificate (repeatable)")
    p.add_argument("--endpoint-reconciler-lease-duration", type=float, default=None,
                   metavar="SECONDS", help="on a shared store: how long this server stays in "
                   "the kubernetes Service's endpoints without renewing (default 15)")
    p.add_argument("--event-ttl", type=_go_duration, default=3600.0, metavar="DURATION",
                   help="how long an Event is kept after its last change (default 1h)")


def _apply_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--filename", action="append", required=True, metavar="FILE",
                   help="a file, a folder of .yaml/.yml/.json files, or - for stdin")


def _get_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", metavar="KIND")
    p.add_argument("name", nargs="?", metavar="NAME")
    p.add_argument("-A", "--all-namespaces", action="store_true")
    p.add_argument("-o", "--output", choices=["wide", "yaml", "json", "name"])
    p.add_argument("-w", "--watch", action="store_true")
    p.add_argument("-l", "--selector", metavar="SELECTOR")
    p.add_argument("--field-selector", metavar="SELECTOR")


def _describe_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", metavar="KIND")
    p.add_argument("name", nargs="?", metavar="NAME")


def _delete_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--filename", action="append", metavar="FILE")
    p.add_argument("kind", nargs="?", metavar="KIND")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("--ignore-not-found", action="store_true")
    p.add_argument("--wait", type=_bool, nargs="?", const=True, default=True,
                   help="wait until the objects are gone (default true)")


def _controller_manager_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cluster-cidr", default="10.244.0.0/16", metavar="CIDR",
                   help="the pod CIDR that node IPAM splits into per-node ranges")
    p.add_argument("--node-cidr-mask-size", type=int, default=24, metavar="N")
    p.add_argument("--node-monitor-grace-period", type=float, default=8.0, metavar="SECONDS",
                   help="a node whose Lease is older than this is marked NotReady")
    _leader_elect_args(p)


def _leader_elect_args(p: argparse.ArgumentParser) -> None:
    """kube-controller-manager's leader election flags (on when several run)."""
    p.add_argument("--leader-elect", type=_bool, nargs="?", const=True, default=False,
                   help="run the controllers only while holding the Lease")
    p.add_argument("--leader-elect-lease-duration", type=float, default=15.0, metavar="SECONDS")
    p.add_argument("--leader-elect-renew-deadline", type=float, default=10.0, metavar="SECONDS")
    p.add_argument("--leader-elect-retry-period", type=float, default=2.0, metavar="SECONDS")
    p.add_argument("--leader-elect-resource", default="kube-system/kube-controller-manager",
                   metavar="NAMESPACE/NAME", help="the Lease")


def _migrate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", required=True, metavar="DIR",
                   help="the API server's data dir holding state.db")
    p.add_argument("--store", required=True, metavar="URL", help="etcd://HOST:PORT[,HOST:PORT...]")


def _agent_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--node", required=True, metavar="NAME", help="this node's name")
    p.add_argument("--node-ip", required=True, metavar="IP")
    p.add_argument("--state-dir", required=True, metavar="DIR")
    p.add_argument("--cluster", default="default", metavar="NAME",
                   help="the cluster's name (prefix of the namespaces the agent makes)")
    p.add_argument("--cluster-dns", default="10.96.0.10", metavar="IP")
    p.add_argument("--cluster-domain", default="cluster.local")
    p.add_argument("--lease-duration", type=float, default=10.0, metavar="SECONDS")
    p.add_argument("--service-cluster-ip-range", default="10.96.0.0/12", metavar="CIDR",
                   help="the Service CIDR, routed to the pod bridge for the node's own clients")
    p.add_argument("--cluster-cidr", default="10.244.0.0/16", metavar="CIDR",
                   help="the pod CIDR: traffic to Services from outside it is masqueraded")
    p.add_argument("--metric-resolution", type=float, metavar="SECONDS",
                   default=float(os.environ.get("NANOKUBE_METRIC_RESOLUTION") or 15),
                   help="how often resource usage is sampled for metrics.k8s.io (kubectl top); "
                        "default $NANOKUBE_METRIC_RESOLUTION or 15")
    p.add_argument("--nodeport-addresses", default="primary", type=_nodeport_addresses,
                   metavar="primary|all|CIDR,...",
                   help="where NodePorts answer, as kube-proxy's flag: the node's own IP "
                        "(primary, the nftables default), every local address (all), or the "
                        "local addresses within the CIDRs")


def _nodeport_addresses(value: str) -> str:
    from nanokube.node.proxy.render import nodeport_match
    try:
        nodeport_match(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return value


def _rules_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--node", metavar="NODE", help="this node only (default: every node)")


def _up_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nodes", type=int, default=2, metavar="K", help="number of nodes (default 2)")
    p.add_argument("--store", default=None, metavar="URL",
                   help="etcd://HOST:PORT[,HOST:PORT...]: keep the cluster in this etcd "
                        "(default: SQLite in the cluster's data dir)")
    _up_ha_args(p)


def _up_ha_args(p: argparse.ArgumentParser) -> None:
    """Several API servers on etcd (docs/etcd.md): how many, and their timings."""
    p.add_argument("--api-servers", type=int, default=1, metavar="N",
                   help="API servers (1-3, default 1; more than one needs --store etcd://), "
                        "each with its own controller-manager")
    for flag in ("--leader-elect-lease-duration", "--leader-elect-renew-deadline",
                 "--leader-elect-retry-period"):
        p.add_argument(flag, type=float, default=None, metavar="SECONDS",
                       help="for the controller-managers, with several API servers")
    p.add_argument("--endpoint-reconciler-lease-duration", type=float, default=None,
                   metavar="SECONDS", help="for the API servers, with several of them")


def _down_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--all", action="store_true", help="every cluster on this machine")


def _exec_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("pod", nargs="?", metavar="POD")
    p.add_argument("-c", "--container", metavar="NAME")
    p.add_argument("--node", metavar="NODE", help="run inside this node's namespace")
    p.add_argument("--outside", action="store_true",
                   help="run on the outside host: a client on the cluster's LAN")
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD")


def _logs_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("pod", metavar="POD")
    p.add_argument("-c", "--container", metavar="NAME")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("--tail", type=int, metavar="N")
    p.add_argument("--timestamps", action="store_true")


def _dns_args(p: argparse.ArgumentParser) -> None:
    from nanokube.addons.dns.main import add_arguments   # cheap: heavy imports run later
    add_arguments(p)


def _acmesolver_args(p: argparse.ArgumentParser) -> None:
    from nanokube.certmanager.acmesolver import add_arguments   # cheap: aiohttp loads later
    add_arguments(p)


def _cert_manager_args(p: argparse.ArgumentParser) -> None:
    from nanokube.certmanager.main import add_arguments     # cheap: heavy imports run later
    add_arguments(p)


def _ingress_controller_args(p: argparse.ArgumentParser) -> None:
    from nanokube.ingress.main import add_arguments      # cheap: heavy imports run later
    add_arguments(p)


SUBCOMMANDS: dict[str, Subcommand] = {
    "server": Subcommand("run the API server", "nanokube.api.server:main", _server_args),
    "apply": Subcommand("create or update objects from manifests (client-side apply)",
                        "nanokube.cli.apply:main", _apply_args),
    "get": Subcommand("list objects or get one", "nanokube.cli.get:main", _get_args),
    "describe": Subcommand("show an object in detail", "nanokube.cli.describe:main",
                           _describe_args),
    "delete": Subcommand("delete objects by file or by name", "nanokube.cli.delete:main",
                         _delete_args),
    "kubeconfig": Subcommand("print the path of the cluster's kubeconfig",
                             "nanokube.cli.kubeconfig:main"),
    "up": Subcommand("create a cluster on this machine", "nanokube.cluster.lifecycle:up",
                     _up_args),
    "down": Subcommand("delete a cluster, leaving nothing behind",
                       "nanokube.cluster.lifecycle:down", _down_args),
    "status": Subcommand("show a cluster's processes", "nanokube.cluster.lifecycle:status"),
    "exec": Subcommand("run a command in a pod, a node or the outside host",
                       "nanokube.cli.exec:main", _exec_args),
    "logs": Subcommand("print a pod's logs", "nanokube.cli.exec:logs", _logs_args),
    "dns": Subcommand("run the cluster DNS server (the kube-dns addon)",
                      "nanokube.addons.dns.main:main", _dns_args),
    "ingress-controller": Subcommand("run the ingress-nginx controller (NGINX as its child)",
                                     "nanokube.ingress.main:main", _ingress_controller_args),
    "controller-manager": Subcommand("run the controllers (deployments, endpointslices, ...)",
                                     "nanokube.controllers.manager:main",
                                     _controller_manager_args),
    "cert-manager": Subcommand("run cert-manager's controllers (the cert-manager addon)",
                               "nanokube.certmanager.main:main", _cert_manager_args),
    "acmesolver": Subcommand("serve one ACME HTTP-01 challenge (the cert-manager solver pod)",
                             "nanokube.certmanager.acmesolver:main", _acmesolver_args),
    "ca": Subcommand("print the certificate (PEM) of the cluster's default CA issuer",
                     "nanokube.certmanager.defaultissuer:print_ca"),
    "rules": Subcommand("print the live nftables ruleset of the cluster's nodes",
                        "nanokube.cli.rules:main", _rules_args),
    "migrate": Subcommand("copy a cluster's SQLite store into etcd", "nanokube.store.migrate:main",
                          _migrate_args),
    "agent": Subcommand("run the node agent (pods, network, service proxy) inside a node",
                        "nanokube.node.agent:main", _agent_args),
}


def register(name: str, help: str, target: str,
             add_arguments: Callable[[argparse.ArgumentParser], None] | None = None) -> None:
    SUBCOMMANDS[name] = Subcommand(help, target, add_arguments)


# ---- parsing and dispatch ------------------------------------------------------------------------

def _global_options(suppress: bool) -> argparse.ArgumentParser:
    """Options valid before and after the verb. On sub-parsers their defaults are suppressed,
    or a sub-parser's default would overwrite a value given before the verb."""
    p = argparse.ArgumentParser(add_help=False)
    d = (lambda v: argparse.SUPPRESS) if suppress else (lambda v: v)
    p.add_argument("--kubeconfig", default=d(None), metavar="PATH",
                   help="default: $KUBECONFIG, else $NANOKUBE_HOME/<name>/kubeconfig")
    p.add_argument("--context", default=d(None), help="the kubeconfig context to use")
    p.add_argument("--name", dest="cluster_name", default=d("default"), metavar="NAME",
                   help="the cluster's name (default: default)")
    p.add_argument("-n", "--namespace", default=d(None),
                   help="namespace (default: the context's, else default)")
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nanokube", parents=[_global_options(False)],
                                     description="A tiny, real Kubernetes for service networking.")
    subs = parser.add_subparsers(dest="command", metavar="COMMAND")
    shared = _global_options(True)
    for name, cmd in SUBCOMMANDS.items():
        p = subs.add_parser(name, help=cmd.help, description=cmd.help, parents=[shared])
        if cmd.add_arguments:
            cmd.add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 0
    module_name, _, func = SUBCOMMANDS[args.command].target.partition(":")
    target = getattr(importlib.import_module(module_name), func)
    code = target(args)
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
