"""`nanokube apply -f`: client-side apply as kubectl does it (k/kubectl pkg/cmd/apply/patcher.go).

The last applied configuration is kept in an annotation; an existing object gets the three-way
strategic merge patch of (last applied, file, live), and nothing is sent when that patch is {}.
"""
from __future__ import annotations

import asyncio
import json
import sys

from nanokube.api.errors import StatusError
from nanokube.api.patch import LAST_APPLIED, with_last_applied
from nanokube.cli.errors import CLIError, add_source, format_errors
from nanokube.cli.printers import api_group, go_json, kind_string

FIELD_MANAGER = "kubectl-client-side-apply"
MAX_PATCH_RETRY = 5


def last_applied(live: dict) -> dict | None:
    text = ((live.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


# ---- three-way JSON merge patch (kinds without a strategic schema, as kubectl does) -----------

def merge_patch_diff(old: dict, new: dict) -> dict:
    """RFC 7386 patch turning `old` into `new`."""
    patch: dict = {}
    for key in old:
        if key not in new:
            patch[key] = None
    for key, value in new.items():
        if key not in old:
            patch[key] = value
        elif isinstance(value, dict) and isinstance(old[key], dict):
            sub = merge_patch_diff(old[key], value)
            if sub:
                patch[key] = sub
        elif value != old[key]:
            patch[key] = value
    return patch


def _filter_nulls(patch: dict, keep_nulls: bool) -> dict:
    out: dict = {}
    for key, value in patch.items():
        if isinstance(value, dict):
            sub = _filter_nulls(value, keep_nulls)
            if sub:
                out[key] = sub
        elif (value is None) == keep_nulls:
            out[key] = value
    return out


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for key, value in b.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def three_way_merge_patch(original: dict | None, modified: dict, current: dict) -> dict:
    """jsonmergepatch.CreateThreeWayJSONMergePatch: deletions since the last apply, plus
    additions and changes from live to the file."""
    deletions = _filter_nulls(merge_patch_diff(original or {}, modified), keep_nulls=True)
    changes = _filter_nulls(merge_patch_diff(current, modified), keep_nulls=False)
    return _merge(deletions, changes)


def compute_patch(original: dict | None, modified: dict, current: dict, group: str,
                  version: str, kind: str) -> tuple[dict, str]:
    """(patch, content type): strategic for kinds we know the schema of, JSON merge otherwise."""
    from nanokube.client import MERGE_PATCH, STRATEGIC_MERGE_PATCH
    try:
        from nanokube.api.schema import root_type
        type_name = root_type(group, version, kind)
    except (ImportError, KeyError):
        type_name = None
    if type_name is None:
        return three_way_merge_patch(original, modified, current), MERGE_PATCH
    from nanokube.api.patch import create_three_way_strategic_patch
    return (create_three_way_strategic_patch(original or {}, modified, current, type_name),
            STRATEGIC_MERGE_PATCH)


# ---- the command ------------------------------------------------------------------------------

def info_string(res, kind: str, name: str, namespace: str | None) -> str:
    """resource.Info.String(), which kubectl puts into some error messages."""
    return (f'Resource: "{res.group}/{res.version}, Resource={res.plural}", '
            f'GroupVersionKind: "{res.group}/{res.version}, Kind={kind}"\n'
            f'Name: "{name}", Namespace: "{namespace or ""}"')


async def mapping_for(client, obj: dict, source: str, namespace: str | None):
    """The resource and request path of a manifest's object (its own apiVersion)."""
    from nanokube.client import APIResource
    api_version, kind = obj.get("apiVersion", ""), obj["kind"]
    group = api_group(api_version)
    version = api_version.split("/")[-1]
    res = await client.resource(f"{kind}.{group}" if group else kind)
    if (res is None or res.group != group
            or await client.kind_of(res.group, res.plural) != kind):
        name = (obj.get("metadata") or {}).get("name", "")
        raise CLIError(f'resource mapping not found for name: "{name}" namespace: '
                       f'"{namespace or ""}" from "{source}": no matches for kind "{kind}" in '
                       f'version "{api_version}"\nensure CRDs are installed first')
    return APIResource(group, version, res.plural, res.namespaced)


def target_namespace(args, client, obj: dict, res) -> str | None:
    """The namespace of a namespaced object: its own, else -n's, else the context's."""
    if not res.namespaced:
        return None
    meta = obj.setdefault("metadata", {})
    own = meta.get("namespace")
    if own and args.namespace and own != args.namespace:
        raise CLIError(f'the namespace from the provided object "{own}" does not match the '
                       f'namespace "{args.namespace}". You must pass \'--namespace={own}\' to '
                       f'perform this operation.')
    meta["namespace"] = own or client.namespace
    return meta["namespace"]


async def apply_one(client, args, source: str, obj: dict) -> str:
    """Apply one object; the line to print (`service/x created|configured|unchanged`)."""
    res = await mapping_for(client, obj, source, client.namespace)
    ns = target_namespace(args, client, obj, res)
    name = (obj.get("metadata") or {}).get("name", "")
    kind = obj["kind"]
    label = f"{kind_string(kind, res.group)}/{name}"
    modified = with_last_applied(obj)
    params = {"fieldManager": FIELD_MANAGER, "fieldValidation": "Strict"}
    path = client.resource_path(res.group, res.version, res.plural, ns, name)
    try:
        current = await client.get(path)
    except StatusError as e:
        if e.code != 404:
            raise add_source(e, "retrieving current configuration of:\n"
                             f"{info_string(res, kind, name, ns)}\nfrom server for:", source)
        collection = client.resource_path(res.group, res.version, res.plural, ns)
        try:
            await client.create(collection, modified, **params)
        except StatusError as e2:
            raise add_source(e2, "creating", source)
        return f"{label} created"

    for attempt in range(MAX_PATCH_RETRY + 1):
        patch, content_type = compute_patch(last_applied(current), modified, current,
                                            res.group, res.version, kind)
        if not patch:
            return f"{label} unchanged"
        try:
            await client.patch(path, patch, content_type, **params)
            return f"{label} configured"
        except StatusError as e:
            if e.reason == "Conflict" and e.code == 409 and attempt < MAX_PATCH_RETRY:
                await asyncio.sleep(0.1 * (attempt + 1))
                current = await client.get(path)
                continue
            inner = add_source(e, "patching", source)
            raise add_source(inner, f"applying patch:\n{go_json(patch)}\nto:\n"
                             f"{info_string(res, kind, name, ns)}\nfor:", source)
    raise AssertionError("unreachable")


async def run(args, client) -> int:
    from nanokube.cli.manifests import load_manifests
    errors: list[Exception] = []
    try:
        objects = load_manifests(args.filename)
    except CLIError as e:
        errors.append(e)
        objects = []
    if not objects and not errors:
        errors.append(CLIError("no objects passed to apply"))
    for source, obj in objects:
        try:
            print(await apply_one(client, args, source, obj), flush=True)
        except (StatusError, CLIError) as e:
            errors.append(e)
    if errors:
        sys.stderr.write(format_errors(errors))
        return 1
    return 0


def main(args) -> int:
    from nanokube.cli.common import run_command
    return run_command(args, run)
