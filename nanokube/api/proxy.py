"""The proxy subresources: services/proxy, pods/proxy and nodes/proxy, as kube-apiserver
serves them.

    /api/v1/namespaces/NS/services/[SCHEME:]NAME[:PORT]/proxy/PATH    a ready endpoint
    /api/v1/namespaces/NS/pods/[SCHEME:]NAME[:PORT]/proxy/PATH        the pod's IP
    /api/v1/nodes/NAME[:PORT]/proxy/PATH                              the node agent

Choosing the backend follows kube-apiserver's ResourceLocation: SCHEME is http (default) or
https; a service's PORT is a port number (mapped to the service port's name) or a port name,
and a random ready endpoint address of the Endpoints subsets with that port name is taken, if
it still belongs to its pod; a pod's default PORT is its first container's first port.

How the bytes get there: kube-apiserver dials the pod IP. Ours runs in the host namespace, which
has no route to pod addresses, so it asks the agent of the pod's node for a TCP tunnel to
podIP:port (POST /tunnel/IP/PORT with `Upgrade: tcp` on the agent's :10250, answered 101, then
plain bytes: nanokube/node/tunnel.py). Over that connection this module speaks HTTP/1.1 itself,
one request per tunnel (`Connection: close` towards the pod), streaming the request body up and
the answer down without holding either whole. The design keeps the agent trivial (a byte
splice, no HTTP client, nothing buffered) and makes every HTTP feature an API-server concern:
TLS to `https:` backends is started over the tunnel (unverified, as kube-apiserver's proxy
transport does), and an Upgrade request (WebSocket) is written as is and, once the pod answers
101, both connections are spliced. Nodes are on the LAN and dialled directly.

What reaches the pod (upgradeaware.go and the proxy transport): the path after /proxy and the
query string unchanged, the client's headers except hop-by-hop ones and Authorization (which
the API server consumed), the original Host, X-Forwarded-For (appended) and X-Forwarded-Uri (the
path the client asked for). A GET/HEAD of .../proxy with no path is redirected (301) to
.../proxy/. Answers come back with their status and headers, minus hop-by-hop and CORS headers;
a redirect to the backend itself is rewritten under the proxy path. kube-apiserver also rewrites
links inside text/html answers; this proxy passes bodies unchanged.
"""
from __future__ import annotations

import asyncio
import ipaddress
import random
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

from nanokube.api import errors as E
from nanokube.api.hijack import hijacked
from nanokube.api.subresources import KUBELET_PORT, _node_ip
from nanokube.goerrors import dial_error
from nanokube.httpclient import HTTPError, Response as UpstreamResponse, Session
from nanokube.node.tunnel import UPGRADE
from nanokube.splice import CHUNK, splice

PROXY_KINDS = ("services", "pods", "nodes")
VALID_SCHEMES = ("", "http", "https")
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
CONNECT_TIMEOUT = 5.0
# hop-by-hop headers (RFC 9110 section 7.6.1), never forwarded either way
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authenticate",
              "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"}
CORS_HEADERS = {"access-control-allow-credentials", "access-control-allow-headers",
                "access-control-allow-methods", "access-control-allow-origin"}


class ProxyError(Exception):
    """The backend could not be reached; the text is Go's dial error."""


@dataclass
class Target:
    scheme: str            # "http" or "https"
    host: str              # the pod's (or node's) address
    port: int
    via: str | None        # the node agent that dials host:port, None: dial directly


def is_proxy(group: str, plural: str, subresource: str) -> bool:
    return group == "" and plural in PROXY_KINDS and \
        (subresource == "proxy" or subresource.startswith("proxy/"))


def split_scheme_name_port(id: str) -> tuple[str, str, str] | None:
    """[scheme:]name[:port] as utilnet.SplitSchemeNamePort reads it; None when invalid.
    Two parts are name:port, so `https:web` is the service "https" on port "web"."""
    parts = id.split(":")
    if len(parts) == 1:
        scheme, name, port = "", parts[0], ""
    elif len(parts) == 2:
        scheme, name, port = "", parts[0], parts[1]
    elif len(parts) == 3:
        scheme, name, port = parts
    else:
        return None
    if not name or scheme not in VALID_SCHEMES:
        return None
    return scheme, name, port


# ---- choosing the backend ------------------------------------------------------------------

def service_port_name(service: dict, port: str) -> str:
    """A port number becomes the name of the service port it is (names pass through)."""
    if not (port.isascii() and port.isdigit()):
        return port
    for p in (service.get("spec") or {}).get("ports") or []:
        if p.get("port") == int(port):
            return p.get("name") or ""
    raise E.StatusError(503, "ServiceUnavailable", f"no service port {int(port)} found for "
                        f'service "{service["metadata"]["name"]}"')


def _valid_address(addr: dict, pods: dict[str, dict]) -> dict | None:
    """The endpoint's pod, if the address still is one of its IPs (isValidAddress)."""
    ref = addr.get("targetRef") or {}
    if ref.get("kind") != "Pod":
        return None
    pod = pods.get(ref.get("name", ""))
    if pod is None:
        return None
    status = pod.get("status") or {}
    ips = {p.get("ip") for p in status.get("podIPs") or []} | {status.get("podIP")}
    return pod if addr.get("ip") in ips else None


def pick_endpoint(service: dict, endpoints: dict | None, port: str, id: str,
                  pods: dict[str, dict], rng: random.Random | None = None
                  ) -> tuple[str, int, dict]:
    """(address, port, pod) of a random ready endpoint serving the service port, or the
    ServiceUnavailable error kube-apiserver gives."""
    rng = rng or random
    name = service["metadata"]["name"]
    port_name = service_port_name(service, port)
    subsets = (endpoints or {}).get("subsets") or []
    if not subsets:
        raise E.StatusError(503, "ServiceUnavailable",
                            f'no endpoints available for service "{name}"')
    start = rng.randrange(len(subsets))
    for i in range(len(subsets)):
        subset = subsets[(start + i) % len(subsets)]
        addresses = subset.get("addresses") or []      # ready ones only
        if not addresses:
            continue
        for p in subset.get("ports") or []:
            if (p.get("name") or "") != port_name:
                continue
            first = rng.randrange(len(addresses))
            for j in range(len(addresses)):
                addr = addresses[(first + j) % len(addresses)]
                pod = _valid_address(addr, pods)
                if pod is not None:
                    return addr["ip"], int(p["port"]), pod
    raise E.StatusError(503, "ServiceUnavailable", f'no endpoints available for service "{id}"')


def _global_unicast(ip: str) -> bool:
    """Go's IP.IsGlobalUnicast (private ranges count)."""
    try:
        a = ipaddress.ip_address(ip)
    except ValueError:
        return False
    broadcast = a.version == 4 and a == ipaddress.IPv4Address("255.255.255.255")
    return not (a.is_unspecified or a.is_loopback or a.is_multicast or a.is_link_local or
                broadcast)


def _numeric_port(port: str, scheme: str, host: str) -> int:
    """A port as Go's dialer reads it: a number or a service name (/etc/services)."""
    if not port:
        return 443 if scheme == "https" else 80
    if port.isascii() and port.isdigit() and int(port) < 65536:
        return int(port)
    try:
        return socket.getservbyname(port, "tcp")
    except OSError:
        raise E.StatusError(503, "ServiceUnavailable", "error trying to reach service: dial "
                            f"tcp: lookup tcp/{port}: unknown port") from None


def pod_target_port(pod: dict, port: str) -> str:
    """Without a port, the first container's first declared port (none: the scheme's)."""
    if port:
        return port
    for c in (pod.get("spec") or {}).get("containers") or []:
        if c.get("ports"):
            return str(c["ports"][0].get("containerPort", ""))
    return ""


def pod_address(pod: dict) -> str:
    ip = (pod.get("status") or {}).get("podIP") or ""
    if not _global_unicast(ip):
        raise E.bad_request("address not allowed")
    return ip


async def locate(api, plural: str, namespace: str | None, id: str) -> Target:
    parsed = split_scheme_name_port(id)
    kind = {"services": "service", "pods": "pod", "nodes": "node"}[plural]
    if parsed is None:
        raise E.bad_request(f'invalid {kind} request "{id}"')
    scheme, name, port = parsed
    scheme = scheme or "http"
    nodes = api.storages[("", "nodes")]
    if plural == "nodes":
        node = await nodes.get(None, name)
        ip = next((a["address"] for a in (node.get("status") or {}).get("addresses") or []
                   if a.get("type") == "InternalIP"), None)
        if ip is None:
            raise E.bad_request("no preferred addresses found; known addresses: []")
        return Target(scheme, ip, int(port) if port.isdigit() else KUBELET_PORT, None)
    pods = api.storages[("", "pods")]
    if plural == "pods":
        pod = await pods.get(namespace, name)
        ip = pod_address(pod)
        number = _numeric_port(pod_target_port(pod, port), scheme, ip)
        return Target(scheme, ip, number, await _node_ip(nodes, pod))
    service = await api.storages[("", "services")].get(namespace, name)
    try:
        endpoints = await api.storages[("", "endpoints")].get(namespace, name)
    except E.StatusError as e:
        if e.code != 404:
            raise
        endpoints = None
    referenced = {}
    for subset in (endpoints or {}).get("subsets") or []:
        for addr in subset.get("addresses") or []:
            ref = addr.get("targetRef") or {}
            if ref.get("kind") == "Pod" and ref.get("name") and ref["name"] not in referenced:
                try:
                    referenced[ref["name"]] = await pods.get(namespace, ref["name"])
                except E.StatusError:
                    pass
    ip, number, pod = pick_endpoint(service, endpoints, port, id, referenced)
    return Target(scheme, ip, number, await _node_ip(nodes, pod))


# ---- reaching it ------------------------------------------------------------------------------

def _unreachable(error: str) -> E.StatusError:
    return E.StatusError(503, "ServiceUnavailable", f"error trying to reach service: {error}")


async def _dial(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        return await asyncio.wait_for(asyncio.open_connection(host, port, limit=CHUNK),
                                      CONNECT_TIMEOUT)
    except asyncio.TimeoutError:
        raise ProxyError(f"dial tcp {host}:{port}: i/o timeout") from None
    except OSError as e:
        raise ProxyError(dial_error(host, port, e)) from None


async def open_tunnel(via: str, host: str, port: int
                      ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection that carries the bytes of a TCP connection to host:port, dialled by the
    agent at `via` (nanokube/node/tunnel.py)."""
    reader, writer = await _dial(via, KUBELET_PORT)
    try:
        writer.write((f"POST /tunnel/{host}/{port} HTTP/1.1\r\nHost: {via}:{KUBELET_PORT}\r\n"
                      f"Connection: Upgrade\r\nUpgrade: {UPGRADE}\r\nContent-Length: 0\r\n\r\n"
                      ).encode())
        await writer.drain()
        status, headers = await Session._read_head(reader)
        if status == 101:
            return reader, writer
        length = int(headers.get("content-length") or 0)
        body = await reader.readexactly(length) if length else b""
    except (OSError, HTTPError, asyncio.IncompleteReadError, ValueError) as e:
        writer.close()
        raise ProxyError(f"the node agent at {via}: {e}") from None
    writer.close()
    raise ProxyError(body.decode(errors="replace").strip() or f"the node agent answered {status}")


async def connect(target: Target) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if target.via is None:
        reader, writer = await _dial(target.host, target.port)
    else:
        reader, writer = await open_tunnel(target.via, target.host, target.port)
    if target.scheme == "https":
        # the proxy transport does not verify backends (kube-apiserver's neither)
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        try:
            await writer.start_tls(context)
        except (OSError, ssl.SSLError) as e:
            writer.close()
            raise ProxyError(f"tls handshake with {target.host}:{target.port}: {e}") from None
    return reader, writer


# ---- the request and the answer ----------------------------------------------------------------

def split_proxy_path(raw_path: str, namespaced: bool) -> tuple[str, str, str]:
    """(the path up to and including /proxy, the rest, the query) of the raw request target;
    the rest keeps its escaping and trailing slash."""
    path, _, query = raw_path.partition("?")
    parts = path.split("/")
    cut = 8 if namespaced else 6                 # "", api, v1, [namespaces, NS,] kind, id, proxy
    return "/".join(parts[:cut]), ("/" + "/".join(parts[cut:])) if len(parts) > cut else "", \
        query


def is_upgrade(headers) -> bool:
    connection = {t.strip().lower() for v in headers.getall("Connection", [])
                  for t in v.split(",")}
    return "upgrade" in connection and bool(headers.get("Upgrade"))


def request_head(request: web.Request, prefix: str, path: str, query: str,
                 upgrade: bool) -> bytes:
    target = (path or "/") + (f"?{query}" if query else "")
    lines = [f"{request.method} {target} HTTP/1.1"]
    for name, value in request.headers.items():
        lower = name.lower()
        if lower in HOP_BY_HOP or lower in ("authorization", "x-forwarded-uri"):
            continue
        if lower == "x-forwarded-for":
            continue
        lines.append(f"{name}: {value}")
    forwarded = [v for v in request.headers.getall("X-Forwarded-For", [])]
    if request.remote:
        forwarded.append(request.remote)
    if forwarded:
        lines.append(f"X-Forwarded-For: {', '.join(forwarded)}")
    lines.append(f"X-Forwarded-Uri: {prefix}{path}")
    if upgrade:
        lines += ["Connection: Upgrade", f"Upgrade: {request.headers['Upgrade']}"]
    else:
        if request.headers.get("Transfer-Encoding", "").lower().endswith("chunked"):
            lines.append("Transfer-Encoding: chunked")
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def rewrite_location(location: str, target: Target, prefix: str) -> str:
    """A redirect to the backend itself stays under the proxy path (the proxy transport's
    rewrite); redirects elsewhere pass unchanged."""
    url = urlsplit(location)
    if url.netloc and url.netloc != f"{target.host}:{target.port}":
        return location
    if not url.path.startswith("/"):
        return location
    out = prefix + url.path
    if url.query:
        out += "?" + url.query
    if url.fragment:
        out += "#" + url.fragment
    return out


async def _send_body(request: web.Request, writer: asyncio.StreamWriter) -> None:
    chunked = request.headers.get("Transfer-Encoding", "").lower().endswith("chunked")
    async for data in request.content.iter_chunked(CHUNK):
        writer.write(b"%x\r\n%b\r\n" % (len(data), data) if chunked else data)
        await writer.drain()
    if chunked:
        writer.write(b"0\r\n\r\n")
        await writer.drain()


async def serve(request: web.Request, api, plural: str, namespace: str | None,
                id: str) -> web.StreamResponse:
    if request.method not in METHODS:
        raise E.method_not_allowed(request.method, f"{plural}/proxy")
    prefix, path, query = split_proxy_path(request.raw_path, namespace is not None)
    target = await locate(api, plural, namespace, id)
    upgrade = is_upgrade(request.headers)
    if not path and not upgrade and request.method in ("GET", "HEAD"):
        # an empty path is redirected to "/" (kubernetes/kubernetes#4958)
        return web.Response(status=301, headers={
            "Location": prefix + "/" + (f"?{query}" if query else "")})
    try:
        reader, writer = await connect(target)
    except ProxyError as e:
        raise _unreachable(str(e)) from None
    try:
        writer.write(request_head(request, prefix, path, query, upgrade))
        await writer.drain()
        if not upgrade:
            await _send_body(request, writer)
        status, headers = await Session._read_head(reader)
        if upgrade and status == 101:
            return await _splice_upgrade(request, headers, reader, writer)
        return await _relay_answer(request, status, headers, reader, writer, target, prefix)
    except (OSError, HTTPError, asyncio.IncompleteReadError) as e:
        raise _unreachable(str(e) or type(e).__name__) from None
    finally:
        writer.close()


async def _relay_answer(request: web.Request, status: int, headers, reader, writer,
                        target: Target, prefix: str) -> web.StreamResponse:
    out = web.StreamResponse(status=status)
    for name, value in headers._pairs:          # the answer's headers, names lowercased
        if name in HOP_BY_HOP or name in CORS_HEADERS or name == "content-length":
            continue
        if name == "location":
            value = rewrite_location(value, target, prefix)
        out.headers.add(name.title(), value)
    length = headers.get("content-length")
    empty = request.method == "HEAD" or status in (204, 304) or 100 <= status < 200
    if length is not None and length.isdigit():
        out.content_length = int(length)
    await out.prepare(request)
    if not empty:
        body = UpstreamResponse(None, None, reader, writer, status, headers)
        async for data in body.iter_any():
            await out.write(data)
    await out.write_eof()
    return out


async def _splice_upgrade(request: web.Request, headers, reader, writer) -> web.StreamResponse:
    """The pod switched protocols (a WebSocket): its 101 goes to the client and from then on
    both connections are spliced byte for byte."""
    response = web.StreamResponse(status=101)
    for name, value in headers._pairs:
        response.headers.add(name.title(), value)
    async with hijacked(request) as client:
        await response.prepare(request)
        await splice(client, (reader, writer))
    return response
