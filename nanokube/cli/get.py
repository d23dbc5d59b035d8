"""`nanokube get`: server-side Tables printed as kubectl prints them, or objects as YAML/JSON."""
from __future__ import annotations

import sys

from nanokube.cli.printers import (TabWriter, kind_string, strip_managed_fields, table_rows,
                                   to_json, to_yaml)

TABLE_ACCEPT = ("application/json;as=Table;v=v1;g=meta.k8s.io,"
                "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")


class TablePrinter:
    """kubectl's human-readable printer across several tables (list, then watch events):
    the header once, before the first row, and again only when the columns change."""

    def __init__(self, wide: bool = False, with_namespace: bool = False):
        self.wide = wide
        self.with_namespace = with_namespace
        self.writer = TabWriter()
        self.last_columns: list | None = None
        self.printed_headers = False

    def format(self, table: dict) -> str:
        columns = table.get("columnDefinitions") or self.last_columns or []
        if columns != self.last_columns:
            self.last_columns = columns
            self.printed_headers = False
        rows = table.get("rows") or []
        if not rows:
            return ""
        headers = not self.printed_headers
        self.printed_headers = True
        return self.writer.format(table_rows(table, self.wide, self.with_namespace, headers,
                                             columns))


def as_table(obj: dict) -> dict:
    """A server that does not serve Tables: kubectl falls back to NAME and AGE."""
    from nanokube.api.tables import age
    items = obj.get("items") if "items" in obj else [obj]
    return {"kind": "Table", "columnDefinitions": [
        {"name": "Name", "type": "string", "format": "name", "priority": 0},
        {"name": "Age", "type": "string", "format": "", "priority": 0}],
        "metadata": obj.get("metadata", {}),
        "rows": [{"cells": [i["metadata"]["name"], age(i)], "object": i} for i in items]}


def list_object(obj: dict) -> dict:
    """`kubectl get -o yaml` of several objects: a v1 List whose items carry kind/apiVersion."""
    kind = obj.get("kind", "")
    kind = kind[:-4] if kind.endswith("List") else kind
    items = [strip_managed_fields({"apiVersion": obj.get("apiVersion", ""), "kind": kind, **i})
             for i in obj.get("items") or []]
    return {"apiVersion": "v1", "items": items, "kind": "List",
            "metadata": {"resourceVersion": ""}}


def split_kind_name(args) -> tuple[str, str | None]:
    kind, name = args.kind, args.name
    if "/" in kind and name is None:
        kind, name = kind.split("/", 1)
    return kind, name


def not_found_message(namespaced: bool, all_namespaces: bool, namespace: str) -> str:
    if namespaced and not all_namespaces:
        return f"No resources found in {namespace} namespace.\n"
    return "No resources found\n"


class ObjectPrinter:
    def __init__(self, output: str, kind: str, group: str):
        self.output, self.kind, self.group = output, kind, group
        self.count = 0

    def format(self, obj: dict) -> str:
        self.count += 1
        if self.output == "name":
            return f"{kind_string(self.kind, self.group)}/{obj['metadata']['name']}\n"
        obj = strip_managed_fields(obj)
        if self.output == "json":
            return to_json(obj)
        return ("---\n" if self.count > 1 else "") + to_yaml(obj)


async def run(args, client) -> int:
    from nanokube.cli.common import resolve
    kind_arg, name = split_kind_name(args)
    res, kind = await resolve(client, kind_arg)
    all_ns = bool(args.all_namespaces) and name is None
    ns = client.namespace if res.namespaced and not all_ns else None
    path = client.resource_path(res.group, res.version, res.plural, ns, name)
    collection = client.resource_path(res.group, res.version, res.plural, ns)
    params = {}
    if args.selector:
        params["labelSelector"] = args.selector
    if args.field_selector:
        params["fieldSelector"] = args.field_selector
    out = sys.stdout

    if args.output in (None, "", "wide"):
        printer = TablePrinter(args.output == "wide", all_ns and res.namespaced)
        table = await client.request("GET", path, params=params, accept=TABLE_ACCEPT)
        if table.get("kind") != "Table":
            table = as_table(table)
        text = printer.format(table)
        out.write(text)
        out.flush()
        if not text and not args.watch:
            sys.stderr.write(not_found_message(res.namespaced, all_ns, client.namespace))
        if args.watch:
            await watch(client, collection, name, table, params, printer.format)
        return 0

    printer = ObjectPrinter(args.output, kind, res.group)
    obj = await client.get(path, **params)
    if name is not None:
        out.write(printer.format({"apiVersion": obj.get("apiVersion"), "kind": kind, **obj}))
    elif args.output == "name":
        for item in obj.get("items") or []:
            out.write(printer.format(item))
        if not obj.get("items") and not args.watch:
            sys.stderr.write(not_found_message(res.namespaced, all_ns, client.namespace))
    elif args.watch:
        for item in list_object(obj)["items"]:
            out.write(printer.format(item))
    else:
        out.write(printer.format(list_object(obj)))
    out.flush()
    if args.watch:
        await watch(client, collection, name, obj, params, printer.format, accept="application/json")
    return 0


async def watch(client, collection: str, name: str | None, first: dict, params: dict,
                fmt, accept: str = TABLE_ACCEPT) -> None:
    """kubectl get -w: after the list, events from its resourceVersion; for one name, a watch
    from 0 on that name whose first (synthetic ADDED) event is skipped."""
    params = dict(params)
    if name is not None:
        selector = f"metadata.name={name}"
        params["fieldSelector"] = (params["fieldSelector"] + "," + selector
                                   if params.get("fieldSelector") else selector)
        rv = "0"
    else:
        rv = (first.get("metadata") or {}).get("resourceVersion") or "0"
    skip_first = name is not None
    async for event in client.watch(collection, resource_version=rv, accept=accept, **params):
        if event.get("type") == "BOOKMARK":
            continue
        if skip_first:
            skip_first = False
            continue
        sys.stdout.write(fmt(event["object"]))
        sys.stdout.flush()


def main(args) -> int:
    from nanokube.cli.common import run_command
    return run_command(args, run)
