"""`nanokube kubeconfig`: the path of a cluster's kubeconfig, for `export KUBECONFIG=$(...)`."""
from __future__ import annotations

import os

from nanokube.cli.common import DEFAULT_HOME


def cluster_kubeconfig(name: str, environ: dict | None = None) -> str:
    """$NANOKUBE_HOME/<name>/kubeconfig: the cluster's own file (not $KUBECONFIG, which may
    point anywhere)."""
    env = os.environ if environ is None else environ
    return os.path.join(env.get("NANOKUBE_HOME") or DEFAULT_HOME, name, "kubeconfig")


def main(args) -> int:
    print(args.kubeconfig or cluster_kubeconfig(args.cluster_name or "default"))
    return 0
