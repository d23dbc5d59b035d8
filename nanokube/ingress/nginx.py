"""Render the whole nginx.conf (our own, not Debian's) from the routing model.

Mapping (reference §1.3/§6): Exact -> `location = /p`; Prefix /p -> `location /p/` plus
`location = /p` (so /p matches without NGINX's automatic 301 and /pbar never matches);
Prefix / -> `location /`; use-regex paths -> `location ~* "^..."`, ordered longest first;
wildcard hosts -> a regex server_name limited to one label. Every value reaching this file was
validated by model.py / annotations.py; paths the controller passes in are checked here.
"""
from __future__ import annotations

import re

from nanokube.ingress.model import Backend, Config, Location, Server, location_order

SAFE_FILE_RE = re.compile(r"^/[A-Za-z0-9._/+@=-]*$")


def _file(path: str) -> str:
    if not isinstance(path, str) or not SAFE_FILE_RE.match(path):
        raise ValueError(f"unsafe file path for nginx.conf: {path!r}")
    return path


def upstream_name(backend: Backend, cookie: str | None = None) -> str:
    name = f"{backend.namespace}-{backend.service}-{backend.port}"
    return f"{name}-affinity-{cookie}" if cookie else name


def server_name(host: str) -> str:
    if host == "":
        return "_"
    if host.startswith("*."):
        # NGINX's own "*.foo.com" matches any depth; Kubernetes allows exactly one label.
        return "~^[^.]+" + re.escape("." + host[2:]).replace("\\-", "-") + "$"
    return host


class _Writer:
    def __init__(self):
        self.lines: list[str] = []
        self.depth = 0

    def line(self, text: str):
        self.lines.append("    " * self.depth + text)

    def open(self, text: str):
        self.line(text + " {")
        self.depth += 1

    def close(self):
        self.depth -= 1
        self.line("}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def render(config: Config, runtime_dir: str, cert_paths: dict[str, tuple[str, str]],
           default_cert: tuple[str, str], listen_http: int = 80, listen_https: int = 443,
           status_port: int = 10254) -> str:
    rt = _file(runtime_dir.rstrip("/") or "/")
    for port in (listen_http, listen_https, status_port):
        if not (isinstance(port, int) and 0 < port < 65536):
            raise ValueError(f"invalid port {port!r}")
    redirect = "https://$host$request_uri" if listen_https == 443 \
        else f"https://$host:{listen_https}$request_uri"
    w = _Writer()
    w.line(f"pid {rt}/nginx.pid;")
    w.line(f"error_log {rt}/error.log warn;")
    w.line("worker_processes auto;")
    w.line("worker_shutdown_timeout 60s;")
    w.open("events")
    w.line("worker_connections 4096;")
    w.close()
    w.open("http")
    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        w.line(f"{kind}_temp_path {rt}/{kind}_temp;")
    w.line("access_log off;")
    w.line("server_tokens off;")
    w.line("server_names_hash_max_size 8192;")
    w.line("server_names_hash_bucket_size 128;")
    w.line("default_type text/plain;")
    w.line("keepalive_timeout 75s;")
    w.line("client_max_body_size 1m;")
    w.line("ssl_protocols TLSv1.2 TLSv1.3;")
    w.line("ssl_session_cache shared:SSL:10m;")
    w.line("proxy_http_version 1.1;")
    w.line("proxy_connect_timeout 5s;")
    w.line("proxy_read_timeout 60s;")
    w.line("proxy_send_timeout 60s;")
    # Inherited by every location (no location sets its own proxy_set_header).
    w.open("map $http_upgrade $nk_connection")
    w.line('default "upgrade";')
    w.line('"" "";')              # empty: keeps upstream keepalive connections usable
    w.close()
    for header, value in (("Host", "$host"), ("X-Real-IP", "$remote_addr"),
                          ("X-Forwarded-For", "$remote_addr"), ("X-Forwarded-Proto", "$scheme"),
                          ("X-Forwarded-Host", "$host"), ("X-Forwarded-Port", "$server_port"),
                          ("Upgrade", "$http_upgrade"), ("Connection", "$nk_connection")):
        w.line(f"proxy_set_header {header} {value};")

    # Plain-HTTP requests to redirect, except the ACME HTTP-01 path (as ingress-nginx does).
    w.open('map "$scheme:$uri" $nk_redirect')
    w.line("default 0;")
    w.line('"~^http:/\\.well-known/acme-challenge/" 0;')
    w.line('"~^http:" 1;')
    w.close()
    _upstreams(w, config)

    servers = list(config.servers)
    if not any(s.host == "" for s in servers):
        servers.insert(0, Server(""))
    for server in servers:
        _server(w, config, server, cert_paths, default_cert, listen_http, listen_https, redirect)

    w.open("server")
    w.line(f"listen {status_port};")
    w.open("location = /healthz")
    w.line('return 200 "ok\\n";')
    w.close()
    w.open("location = /nginx_status")
    w.line("stub_status;")
    w.close()
    w.open("location /")
    w.line("return 404;")
    w.close()
    w.close()
    w.close()
    return w.text()


def _affinity_cookie(loc: Location) -> str | None:
    return loc.settings.get("session-cookie-name") if loc.settings.get("affinity") == "cookie" else None


def _upstreams(w: _Writer, config: Config):
    wanted: dict[str, tuple[Backend, str | None]] = {}
    if config.default_backend and config.default_backend.endpoints:
        wanted[upstream_name(config.default_backend)] = (config.default_backend, None)
    for server in config.servers:
        for loc in server.locations:
            if loc.backend and loc.backend.endpoints:
                cookie = _affinity_cookie(loc)
                wanted[upstream_name(loc.backend, cookie)] = (loc.backend, cookie)
    for cookie in sorted({c for _, c in wanted.values() if c}):
        # The cookie's value keys a consistent hash; a client without one gets a fresh key
        # (set as the cookie below), so it sticks to one endpoint from then on.
        w.open(f"map $cookie_{cookie} $nk_affinity_{cookie}")
        w.line('"" $request_id;')
        w.line(f"default $cookie_{cookie};")
        w.close()
    for name in sorted(wanted):
        backend, cookie = wanted[name]
        w.open(f"upstream {name}")
        if cookie:
            w.line(f"hash $nk_affinity_{cookie} consistent;")
        for ip, port in backend.endpoints:
            host = f"[{ip}]" if ":" in ip else ip
            w.line(f"server {host}:{int(port)} max_fails=1 fail_timeout=2s;")
        w.line("keepalive 64;")
        w.line("keepalive_requests 10000;")
        w.close()


def _server(w, config, server, cert_paths, default_cert, listen_http, listen_https, redirect):
    catch_all = server.host == ""
    w.open("server")
    suffix = " default_server" if catch_all else ""
    w.line(f"listen {listen_http}{suffix};")
    w.line(f"listen {listen_https} ssl{suffix};")
    w.line(f"server_name {server_name(server.host)};")
    crt, key = cert_paths.get(server.tls_secret, default_cert) if server.tls_secret else default_cert
    w.line(f"ssl_certificate {_file(crt)};")
    w.line(f"ssl_certificate_key {_file(key)};")
    seen: set[str] = set()
    has_root = False
    for loc in sorted(server.locations, key=location_order):
        for match in _matches(loc):
            if match in seen:          # e.g. Exact /foo beats the `= /foo` twin of Prefix /foo
                continue
            seen.add(match)
            has_root = has_root or match == "/"
            _location(w, match, loc, server, redirect)
    if not has_root:
        # Unmatched paths of a known host: the default backend (or the 404 default).
        w.open("location /")
        if server.ssl_redirect:
            _redirect(w, redirect)
        _proxy(w, config.default_backend, None, missing=404)
        w.close()
    w.close()


def _matches(loc: Location) -> list[str]:
    """The NGINX location matches for one Ingress path (values already validated)."""
    if loc.regex:
        return [f'~* "^{loc.path}"']
    if loc.path_type == "Exact":
        return [f"= {loc.path}"]
    base = loc.path.rstrip("/")
    if not base:
        return ["/"]
    return [f"= {base}", f"{base}/"]


def _redirect(w: _Writer, target: str):
    w.open("if ($nk_redirect)")
    w.line(f"return 308 {target};")
    w.close()


def _location(w: _Writer, match: str, loc: Location, server: Server, redirect: str):
    s = loc.settings
    w.open(f"location {match}")
    if s.get("whitelist-source-range"):
        for cidr in s["whitelist-source-range"]:
            w.line(f"allow {cidr};")
        w.line("deny all;")
    if s.get("force-ssl-redirect") or (server.tls and s.get("ssl-redirect", server.ssl_redirect)):
        _redirect(w, redirect)
    if "proxy-body-size" in s:
        w.line(f"client_max_body_size {s['proxy-body-size']};")
    if "proxy-read-timeout" in s:
        w.line(f"proxy_read_timeout {int(s['proxy-read-timeout'])}s;")
    if "proxy-send-timeout" in s:
        w.line(f"proxy_send_timeout {int(s['proxy-send-timeout'])}s;")
    if loc.regex and s.get("rewrite-target"):
        w.line(f'rewrite "(?i)^{loc.path}" {s["rewrite-target"]} break;')
    cookie = _affinity_cookie(loc)
    if cookie and loc.backend and loc.backend.endpoints:
        w.line(f'add_header Set-Cookie "{cookie}=$nk_affinity_{cookie}; Path=/; HttpOnly";')
    _proxy(w, loc.backend, cookie, missing=503, protocol=s.get("backend-protocol", "HTTP"))
    w.close()


def _proxy(w: _Writer, backend: Backend | None, cookie: str | None, missing: int,
           protocol: str = "HTTP"):
    if backend is None:
        w.line(f"return {missing};")
    elif not backend.endpoints:
        w.line("return 503;")      # ingress-nginx: a backend without ready endpoints is a 503
    else:
        scheme = "https" if protocol == "HTTPS" else "http"
        w.line(f"proxy_pass {scheme}://{upstream_name(backend, cookie)};")
