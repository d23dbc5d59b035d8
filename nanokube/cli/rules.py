"""`nanokube rules [--node NODE]`: the live nftables ruleset of the cluster's nodes.

What the kernel holds, not what the agent believes: `nft list table ip nanokube` run inside the
node's network namespace (entered with nsenter, as the agents are).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

NETNS_DIR = "/run/netns"
TABLE = "nanokube"


def node_names(cluster: str) -> list[str]:
    """The cluster's nodes, from the cluster.json that `up` wrote."""
    from nanokube.cluster.lifecycle import cluster_dir
    try:
        state = json.loads((cluster_dir(cluster) / "cluster.json").read_text())
    except (OSError, ValueError):
        return []
    return [n["name"] for n in state.get("network", {}).get("nodes", [])]


def list_table_argv(cluster: str, node: str) -> list[str]:
    return ["nsenter", f"--net={NETNS_DIR}/nk-{cluster}-{node}", "--",
            "nft", "list", "table", "ip", TABLE]


def main(args) -> int:
    cluster = args.cluster_name
    if os.geteuid() != 0:
        print("error: nanokube rules needs root (it enters the node's network namespace)",
              file=sys.stderr)
        return 1
    nodes = [args.node] if args.node else node_names(cluster)
    if not nodes:
        print(f'error: cluster "{cluster}" is not up', file=sys.stderr)
        return 1
    code = 0
    for node in nodes:
        if not os.path.exists(f"{NETNS_DIR}/nk-{cluster}-{node}"):
            print(f'error: node "{node}" not found in cluster "{cluster}"', file=sys.stderr)
            code = 1
            continue
        proc = subprocess.run(list_table_argv(cluster, node), capture_output=True, text=True)
        if len(nodes) > 1:
            print(f"# node {node}")
        if proc.returncode != 0:
            print(f"error: node {node}: {proc.stderr.strip() or 'nft failed'} "
                  "(no rules programmed yet?)", file=sys.stderr)
            code = 1
            continue
        sys.stdout.write(proc.stdout)
    return code
