"""`nanokube delete -f FILE | KIND NAME...`: prints `service "x" deleted`, then waits until the
objects are gone, as kubectl's default --wait=true does."""
from __future__ import annotations

import asyncio
import sys

from nanokube.api.errors import StatusError
from nanokube.cli.errors import CLIError, add_source, format_errors
from nanokube.cli.printers import kind_string

DELETE_OPTIONS = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}


async def targets_from_files(client, args) -> list[tuple[str, object, str, str, str | None]]:
    """(source, resource, kind, name, namespace) of each manifest object."""
    from nanokube.cli.apply import mapping_for, target_namespace
    from nanokube.cli.manifests import load_manifests
    out = []
    for source, obj in load_manifests(args.filename):
        res = await mapping_for(client, obj, source, client.namespace)
        ns = target_namespace(args, client, obj, res)
        out.append((source, res, obj["kind"], obj["metadata"].get("name", ""), ns))
    return out


async def targets_from_args(client, args) -> list[tuple[str, object, str, str, str | None]]:
    from nanokube.cli.common import resolve
    kind_arg, names = args.kind, list(args.names)
    if kind_arg and "/" in kind_arg:
        kind_arg, first = kind_arg.split("/", 1)
        names.insert(0, first)
    if not kind_arg:
        raise CLIError("You must provide one or more resources by argument or filename.")
    if not names:
        raise CLIError("resource(s) were provided, but no name was specified")
    res, kind = await resolve(client, kind_arg)
    ns = client.namespace if res.namespaced else None
    return [("", res, kind, name, ns) for name in names]


async def wait_deleted(client, path: str) -> None:
    while True:
        try:
            await client.get(path)
        except StatusError as e:
            if e.code == 404:
                return
            raise
        await asyncio.sleep(0.2)


async def run(args, client) -> int:
    errors: list[Exception] = []
    try:
        if args.filename:
            targets = await targets_from_files(client, args)
        else:
            targets = await targets_from_args(client, args)
    except CLIError as e:
        sys.stderr.write(format_errors([e]))
        return 1
    deleted = []
    for source, res, kind, name, ns in targets:
        path = client.resource_path(res.group, res.version, res.plural, ns, name)
        try:
            await client.delete(path, DELETE_OPTIONS)
        except StatusError as e:
            if not (e.code == 404 and args.ignore_not_found):
                errors.append(add_source(e, "deleting", source))
            continue
        print(f'{kind_string(kind, res.group)} "{name}" deleted', flush=True)
        deleted.append(path)
    if args.wait:
        for path in deleted:
            await wait_deleted(client, path)
    if errors:
        sys.stderr.write(format_errors(errors))
        return 1
    return 0


def main(args) -> int:
    from nanokube.cli.common import run_command
    return run_command(args, run)
