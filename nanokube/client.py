"""A small async Kubernetes API client (on nanokube.httpclient), for controllers and the CLI.

It speaks plain JSON over HTTPS, authenticates with what a kubeconfig holds (client certificate,
bearer token), turns every non-2xx answer into the server's own Status as a `StatusError`, streams
watches line by line and discovers resources from the legacy discovery documents.
"""
from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
import tempfile
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, NamedTuple
from urllib.parse import quote, urlsplit

import yaml

from nanokube.api.errors import StatusError

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


class APIResource(NamedTuple):
    group: str
    version: str
    plural: str
    namespaced: bool


class APIConnectionError(Exception):
    """The server could not be reached at all (no HTTP answer)."""

    def __init__(self, server: str, host: str, refused: bool, cause: str):
        super().__init__(cause)
        self.server = server
        self.host = host
        self.refused = refused


# ---- kubeconfig -----------------------------------------------------------------------------

@dataclass
class KubeConfig:
    """What one context of a kubeconfig says about reaching and authenticating to a server."""
    server: str
    namespace: str = ""
    ca_data: bytes | None = None
    cert_data: bytes | None = None
    key_data: bytes | None = None
    token: str | None = None
    insecure: bool = False
    tls_server_name: str = ""
    context: str = ""
    servers: tuple[str, ...] = ()     # every API server of the cluster (failover), `server` first


# A kubeconfig cluster extension (kubectl ignores it) naming more API servers of the cluster:
# extensions: [{name: nanokube.io/servers, extension: {servers: [https://a:6443, ...]}}]
SERVERS_EXTENSION = "nanokube.io/servers"


def _extension_servers(cluster: dict) -> list[str]:
    for ext in cluster.get("extensions") or []:
        if ext.get("name") == SERVERS_EXTENSION:
            return [str(u).rstrip("/") for u in (ext.get("extension") or {}).get("servers") or []]
    return []


def _named(items: list | None, name: str, what: str) -> dict:
    for item in items or []:
        if item.get("name") == name:
            return item.get(what) or {}
    raise ValueError(f'{what} "{name}" not found in kubeconfig')


def _data_or_file(section: dict, key: str, base_dir: str) -> bytes | None:
    """`<key>-data` (base64) wins over `<key>` (a path, relative to the kubeconfig's folder)."""
    data = section.get(key + "-data")
    if data:
        return base64.b64decode(data)
    path = section.get(key)
    if path:
        with open(os.path.join(base_dir, os.path.expanduser(path)), "rb") as f:
            return f.read()
    return None


def load_kubeconfig(path: str, context: str | None = None) -> KubeConfig:
    with open(path) as f:
        doc = yaml.safe_load(f) or {}
    base_dir = os.path.dirname(os.path.abspath(path))
    context = context or doc.get("current-context") or ""
    if not context:
        raise ValueError("current-context is not set in kubeconfig")
    ctx = _named(doc.get("contexts"), context, "context")
    cluster = _named(doc.get("clusters"), ctx.get("cluster", ""), "cluster")
    user = _named(doc.get("users"), ctx["user"], "user") if ctx.get("user") else {}
    server = cluster.get("server", "")
    if not server:
        raise ValueError(f'no server found for cluster "{ctx.get("cluster", "")}"')
    token = user.get("token")
    if not token and user.get("tokenFile"):
        with open(os.path.join(base_dir, user["tokenFile"])) as f:
            token = f.read().strip()
    return KubeConfig(
        server=server.rstrip("/"),
        namespace=ctx.get("namespace", "") or "",
        ca_data=_data_or_file(cluster, "certificate-authority", base_dir),
        cert_data=_data_or_file(user, "client-certificate", base_dir),
        key_data=_data_or_file(user, "client-key", base_dir),
        token=token,
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        tls_server_name=cluster.get("tls-server-name", "") or "",
        context=context,
        servers=tuple(dict.fromkeys([server.rstrip("/"), *_extension_servers(cluster)])),
    )


def ssl_context(cfg: KubeConfig) -> ssl.SSLContext:
    if cfg.ca_data and not cfg.insecure:
        # the cluster's CA replaces the system's roots, as in client-go
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cadata=cfg.ca_data.decode())
    else:
        ctx = ssl.create_default_context()
    if cfg.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cfg.cert_data and cfg.key_data:
        # the ssl module loads a certificate chain only from files
        with tempfile.TemporaryDirectory() as d:
            cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
            for name, data in ((cert, cfg.cert_data), (key, cfg.key_data)):
                fd = os.open(name, os.O_WRONLY | os.O_CREAT, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
            ctx.load_cert_chain(cert, key)
    return ctx


# ---- errors ---------------------------------------------------------------------------------

def status_error(code: int, body: bytes | str, content_type: str = JSON) -> StatusError:
    """Build the StatusError from the server's Status body, or a generic one like client-go's."""
    try:
        status = json.loads(body) if body else None
    except ValueError:
        status = None
    if isinstance(status, dict) and status.get("kind") == "Status":
        return StatusError(int(status.get("code") or code), status.get("reason", ""),
                           status.get("message", ""), status.get("details"))
    text = body.decode(errors="replace") if isinstance(body, bytes) else (body or "")
    reason, message = _GENERIC.get(code, ("", ""))
    if not message:
        message = f"an error on the server ({text.strip()!s}) has prevented the request from succeeding"
    return StatusError(code, reason, message)


# client-go's messages for non-Status error bodies (apierrors.NewGenericServerResponse)
_GENERIC = {
    400: ("BadRequest", "the server rejected our request for an unknown reason"),
    401: ("Unauthorized", "the server has asked for the client to provide credentials"),
    403: ("Forbidden", "the server does not allow access to the requested resource"),
    404: ("NotFound", "the server could not find the requested resource"),
    405: ("MethodNotAllowed", "the server does not allow this method on the requested resource"),
    409: ("Conflict", "the server reported a conflict"),
    410: ("Expired", "the server could not find the requested resource"),
    422: ("Invalid", "the server rejected our request due to an error in our request"),
    429: ("TooManyRequests", "the server has received too many requests and has asked us to try again later"),
    500: ("InternalError", ""),
    503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
    504: ("Timeout", "the server was unable to return a response in the time allotted, but may still be processing the request"),
}


def parse_warning(header: str) -> str:
    """`299 - "text"` -> text (RFC 7234 warn-text, as the API server sends it)."""
    parts = header.split(" ", 2)
    if len(parts) == 3 and parts[2].startswith('"'):
        try:
            return json.loads(parts[2])
        except ValueError:
            return parts[2].strip('"')
    return header


def _query_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


# ---- the client -----------------------------------------------------------------------------

class Client:
    def __init__(self, server: str, ssl_context: ssl.SSLContext | None = None,
                 token: str | None = None, namespace: str = "default",
                 warning_handler: Callable[[str], None] | None = None,
                 tls_server_name: str = "", servers: list[str] | tuple[str, ...] = ()):
        self.tls_server_name = tls_server_name or None
        self.server = server.rstrip("/")
        # Several API servers of one cluster: a request that gets no answer at all from the
        # current one moves on to the next (client-go leaves this to a load balancer).
        self.servers = list(dict.fromkeys([self.server, *(u.rstrip("/") for u in servers)]))
        self.namespace = namespace or "default"
        self._ssl = ssl_context
        self._token = token
        self._session = None
        self._resources: dict[str, APIResource] | None = None
        self._kinds: dict[tuple[str, str], str] = {}
        self.warning_handler = warning_handler
        self.ca_data: bytes | None = None     # the cluster CA, for what the client hands on

    @classmethod
    def from_kubeconfig(cls, path: str, context: str | None = None, **kwargs) -> "Client":
        cfg = load_kubeconfig(path, context)
        ctx = ssl_context(cfg) if cfg.server.startswith("https:") else None
        kwargs.setdefault("servers", cfg.servers)
        client = cls(cfg.server, ctx, cfg.token, cfg.namespace or "default",
                     tls_server_name=cfg.tls_server_name, **kwargs)
        client.ca_data = cfg.ca_data
        return client

    # ---- plumbing ---------------------------------------------------------------------------
    def _get_session(self):
        from nanokube.httpclient import Session
        if self._session is None or self._session.closed:
            headers = {"User-Agent": "nanokube/0.1"}
            if self._token:
                headers["Authorization"] = f"Bearer {self._token}"
            self._session = Session(self._ssl, headers)
        return self._session

    def _url(self, path: str, params: dict | None) -> str:
        url = self.server + path
        if params:
            query = "&".join(f"{quote(str(k), safe='')}={quote(_query_value(v), safe='')}"
                             for k, v in params.items() if v is not None)
            if query:
                url += ("&" if "?" in url else "?") + query
        return url

    def _warn(self, resp) -> None:
        if self.warning_handler is None:
            return
        for h in resp.headers.getall("Warning", []):
            self.warning_handler(parse_warning(h))

    async def _send(self, method: str, path: str, body: Any, content_type: str,
                    params: dict | None, accept: str):
        from nanokube.httpclient import HTTPError
        data = None
        headers = {"Accept": accept}
        if body is not None:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
            headers["Content-Type"] = content_type
        for attempt in range(len(self.servers)):
            url = self._url(path, params)
            try:
                return await self._get_session().request(method, url, data=data,
                                                         headers=headers,
                                                         server_hostname=self.tls_server_name)
            except HTTPError as e:
                if attempt + 1 < len(self.servers):
                    self._next_server()
                    continue
                cause = e.__cause__
                refused = isinstance(cause, ConnectionRefusedError) or (
                    isinstance(cause, HTTPError) and isinstance(cause.__cause__,
                                                                ConnectionRefusedError))
                host = urlsplit(self.server).netloc
                raise APIConnectionError(self.server, host, refused, str(e)) from e

    def _next_server(self) -> None:
        i = self.servers.index(self.server) if self.server in self.servers else -1
        self.server = self.servers[(i + 1) % len(self.servers)]

    async def request(self, method: str, path: str, body: Any = None,
                      content_type: str = JSON, params: dict | None = None,
                      accept: str = JSON) -> Any:
        """One API call; parsed JSON back, or StatusError for any non-2xx answer."""
        resp = await self._send(method, path, body, content_type, params, accept)
        async with resp:
            raw = await resp.read()
            self._warn(resp)
            if resp.status >= 300:
                raise status_error(resp.status, raw)
            return json.loads(raw) if raw else None

    # ---- verbs --------------------------------------------------------------------------------
    @staticmethod
    def resource_path(group: str, version: str, plural: str, namespace: str | None = None,
                      name: str | None = None, subresource: str | None = None) -> str:
        path = f"/apis/{group}/{version}" if group else f"/api/{version}"
        if namespace:
            path += f"/namespaces/{quote(namespace, safe='')}"
        path += f"/{plural}"
        if name:
            path += f"/{quote(name, safe='')}"
            if subresource:
                path += f"/{subresource}"
        return path

    async def get(self, path: str, **params) -> Any:
        return await self.request("GET", path, params=params)

    async def list(self, path: str, **params) -> dict:
        return await self.request("GET", path, params=params)

    async def create(self, path: str, body: dict, **params) -> dict:
        return await self.request("POST", path, body, params=params)

    async def update(self, path: str, body: dict, **params) -> dict:
        return await self.request("PUT", path, body, params=params)

    async def patch(self, path: str, body: Any, content_type: str = MERGE_PATCH,
                    **params) -> dict:
        return await self.request("PATCH", path, body, content_type=content_type, params=params)

    async def delete(self, path: str, body: dict | None = None, **params) -> Any:
        return await self.request("DELETE", path, body, params=params)

    async def watch(self, path: str, resource_version: str | None = None,
                    accept: str = JSON, **params) -> AsyncIterator[dict]:
        """Events {"type", "object"} as the server streams them. An ERROR event carrying a
        Status (e.g. 410 Expired) is raised as StatusError, as client-go's watchers do."""
        params = {"watch": "true", **params}
        if resource_version is not None:
            params["resourceVersion"] = resource_version
        resp = await self._send("GET", path, None, JSON, params, accept)
        async with resp:
            self._warn(resp)
            if resp.status >= 300:
                raise status_error(resp.status, await resp.read())
            buf = b""
            async for chunk in resp.content.iter_any():
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        yield _event(line)
            if buf.strip():
                yield _event(buf)

    async def stream(self, path: str, **params) -> AsyncIterator[bytes]:
        """The raw body of a GET as it arrives (pods/log with follow)."""
        resp = await self._send("GET", path, None, JSON, params, "*/*")
        async with resp:
            self._warn(resp)
            if resp.status >= 300:
                raise status_error(resp.status, await resp.read())
            async for chunk in resp.content.iter_any():
                yield chunk

    # ---- discovery ------------------------------------------------------------------------------
    async def resources(self, refresh: bool = False) -> dict[str, APIResource]:
        """kind, lower-case kind, plural, singular and short names (each also as `name.group`)
        -> APIResource. The core group wins, then groups in the server's order, preferred
        version first."""
        if self._resources is not None and not refresh:
            return self._resources
        gvs: list[tuple[str, str]] = []
        try:
            api = await self.get("/api")
            gvs += [("", v) for v in api.get("versions", [])]
        except StatusError as e:
            if e.code != 404:
                raise
        groups = await self.get("/apis")
        for g in groups.get("groups", []):
            preferred = (g.get("preferredVersion") or {}).get("version")
            versions = [v["version"] for v in g.get("versions", [])]
            versions.sort(key=lambda v: v != preferred)
            gvs += [(g["name"], v) for v in versions]
        docs = await asyncio.gather(*(self._resource_list(g, v) for g, v in gvs))
        mapping: dict[str, APIResource] = {}
        self._kinds = {}
        for (group, version), doc in zip(gvs, docs):
            for r in doc.get("resources", []):
                if "/" in r["name"]:
                    continue
                res = APIResource(group, version, r["name"], bool(r.get("namespaced")))
                self._kinds.setdefault((group, r["name"]), r.get("kind", ""))
                kind = r.get("kind", "")
                names = [r["name"], r.get("singularName") or kind.lower(), *r.get("shortNames", [])]
                for key in [kind, kind.lower(), *names]:
                    if not key:
                        continue
                    mapping.setdefault(key, res)
                    if group:
                        mapping.setdefault(f"{key}.{group}", res)
        self._resources = mapping
        return mapping

    async def _resource_list(self, group: str, version: str) -> dict:
        path = f"/apis/{group}/{version}" if group else f"/api/{version}"
        try:
            return await self.get(path)
        except StatusError:
            return {}   # a broken group must not hide the others, as in client-go

    async def resource(self, name: str) -> APIResource | None:
        mapping = await self.resources()
        return mapping.get(name) or mapping.get(name.lower())

    async def kind_of(self, group: str, plural: str) -> str:
        await self.resources()
        return self._kinds.get((group, plural), "")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()


def _event(line: bytes) -> dict:
    event = json.loads(line)
    obj = event.get("object") or {}
    if event.get("type") == "ERROR" and obj.get("kind") == "Status":
        raise StatusError(int(obj.get("code") or 500), obj.get("reason", ""),
                          obj.get("message", ""), obj.get("details"))
    return event
