"""What the kubectl-like verbs share: kubeconfig lookup, the client, running, resource names."""
from __future__ import annotations

import asyncio
import os
import sys
from typing import Awaitable, Callable

DEFAULT_HOME = "/var/lib/nanokube"


def default_kubeconfig(name: str = "default", environ: dict | None = None) -> str:
    """$KUBECONFIG (its first entry), else $NANOKUBE_HOME/<name>/kubeconfig."""
    env = os.environ if environ is None else environ
    if env.get("KUBECONFIG"):
        return env["KUBECONFIG"].split(os.pathsep)[0]
    return os.path.join(env.get("NANOKUBE_HOME") or DEFAULT_HOME, name, "kubeconfig")


def kubeconfig_path(args) -> str:
    return args.kubeconfig or default_kubeconfig(getattr(args, "cluster_name", None) or "default")


def make_client(args):
    from nanokube.client import Client

    def warn(text: str) -> None:
        sys.stderr.write(f"Warning: {text}\n")

    client = Client.from_kubeconfig(kubeconfig_path(args), getattr(args, "context", None),
                                    warning_handler=warn)
    if getattr(args, "namespace", None):
        client.namespace = args.namespace
    return client


def run_async(coro: Awaitable[int]) -> int:
    try:
        import uvloop
        factory = uvloop.new_event_loop
    except ImportError:     # uvloop is an optimisation, not a need
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


def run_command(args, command: Callable) -> int:
    """Run `await command(args, client)`; print any error as kubectl does and exit 1."""
    from nanokube.cli.errors import format_error

    async def go() -> int:
        client = make_client(args)
        try:
            return await command(args, client)
        finally:
            await client.close()

    try:
        return run_async(go())
    except KeyboardInterrupt:
        return 130
    except Exception as e:     # noqa: BLE001 - every failure becomes kubectl's one-line report
        sys.stderr.write(format_error(e))
        return 1


async def resolve(client, name: str):
    """KIND argument (`svc`, `services`, `Service`, `deployments.apps`) -> (APIResource, Kind)."""
    from nanokube.cli.errors import no_resource_type
    res = await client.resource(name)
    if res is None:
        raise no_resource_type(name)
    return res, await client.kind_of(res.group, res.plural)
