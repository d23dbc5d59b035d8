"""The generic REST machinery: one handler for every kind, as kube-apiserver's endpoints package.

Request flow: authenticate -> route (group, version, namespace, resource, name, subresource)
-> decode and check the body -> convert to the storage version -> ResourceStorage
-> convert back to the request's version -> JSON or a Table.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from nanokube.api import errors as E
from nanokube.api import selectors as sel
from nanokube.api import proxy, subresources
from nanokube.api.decode import decode_object
from nanokube.api.exec import exec_
from nanokube.api.portforward import port_forward
from nanokube.api.storage import ResourceStorage
from nanokube.api.tables import table
from nanokube.registry import authorization
from nanokube.registry.base import Strategy

MAX_BODY = 3 * 1024 * 1024
JSON = "application/json"


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def json_response(obj: Any, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(body=dumps(obj), status=status, content_type=JSON, headers=headers)


def status_response(err: E.StatusError, warnings: list[str] | None = None) -> web.Response:
    headers = dict(err.headers)
    resp = json_response(err.to_status(), err.code, headers)
    for w in warnings or ():
        resp.headers.add("Warning", warning_header(w))
    return resp


def warning_header(text: str) -> str:
    return '299 - ' + json.dumps(text)


def parse_bool(value: str | None) -> bool:
    """Go's strconv.ParseBool, as query parameters are parsed."""
    if value is None:
        return False
    if value in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if value in ("0", "f", "F", "false", "FALSE", "False", ""):
        return False
    raise E.bad_request(f'strconv.ParseBool: parsing "{value}": invalid syntax')


@dataclass
class Route:
    group: str
    version: str
    namespace: str | None
    plural: str
    name: str | None
    subresource: str


def parse_path(path: str) -> Route | None:
    """/api/v1/..., /apis/G/V/...: the resource part of a URL."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    if not rest:
        return None
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3 and not (
            len(rest) == 3 and rest[2] in ("status", "finalize") and group == ""):
        namespace, rest = rest[1], rest[2:]
    plural = rest[0]
    name = rest[1] if len(rest) > 1 else None
    sub = "/".join(rest[2:])
    return Route(group, version, namespace, plural, name, sub)


def _accepts_table(accept: str) -> bool:
    for part in accept.split(","):
        media = part.strip()
        params = dict(p.strip().split("=", 1) for p in media.split(";")[1:] if "=" in p)
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io":
            return True
        base = media.split(";")[0].strip()
        if base in (JSON, "*/*", "application/*") and "as" not in params:
            return False
    return False


def _remove_path(obj: Any, path: str) -> None:
    """Drop an unknown field given as the API reports it: spec.ports[0].nodeport."""
    tokens: list[Any] = []
    for part in path.split("."):
        while "[" in part:
            head, _, rest = part.partition("[")
            if head:
                tokens.append(head)
            idx, _, part = rest.partition("]")
            tokens.append(int(idx))
        if part:
            tokens.append(part)
    cur = obj
    for tok in tokens[:-1]:
        try:
            cur = cur[tok]
        except (KeyError, IndexError, TypeError):
            return
    if isinstance(cur, dict):
        cur.pop(tokens[-1], None)


class ApiHandler:
    """Serves every resource of the registry over one storage per kind."""

    def __init__(self, api):
        self.api = api  # nanokube.api.server.ApiServer: registry, storages, schema hooks

    # ---- helpers -------------------------------------------------------------------------
    def _strategy(self, route: Route) -> Strategy:
        s = self.api.registry.by_resource(route.group, route.plural)
        if s is None or route.version not in s.served_versions:
            raise E.StatusError(404, "NotFound", "the server could not find the requested "
                                "resource", {})
        return s

    def _storage(self, s: Strategy) -> ResourceStorage:
        return self.api.storages[(s.group, s.plural)]

    def _out(self, s: Strategy, obj: dict, version: str) -> dict:
        out = s.convert_to_version(obj, version)
        out["apiVersion"] = f"{s.group}/{version}" if s.group else version
        out["kind"] = s.kind
        return out

    def _warnings(self, s: Strategy, version: str) -> list[str]:
        w = s.deprecated_versions.get(version)
        return [w] if w else []

    async def _read_body(self, request: web.Request) -> bytes:
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise E.too_large(f"limit is {MAX_BODY}")
        data = bytearray()
        async for chunk in request.content.iter_chunked(65536):
            data += chunk
            if len(data) > MAX_BODY:
                raise E.too_large(f"limit is {MAX_BODY}")
        return bytes(data)

    def _check_fields(self, s: Strategy, version: str, obj: dict, dups: list[str],
                      mode: str, warnings: list[str]) -> None:
        """Type errors always fail; unknown fields as fieldValidation says (KEP-2885)."""
        from nanokube.api import schema
        from nanokube.api.typecheck import type_error
        gv = f"{s.group}/{version}" if s.group else version
        bad_type = type_error(s.group, version, s.kind, obj)
        if bad_type:
            raise E.bad_request(f'{s.kind} in version "{gv}" cannot be handled as a {s.kind}: '
                                f"{bad_type}")
        unknown = schema.unknown_fields(s.group, version, s.kind, obj)
        if mode == "Ignore":
            for path in unknown:
                _remove_path(obj, path)
            return
        problems = [f'duplicate field "{d}"' for d in dups]
        for path in unknown:
            text = f'unknown field "{path}"'
            hint = schema.case_hint(s.group, version, s.kind, path)
            problems.append(f"{text} ({hint})" if hint else text)
        if not problems:
            return
        if mode == "Strict":
            raise E.bad_request(f'{s.kind} in version "{gv}" cannot be handled as a {s.kind}: '
                                f'strict decoding error: {", ".join(problems)}')
        warnings.extend(problems)
        for path in unknown:
            _remove_path(obj, path)

    def _field_validation(self, request: web.Request) -> str:
        mode = request.query.get("fieldValidation", "Warn") or "Warn"
        if mode not in ("Strict", "Warn", "Ignore"):
            raise E.bad_request(f"fieldValidation parameter unsupported: {mode}")
        return mode

    async def _decode(self, request: web.Request, s: Strategy, route: Route,
                      warnings: list[str]) -> dict:
        data = await self._read_body(request)
        obj, dups = decode_object(data, request.headers.get("Content-Type", JSON))
        gv = f"{s.group}/{route.version}" if s.group else route.version
        obj.setdefault("apiVersion", gv)
        obj.setdefault("kind", s.kind)
        if obj["apiVersion"] != gv or obj["kind"] != s.kind:
            raise E.bad_request(
                f"the API version in the data ({obj['apiVersion']}) does not match the expected "
                f"API version ({gv})" if obj["apiVersion"] != gv else
                f"the kind in the data ({obj['kind']}) does not match the expected kind "
                f"({s.kind})")
        if not isinstance(obj.get("metadata", {}), dict):
            raise E.bad_request(f'{s.kind} in version "{gv}" cannot be handled as a {s.kind}: '
                                'json: cannot unmarshal into Go struct field .metadata of type '
                                'v1.ObjectMeta')
        self._check_fields(s, route.version, obj, dups, self._field_validation(request),
                           warnings)
        return obj

    def _check_namespace(self, s: Strategy, route: Route, obj: dict) -> None:
        meta = obj.setdefault("metadata", {})
        if s.namespaced:
            ns = meta.get("namespace")
            if ns and route.namespace and ns != route.namespace:
                raise E.bad_request("the namespace of the provided object does not match the "
                                    "namespace sent on the request")
            if not route.namespace and not ns:
                raise E.bad_request("the namespace of the object is not set")

    # ---- dispatch ------------------------------------------------------------------------
    async def handle(self, request: web.Request, route: Route) -> web.StreamResponse:
        s = self._strategy(route)
        warnings = self._warnings(s, route.version)
        try:
            resp = await self._dispatch(request, route, s, warnings)
        except E.StatusError as err:
            return status_response(err, warnings)
        for w in warnings:
            resp.headers.add("Warning", warning_header(w))
        return resp

    async def _dispatch(self, request, route, s, warnings) -> web.StreamResponse:
        m = request.method
        if getattr(s, "create_only", False):
            return await authorization.serve(request, route, s)     # reviews: never stored
        if proxy.is_proxy(s.group, s.plural, route.subresource) and route.name and \
                bool(route.namespace) == bool(s.namespaced):
            return await proxy.serve(request, self.api, route.plural, route.namespace,
                                     route.name)
        if route.subresource and route.subresource != "status":
            if subresources.supports(s.group, s.plural, route.subresource) and route.name:
                return await self._subresource(request, route, s)
            if not (route.plural == "namespaces" and route.subresource == "finalize"):
                raise E.StatusError(404, "NotFound", "the server could not find the requested "
                                    "resource", {})
        if route.subresource == "status" and not s.has_status:
            raise E.StatusError(404, "NotFound", "the server could not find the requested "
                                "resource", {})
        if s.namespaced is False and route.namespace:
            raise E.StatusError(404, "NotFound", "the server could not find the requested "
                                "resource", {})
        if route.name is None:
            if m == "GET":
                if parse_bool(request.query.get("watch")):
                    return await self.watch(request, route, s)
                return await self.list(request, route, s)
            if m == "POST":
                return await self.create(request, route, s, warnings)
            if m == "DELETE":
                return await self.delete_collection(request, route, s)
            raise E.method_not_allowed(m, s.plural)
        if m == "GET":
            return await self.get(request, route, s)
        if m == "PUT":
            return await self.update(request, route, s, warnings)
        if m == "PATCH":
            return await self.patch(request, route, s, warnings)
        if m == "DELETE":
            return await self.delete(request, route, s)
        if m == "POST":
            raise E.method_not_allowed(m, s.plural)
        raise E.method_not_allowed(m, s.plural)

    async def _subresource(self, request, route, s) -> web.StreamResponse:
        storage = self._storage(s)
        sub = route.subresource
        if sub == "binding":
            if request.method != "POST":
                raise E.method_not_allowed(request.method, "pods/binding")
            binding, _ = decode_object(await self._read_body(request),
                                       request.headers.get("Content-Type", JSON))
            return await subresources.bind(storage, route.namespace, route.name, binding)
        if sub == "token":
            if request.method != "POST":
                raise E.method_not_allowed(request.method, "serviceaccounts/token")
            body, _ = decode_object(await self._read_body(request),
                                    request.headers.get("Content-Type", JSON))
            return await subresources.token(storage, self.api.token_issuer, route.namespace,
                                            route.name, body)
        if sub == "log":
            if request.method != "GET":
                raise E.method_not_allowed(request.method, "pods/log")
            nodes = self.api.storages[("", "nodes")]
            return await subresources.logs(request, storage, nodes, route.namespace, route.name)
        if sub == "exec":
            nodes = self.api.storages[("", "nodes")]
            return await exec_(request, storage, nodes, route.namespace, route.name)
        if sub == "portforward":
            nodes = self.api.storages[("", "nodes")]
            return await port_forward(request, storage, nodes, route.namespace, route.name)
        body = await self._read_body(request) if request.method != "GET" else b""
        return await subresources.scale(request, storage, route.namespace, route.name, body)

    # ---- verbs ---------------------------------------------------------------------------
    def _respond_obj(self, request, s: Strategy, obj: dict, version: str,
                     status: int = 200) -> web.Response:
        out = self._out(s, obj, version)
        if _accepts_table(request.headers.get("Accept", "")):
            return json_response(self._table(request, s, [out], {
                "resourceVersion": obj["metadata"].get("resourceVersion", "")}), status)
        return json_response(out, status)

    def _table(self, request, s: Strategy, objs: list[dict], list_meta: dict,
               headers: bool = True) -> dict:
        include = request.query.get("includeObject", "Metadata")
        cols = [c.definition() for c in s.columns] if headers else []
        rows = []
        for obj in objs:
            rows.append((s.table_row(obj), obj))
        return table(cols, rows, include, list_meta)

    async def get(self, request, route, s) -> web.Response:
        obj = await self._storage(s).get(route.namespace, route.name)
        return self._respond_obj(request, s, obj, route.version)

    async def create(self, request, route, s, warnings) -> web.Response:
        obj = await self._decode(request, s, route, warnings)
        self._check_namespace(s, route, obj)
        obj = s.convert_from_version(obj, route.version)
        warnings.extend(s.warnings(obj))
        dry = "All" in request.query.getall("dryRun", [])
        created = await self._storage(s).create(route.namespace or obj["metadata"].get(
            "namespace"), obj, dry_run=dry)
        return self._respond_obj(request, s, created, route.version, 201)

    async def update(self, request, route, s, warnings) -> web.Response:
        obj = await self._decode(request, s, route, warnings)
        self._check_namespace(s, route, obj)
        obj = s.convert_from_version(obj, route.version)
        storage = self._storage(s)
        old = await storage.get(route.namespace, route.name)
        warnings.extend(s.warnings(obj, old))
        dry = "All" in request.query.getall("dryRun", [])
        updated = await storage.update(route.namespace, route.name, obj, route.subresource,
                                       old=old, dry_run=dry)
        return self._respond_obj(request, s, updated, route.version)

    async def patch(self, request, route, s, warnings) -> web.Response:
        from nanokube.api import patch as P
        from nanokube.api import schema
        ctype = request.headers.get("Content-Type", "").split(";")[0].strip()
        data = await self._read_body(request)
        mode = self._field_validation(request)
        type_name = schema.root_type(s.group, route.version, s.kind)
        storage = self._storage(s)
        if ctype == "application/apply-patch+yaml":
            patch_obj, _ = decode_object(data, "application/yaml")
        else:
            try:
                patch_obj = json.loads(data)
            except ValueError as e:
                raise E.bad_request(f"error decoding patch: {e}") from None
        if ctype == "application/json-patch+json":
            if not isinstance(patch_obj, list):
                raise E.bad_request("json: cannot unmarshal object into Go value of type "
                                    "jsonpatch.Patch")
        elif not isinstance(patch_obj, dict):
            raise E.bad_request("patch body must be a JSON object")

        def mutate(current: dict) -> dict:
            cur = self._out(s, current, route.version)
            try:
                if ctype == "application/json-patch+json":
                    new = P.json_patch(cur, patch_obj)
                elif ctype == "application/merge-patch+json":
                    new = P.json_merge_patch(cur, patch_obj)
                elif ctype == "application/strategic-merge-patch+json":
                    new = P.strategic_merge_patch(cur, patch_obj, type_name)
                elif ctype == "application/apply-patch+yaml":
                    new = P.apply_patch(cur, patch_obj, type_name)
                else:
                    raise E.StatusError(415, "UnsupportedMediaType",
                                        "the body of the request was in an unknown format - "
                                        "accepted media types include: application/json-patch+"
                                        "json, application/merge-patch+json, application/apply-"
                                        "patch+yaml, application/strategic-merge-patch+json")
            except P.PatchError as e:
                reason = {422: "Invalid", 413: "RequestEntityTooLarge"}.get(e.code, "BadRequest")
                raise E.StatusError(e.code, reason, e.message) from None
            if not isinstance(new, dict):
                raise E.bad_request("the patch did not produce an object")
            self._check_fields(s, route.version, new, [], mode, warnings)
            new.setdefault("metadata", {})
            return s.convert_from_version(new, route.version)

        dry = "All" in request.query.getall("dryRun", [])
        try:
            updated = await storage.guaranteed_update(route.namespace, route.name, mutate,
                                                      route.subresource, dry_run=dry)
        except E.StatusError as e:
            if e.code != 404 or ctype != "application/apply-patch+yaml" or route.subresource:
                raise
            obj = copy.deepcopy(patch_obj)
            self._check_fields(s, route.version, obj, [], mode, warnings)
            obj.setdefault("metadata", {}).setdefault("name", route.name)
            obj = s.convert_from_version(obj, route.version)
            created = await storage.create(route.namespace, obj, dry_run=dry)
            return self._respond_obj(request, s, created, route.version, 201)
        return self._respond_obj(request, s, updated, route.version)

    async def _delete_options(self, request) -> dict:
        data = await self._read_body(request) if request.can_read_body else b""
        opts: dict = {}
        if data.strip():
            try:
                opts = json.loads(data)
            except ValueError as e:
                raise E.bad_request(f"error decoding DeleteOptions: {e}") from None
            if not isinstance(opts, dict):
                raise E.bad_request("DeleteOptions must be an object")
        for key in ("propagationPolicy", "gracePeriodSeconds"):
            if key in request.query:
                opts[key] = request.query[key]
        if "orphanDependents" in request.query:
            opts["orphanDependents"] = parse_bool(request.query["orphanDependents"])
        return opts

    async def delete(self, request, route, s) -> web.Response:
        opts = await self._delete_options(request)
        dry = "All" in request.query.getall("dryRun", [])
        obj, now = await self._storage(s).delete(route.namespace, route.name, opts, dry)
        code = 200 if now else 202
        if s.return_deleted_object or not now:
            return json_response(self._out(s, obj, route.version), code)
        meta = obj["metadata"]
        details = {"name": meta["name"], "group": s.group, "kind": s.plural,
                   "uid": meta.get("uid", "")}
        if not s.group:
            del details["group"]
        return json_response({"kind": "Status", "apiVersion": "v1", "metadata": {},
                              "status": "Success", "details": details}, code)

    async def delete_collection(self, request, route, s) -> web.Response:
        opts = await self._delete_options(request)
        dry = "All" in request.query.getall("dryRun", [])
        items = await self._select(request, route, s)
        storage = self._storage(s)
        deleted = []
        for obj in items:
            meta = obj["metadata"]
            try:
                gone, _ = await storage.delete(meta.get("namespace"), meta["name"], opts, dry)
            except E.StatusError as e:
                if e.code == 404:
                    continue
                raise
            deleted.append(self._out(s, gone, route.version))
        return json_response({"kind": f"{s.kind}List",
                              "apiVersion": f"{s.group}/{route.version}" if s.group
                              else route.version,
                              "metadata": {}, "items": deleted})

    # ---- list & watch ----------------------------------------------------------------------
    def _selectors(self, request, s: Strategy):
        labels = sel.parse_label_selector(request.query.get("labelSelector", ""))
        fields = sel.parse_field_selector(request.query.get("fieldSelector", ""))
        allowed = {"metadata.name", "metadata.namespace"}
        for req in fields.requirements:
            key = req[0] if isinstance(req, tuple) else getattr(req, "field", None)
            if key not in allowed and key not in self._field_keys(s):
                raise E.bad_request(f'field label not supported: {key}')
        return labels, fields

    def _field_keys(self, s: Strategy) -> set[str]:
        """The selectable fields a kind declares, read off a skeleton object once."""
        keys = getattr(s, "_field_keys_cache", None)
        if keys is None:
            skeleton = {"metadata": {}, "spec": {}, "status": {}, "involvedObject": {},
                        "source": {}}
            try:
                keys = set(s.field_labels(skeleton))
            except Exception:  # a strategy that cannot read a skeleton: accept its fields
                keys = set()
            s._field_keys_cache = keys
        return keys

    def _fields_of(self, s: Strategy, obj: dict) -> dict[str, str]:
        meta = obj.get("metadata", {})
        f = {"metadata.name": meta.get("name", ""),
             "metadata.namespace": meta.get("namespace", "")}
        f.update(s.field_labels(obj))
        return f

    def _matches(self, s: Strategy, labels, fields, obj: dict) -> bool:
        if labels is not None and not labels.matches(obj["metadata"].get("labels") or {}):
            return False
        if fields is not None and not fields.matches(self._fields_of(s, obj)):
            return False
        return True

    async def _select(self, request, route, s) -> list[dict]:
        labels, fields = self._selectors(request, s)
        name = fields.only_name()
        storage = self._storage(s)
        if name and (route.namespace or not s.namespaced):
            try:    # metadata.name=X names one key: a get, not a list
                objs = [await storage.get(route.namespace, name)]
            except E.StatusError:
                objs = []
        else:
            objs, _, _, _ = await storage.list(route.namespace)
        return [o for o in objs if self._matches(s, labels, fields, o)]

    async def list(self, request, route, s) -> web.Response:
        labels, fields = self._selectors(request, s)
        storage = self._storage(s)
        limit = int(request.query.get("limit") or 0)
        cont = request.query.get("continue") or ""
        revision, start_after = 0, ""
        if cont:
            revision, start_after = self._decode_continue(cont)
        else:
            rv = request.query.get("resourceVersion", "")
            if rv and request.query.get("resourceVersionMatch") == "Exact":
                revision = self._parse_rv(rv)
        filtered = bool(request.query.get("labelSelector") or request.query.get("fieldSelector"))
        items: list[dict] = []
        more = False
        last_key = start_after
        list_rev = revision
        while True:
            batch, list_rev, more, last_key = await storage.list(
                route.namespace, list_rev, 0 if not limit else limit, last_key)
            items.extend(o for o in batch if not filtered or
                         self._matches(s, labels, fields, o))
            if not limit or not more or len(items) >= limit:
                break
        meta: dict = {"resourceVersion": str(list_rev)}
        if limit and (more or len(items) > limit):   # a filtered batch may overshoot the limit
            items = items[:limit]
            last = items[-1]["metadata"] if items else None
            if last is not None:
                last_key = storage.key(last.get("namespace"), last["name"])
            meta["continue"] = self._encode_continue(list_rev, last_key)
        version = route.version
        if _accepts_table(request.headers.get("Accept", "")):
            outs = [self._out(s, o, version) for o in items]
            return json_response(self._table(request, s, outs, meta))
        gv = f"{s.group}/{version}" if s.group else version
        body = {"kind": f"{s.kind}List", "apiVersion": gv, "metadata": meta,
                "items": [self._out(s, o, version) for o in items]}
        return json_response(body)

    @staticmethod
    def _encode_continue(rev: int, key: str) -> str:
        return base64.urlsafe_b64encode(dumps({"v": "meta.k8s.io/v1", "rv": rev,
                                               "start": key})).decode()

    @staticmethod
    def _decode_continue(token: str) -> tuple[int, str]:
        try:
            data = json.loads(base64.urlsafe_b64decode(token.encode()))
            return int(data["rv"]), str(data["start"])
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise E.bad_request("continue key is not valid: incorrect encoded start "
                                "resourceVersion (version meta.k8s.io/v1)") from None

    @staticmethod
    def _parse_rv(rv: str) -> int:
        try:
            n = int(rv)
            if n < 0:
                raise ValueError
            return n
        except ValueError:
            raise E.StatusError(400, "BadRequest", f'resourceVersion: Invalid value: "{rv}": '
                                'must be a non-negative integer') from None

    async def watch(self, request, route, s) -> web.StreamResponse:
        labels, fields = self._selectors(request, s)
        storage = self._storage(s)
        rv = request.query.get("resourceVersion", "")
        bookmarks = parse_bool(request.query.get("allowWatchBookmarks"))
        timeout = request.query.get("timeoutSeconds")
        as_table = _accepts_table(request.headers.get("Accept", ""))
        initial = parse_bool(request.query.get("sendInitialEvents")) if \
            "sendInitialEvents" in request.query else rv in ("", "0")
        resp = web.StreamResponse(headers={"Content-Type": JSON,
                                           "Transfer-Encoding": "chunked"})
        await resp.prepare(request)
        state = {"headers": True}

        def encode_event(typ: str, obj: dict) -> bytes:
            out = self._out(s, obj, route.version)
            if as_table:
                out = self._table(request, s, [out], {"resourceVersion": obj["metadata"].get(
                    "resourceVersion", "")}, headers=state["headers"])
                state["headers"] = False
            return dumps({"type": typ, "object": out}) + b"\n"

        async def stream() -> None:
            after = 0
            if initial:
                objs, after, _, _ = await storage.list(route.namespace)
                chunk = bytearray()
                for o in objs:
                    if self._matches(s, labels, fields, o):
                        chunk += encode_event("ADDED", o)
                if chunk:
                    await resp.write(bytes(chunk))
                if "sendInitialEvents" in request.query:
                    await resp.write(self._bookmark(s, route, after, initial_end=True))
            else:
                after = self._parse_rv(rv)
            await self._stream_changes(resp, storage, route, s, labels, fields, after,
                                       encode_event, bookmarks)

        try:
            if timeout:
                await asyncio.wait_for(stream(), float(timeout))
            else:
                await stream()
        except asyncio.TimeoutError:
            pass
        except E.StatusError as err:
            await resp.write(dumps({"type": "ERROR", "object": err.to_status()}) + b"\n")
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        try:
            await resp.write_eof()
        except ConnectionResetError:
            pass
        return resp

    def _bookmark(self, s: Strategy, route: Route, rev: int, initial_end: bool = False) -> bytes:
        meta: dict = {"resourceVersion": str(rev)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        gv = f"{s.group}/{route.version}" if s.group else route.version
        return dumps({"type": "BOOKMARK", "object": {"kind": s.kind, "apiVersion": gv,
                                                     "metadata": meta}}) + b"\n"

    async def _stream_changes(self, resp, storage, route, s, labels, fields, after,
                              encode_event, bookmarks) -> None:
        """Write events after `after`; with bookmarks, a BOOKMARK every quiet minute."""
        from nanokube.store import CompactedError
        queue: asyncio.Queue = asyncio.Queue(maxsize=1000)

        async def pump() -> None:
            try:
                async for item in storage.watch(route.namespace, after):
                    await queue.put(item)
            except CompactedError as e:
                await queue.put(e)
            await queue.put(None)

        pumper = asyncio.create_task(pump())
        last_rev = after
        try:
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), 60 if bookmarks else None)
                except asyncio.TimeoutError:
                    await resp.write(self._bookmark(s, route, last_rev))
                    continue
                if item is None:
                    return
                if isinstance(item, CompactedError):
                    raise E.gone(f"too old resource version: {after} ({item.compacted})")
                typ, obj, prev = item
                last_rev = int(obj["metadata"]["resourceVersion"])
                now = self._matches(s, labels, fields, obj)
                before = prev is not None and self._matches(s, labels, fields, prev)
                if typ == "MODIFIED" and now != before:
                    # Moving into or out of the selection is an ADDED or DELETED to this watcher.
                    typ = "ADDED" if now else "DELETED"
                    now = True
                if now:
                    await resp.write(encode_event(typ, obj))
        finally:
            pumper.cancel()
