"""`nanokube exec`: run a command inside a pod's container, a node, or the outside host."""
from __future__ import annotations

import asyncio
import os
import sys



def _netns(cluster: str, suffix: str) -> str:
    return f"nk-{cluster}-{suffix}"


async def _container_pid(args) -> int:
    from nanokube.cli.common import make_client
    async with make_client(args) as client:
        ns = args.namespace or "default"
        pod = await client.get(f"/api/v1/namespaces/{ns}/pods/{args.pod}")
    statuses = pod.get("status", {}).get("containerStatuses") or []
    wanted = args.container or (pod["spec"]["containers"][0]["name"])
    for st in statuses:
        cid = st.get("containerID", "")
        if st.get("name") == wanted and cid.startswith("nanokube://") and \
                "running" in (st.get("state") or {}):
            return int(cid.split("://", 1)[1])
    raise SystemExit(f'error: container "{wanted}" in pod "{args.pod}" is not running')


def main(args) -> int:
    command = list(args.cmd)
    if command and command[0] == "--":
        command = command[1:]
    if (args.outside or args.node) and args.pod:
        command = [args.pod, *command]    # with no POD, the command's first word landed there
    if not command:
        print("error: a command is required after --", file=sys.stderr)
        return 1
    if args.outside or args.node:
        suffix = "outside" if args.outside else args.node
        argv = ["ip", "netns", "exec", _netns(args.cluster_name, suffix), *command]
    else:
        if not args.pod:
            print("error: give a POD, --node NODE or --outside", file=sys.stderr)
            return 1
        pid = asyncio.run(_container_pid(args))
        argv = ["nsenter", "-t", str(pid), "--net", "--uts", "--mount", "--", *command]
    os.execvp(argv[0], argv)
    return 127


def logs(args) -> int:
    """`nanokube logs POD [-f]`: through the API server's pods/log, as kubectl logs."""
    from nanokube.cli.common import make_client

    async def run() -> None:
        async with make_client(args) as client:
            ns = args.namespace or "default"
            params = {"follow": "true" if args.follow else "false"}
            if args.container:
                params["container"] = args.container
            if args.tail is not None:
                params["tailLines"] = str(args.tail)
            if args.timestamps:
                params["timestamps"] = "true"
            async for chunk in client.stream(f"/api/v1/namespaces/{ns}/pods/{args.pod}/log",
                                             **params):
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    return 0

