"""Render the whole nginx.conf (our own, not Debian's) from the routing model.

Mapping (reference §1.3/§6): Exact -> `location = /p`; Prefix /p -> `location /p/` plus
`location = /p` (so /p matches without NGINX's automatic 301 and /pbar never matches);
Prefix / -> `location /`; use-regex paths -> `location ~* "^..."`, ordered longest first;
wildcard hosts -> a regex server_name limited to one label. Every value reaching this file was
validated by model.py / annotations.py; paths the controller passes in are checked here.

Endpoints never appear in nginx.conf (reference §3.1, as ingress-nginx's Lua balancer): every
upstream is a placeholder whose balancer_by_lua picks a peer from a lua_shared_dict, and the
controller POSTs the endpoint lists (backends(config), JSON) to /configuration/backends on the
status port; so scaling a Service changes no file and needs no reload (no keep-alive connection
is closed by old workers). NGINX also loads RUNTIME_DIR/backends.json at start and on every
reload, so a fresh or reloaded NGINX never waits for a POST.
Needs Debian's libnginx-mod-http-ndk, libnginx-mod-http-lua, lua-resty-core and lua-cjson.
"""
from __future__ import annotations

import json
import re

from nanokube.ingress.model import Backend, Config, Location, Server, location_order

SAFE_FILE_RE = re.compile(r"^/[A-Za-z0-9._/+@=-]*$")
# Debian's dynamic modules (the NDK first: the Lua module needs it)
MODULES = ("/usr/lib/nginx/modules/ndk_http_module.so",
           "/usr/lib/nginx/modules/ngx_http_lua_module.so")
BACKENDS_FILE = "backends.json"
BACKENDS_PATH = "/configuration/backends"
LUA_DICT = "nk_backends"

# The balancer, defined once per NGINX (init_by_lua, package "nanokube"). The dict maps a
# backend name to the JSON list of its [ip, port] peers; each worker caches the decoded list.
# No single quotes or backslashes here: the whole file stays checkable by the hostile tests.
LUA = """
local cjson = require "cjson.safe"
local balancer = require "ngx.balancer"
local dict = ngx.shared.nk_backends
local nk = {}
local cache = {}
local turn = {}

function nk.store(doc)
    for _, name in ipairs(dict:get_keys(0)) do
        if doc[name] == nil then dict:delete(name) end
    end
    for name, peers in pairs(doc) do
        if type(name) ~= "string" or type(peers) ~= "table" then
            return false, "bad backend " .. tostring(name)
        end
        local ok, err = dict:set(name, cjson.encode(peers))
        if not ok then return false, err end
    end
    return true
end

function nk.load(path)
    local f = io.open(path, "rb")
    if not f then return end
    local doc = cjson.decode(f:read("*a"))
    f:close()
    if type(doc) == "table" then nk.store(doc) end
end

local function peers(name)
    local raw = dict:get(name)
    if not raw then return nil end
    local c = cache[name]
    if not c or c.raw ~= raw then
        c = {raw = raw, list = cjson.decode(raw) or {}}
        cache[name] = c
    end
    return c.list
end

-- access phase: no ready endpoint is a 503, as with ingress-nginx
function nk.check(name)
    local list = peers(name)
    if not list or #list == 0 then return ngx.exit(503) end
end

-- balancer phase: round-robin per worker, or by the affinity key (rendezvous hashing: an
-- endpoint change only moves the keys of the endpoints that went away); a retry (after a
-- connection error) goes round-robin to the next endpoint
function nk.balance(name, key)
    local list = peers(name)
    if not list or #list == 0 then
        ngx.log(ngx.ERR, "no endpoints for ", name)
        return
    end
    local peer
    if key and key ~= "" and not ngx.ctx.nk_tried then
        local best = -1
        for _, p in ipairs(list) do
            local h = ngx.crc32_long(key .. "@" .. p[1] .. ":" .. p[2])
            if h > best then best, peer = h, p end
        end
    else
        local i = (turn[name] or 0) % #list + 1
        turn[name] = i
        peer = list[i]
    end
    if not ngx.ctx.nk_tried then
        ngx.ctx.nk_tried = true
        if #list > 1 then balancer.set_more_tries(math.min(#list - 1, 2)) end
    end
    local ok, err = balancer.set_current_peer(peer[1], peer[2])
    if not ok then ngx.log(ngx.ERR, "peer for ", name, ": ", err) end
end

function nk.configure()
    if ngx.req.get_method() ~= "POST" then return ngx.exit(405) end
    ngx.req.read_body()
    local body = ngx.req.get_body_data()
    if not body then
        local file = ngx.req.get_body_file()
        if file then
            local f = io.open(file, "rb")
            body = f:read("*a")
            f:close()
        end
    end
    local doc = body and cjson.decode(body)
    if type(doc) ~= "table" then
        ngx.status = 400
        ngx.say("not a JSON object")
        return
    end
    local ok, err = nk.store(doc)
    ngx.status = ok and 201 or 500
    ngx.say(ok and "ok" or err)
end

package.loaded.nanokube = nk
"""


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
    for module in MODULES:
        w.line(f"load_module {module};")
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
    w.line('lua_package_path "/usr/share/lua/5.1/?.lua;;";')
    w.line('lua_package_cpath "/usr/lib/x86_64-linux-gnu/lua/5.1/?.so;;";')
    w.line(f"lua_shared_dict {LUA_DICT} 16m;")
    w.open("init_by_lua_block")
    for line in LUA.strip().splitlines():
        w.line(line)
    w.line(f'nk.load("{rt}/{BACKENDS_FILE}")')
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
    w.open(f"location = {BACKENDS_PATH}")
    # only the controller, from inside the pod
    w.line("allow 127.0.0.1;")
    w.line("allow ::1;")
    w.line("deny all;")
    w.line("client_max_body_size 64m;")
    w.line("client_body_buffer_size 64m;")
    w.line('content_by_lua_block { require("nanokube").configure() }')
    w.close()
    w.open("location /")
    w.line("return 404;")
    w.close()
    w.close()
    w.close()
    return w.text()


def _backends_of(config: Config) -> list[Backend]:
    found = [config.default_backend] if config.default_backend else []
    for server in config.servers:
        found += [loc.backend for loc in server.locations if loc.backend]
    return found


def backends(config: Config) -> dict[str, list[list]]:
    """The endpoint lists NGINX balances over: upstream name -> [[ip, port], ...] (also the
    empty ones, so that a backend scaled to zero answers 503)."""
    return {upstream_name(b): [[ip, int(port)] for ip, port in b.endpoints]
            for b in _backends_of(config)}


def backends_json(config: Config) -> str:
    """backends(config) as the canonical text written to backends.json and POSTed."""
    return json.dumps(backends(config), sort_keys=True, separators=(",", ":"))


def _affinity_cookie(loc: Location) -> str | None:
    return loc.settings.get("session-cookie-name") if loc.settings.get("affinity") == "cookie" else None


def _upstreams(w: _Writer, config: Config):
    wanted: dict[str, tuple[Backend, str | None]] = {}
    for server in config.servers:
        for loc in server.locations:
            if loc.backend:
                cookie = _affinity_cookie(loc)
                wanted[upstream_name(loc.backend, cookie)] = (loc.backend, cookie)
    if config.default_backend:
        wanted[upstream_name(config.default_backend)] = (config.default_backend, None)
    for cookie in sorted({c for _, c in wanted.values() if c}):
        # The cookie's value keys the balancer's hash; a client without one gets a fresh key
        # (set as the cookie below), so it sticks to one endpoint from then on.
        w.open(f"map $cookie_{cookie} $nk_affinity_{cookie}")
        w.line('"" $request_id;')
        w.line(f"default $cookie_{cookie};")
        w.close()
    for name in sorted(wanted):
        backend, cookie = wanted[name]
        key = f"ngx.var.nk_affinity_{cookie}" if cookie else "nil"
        w.open(f"upstream {name}")
        w.line("server 0.0.0.1;     # placeholder: the balancer sets the peer")
        w.line("balancer_by_lua_block { require(\"nanokube\").balance("
               f"\"{upstream_name(backend)}\", {key}) }}")
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
    if cookie and loc.backend:
        w.line(f'add_header Set-Cookie "{cookie}=$nk_affinity_{cookie}; Path=/; HttpOnly";')
    _proxy(w, loc.backend, cookie, missing=503, protocol=s.get("backend-protocol", "HTTP"))
    w.close()


def _proxy(w: _Writer, backend: Backend | None, cookie: str | None, missing: int,
           protocol: str = "HTTP"):
    if backend is None:
        w.line(f"return {missing};")
    else:
        # a backend without ready endpoints is a 503 (ingress-nginx), decided per request
        w.line(f'access_by_lua_block {{ require("nanokube").check("{upstream_name(backend)}") }}')
        scheme = "https" if protocol == "HTTPS" else "http"
        w.line(f"proxy_pass {scheme}://{upstream_name(backend, cookie)};")
