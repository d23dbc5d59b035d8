"""Render the whole nginx.conf (our own, not Debian's) from the routing model.

Mapping (reference §1.3/§6): Exact -> `location = /p`; Prefix /p -> `location /p/` plus
`location = /p` (so /p matches without NGINX's automatic 301 and /pbar never matches);
Prefix / -> `location /`; use-regex paths -> `location ~* "^..."`, ordered longest first;
wildcard hosts -> a regex server_name limited to one label. Every value reaching this file was
validated by model.py / annotations.py; paths the controller passes in are checked here.

Endpoints and certificates never appear in nginx.conf (reference §3.1, as ingress-nginx's Lua
balancer and dynamic certificates): every upstream is a placeholder whose balancer_by_lua picks
a peer from a lua_shared_dict, every TLS server starts with the default certificate and
ssl_certificate_by_lua swaps in the host's own by SNI; the controller POSTs the endpoint lists
(backends(config)) to /configuration/backends and the certificates (servers(config)) to
/configuration/servers on the status port. So scaling a Service or renewing a certificate
changes no file and needs no reload. NGINX also loads RUNTIME_DIR/backends.json and
servers.json at start and on every reload, so a fresh or reloaded NGINX never waits for a POST.
A reload (an Ingress added or removed) is preceded by a drain (/configuration/drain, see the
Lua) so that old workers closing idle keep-alive connections cut no client's request.
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
SERVERS_FILE = "servers.json"        # host -> certificate and key (PEM), mode 0600
SERVERS_PATH = "/configuration/servers"
CERTS_DICT = "nk_certs"
DRAIN_PATH = "/configuration/drain"   # POST "start" or "cancel" (the Lua drain)
# The local server that answers 503 for a backend without ready endpoints (plain and TLS, for
# backend-protocol HTTPS), on the status port of two more loopback addresses.
UNAVAILABLE = "127.240.0.1"
UNAVAILABLE_TLS = "127.240.0.2"

# The balancer, defined once per NGINX (init_by_lua, package "nanokube"). The dict maps a
# backend name to the JSON list of its [ip, port] peers; each worker caches the decoded list.
# No single quotes or backslashes here: the whole file stays checkable by the hostile tests.
LUA = """
local cjson = require "cjson.safe"
local balancer = require "ngx.balancer"
local ssl = require "ngx.ssl"
local dict = ngx.shared.nk_backends
local certs = ngx.shared.nk_certs
local VERSION = "_version"
local nk = {unavailable = 0, generation = 0, draining = false}
local cache, cache_version = {}, -1
local parsed, parsed_version = {}, -1
local turn = {}

-- Replace a whole document (name -> JSON-able value) in a shared dict; the version key
-- tells every worker to drop its decoded copies. Document keys never start with "_" (they
-- are "namespace-service-port" names or host names); "_" keys are our own.
local function replace(shared, doc, check)
    for name, value in pairs(doc) do
        if type(name) ~= "string" or string.sub(name, 1, 1) == "_" or not check(value) then
            return false, "bad entry " .. tostring(name)
        end
    end
    for _, name in ipairs(shared:get_keys(0)) do
        if string.sub(name, 1, 1) ~= "_" and doc[name] == nil then shared:delete(name) end
    end
    for name, value in pairs(doc) do
        local ok, err = shared:set(name, cjson.encode(value))
        if not ok then return false, err end
    end
    shared:incr(VERSION, 1, 0)
    return true
end

local function is_peer_list(v) return type(v) == "table" end
local function is_pem_pair(v)
    return type(v) == "table" and type(v.cert) == "string" and type(v.key) == "string"
end

function nk.store(doc) return replace(dict, doc, is_peer_list) end
function nk.store_certs(doc) return replace(certs, doc, is_pem_pair) end

function nk.load(path, store)
    local f = io.open(path, "rb")
    if not f then return end
    local doc = cjson.decode(f:read("*a"))
    f:close()
    if type(doc) == "table" then (store or nk.store)(doc) end
end

-- A per-worker decoded copy, dropped when the version moves: one shared-dict read of a
-- number per request, no JSON decoding.
local function peers(name)
    local v = dict:get(VERSION) or 0
    if v ~= cache_version then cache, cache_version = {}, v end
    local list = cache[name]
    if list == nil then
        local raw = dict:get(name)
        list = raw and cjson.decode(raw) or false
        if list then
            for _, p in ipairs(list) do p[3] = p[1] .. ":" .. p[2] end
        end
        cache[name] = list
    end
    return list
end

-- Passive health, per worker: a peer a try failed on (refused, reset, timed out) is skipped
-- for a second, unless every peer is; a retry never goes back to a peer this request tried.
-- It covers the moment between a pod going away and its endpoint leaving the list.
local down = {}
local DOWN_SECONDS = 1

local function mark_tried_down(now)
    for addr in string.gmatch(ngx.var.upstream_addr or "", "[^,%s]+") do down[addr] = now end
end

local function next_up(list, i, now)
    local n = #list
    for _ = 1, n do
        i = i % n + 1
        local t = down[list[i][3]]
        if not t or now - t > DOWN_SECONDS then return i end
    end
    return i % n + 1
end

local function forget_old(now)
    for addr, t in pairs(down) do
        if now - t > DOWN_SECONDS then down[addr] = nil end
    end
end

-- balancer phase: round-robin per worker, or by the affinity key (rendezvous hashing: an
-- endpoint change only moves the keys of the endpoints that went away); a retry (after a
-- connection error) goes round-robin to the next endpoint that is up. No ready endpoint:
-- the local "unavailable" server answers 503, as ingress-nginx does.
function nk.balance(name, key, tls)
    local list = peers(name)
    if not list or #list == 0 then
        local ok, err = balancer.set_current_peer(tls and "127.240.0.2" or "127.240.0.1",
                                                  nk.unavailable)
        if not ok then ngx.log(ngx.ERR, "unavailable peer: ", err) end
        return
    end
    local retry = balancer.get_last_failure()
    if retry then mark_tried_down(ngx.now()) end
    local peer
    if key and key ~= "" and not retry then
        local best = -1
        for _, p in ipairs(list) do
            local h = ngx.crc32_long(key .. "@" .. p[3])
            if h > best then best, peer = h, p end
        end
    else
        local i = turn[name] or 0
        if next(down) == nil then
            i = i % #list + 1                   -- the common case: nothing failed lately
        else
            local now = ngx.now()
            forget_old(now)
            i = next_up(list, i, now)
        end
        turn[name] = i
        peer = list[i]
    end
    if not retry and #list > 1 then balancer.set_more_tries(math.min(#list - 1, 2)) end
    local ok, err = balancer.set_current_peer(peer[1], peer[2])
    if not ok then ngx.log(ngx.ERR, "peer for ", name, ": ", err) end
end

-- TLS certificates by SNI, without a reload: host (or "*.domain") -> {cert, key} PEM, parsed
-- once per worker and version. Not cached when missing, so unknown names cost no memory.
local function certificate_for(host)
    local v = certs:get(VERSION) or 0
    if v ~= parsed_version then parsed, parsed_version = {}, v end
    local c = parsed[host]
    if c then return c end
    local raw = certs:get(host)
    local pair = raw and cjson.decode(raw)
    if not pair then return nil end
    local crt, err = ssl.parse_pem_cert(pair.cert)
    local key, kerr = ssl.parse_pem_priv_key(pair.key)
    if not crt or not key then
        ngx.log(ngx.ERR, "certificate for ", host, ": ", err or kerr)
        return nil
    end
    c = {crt, key}
    parsed[host] = c
    return c
end

function nk.certificate()
    local name = ssl.server_name()
    if not name then return end
    name = string.lower(name)
    local c = certificate_for(name)
    if not c then
        local dot = string.find(name, ".", 1, true)
        if dot then c = certificate_for("*" .. string.sub(name, dot)) end
    end
    if not c then return end          -- the server block default certificate
    local ok, err = ssl.clear_certs()
    if ok then ok, err = ssl.set_cert(c[1]) end
    if ok then ok, err = ssl.set_priv_key(c[2]) end
    if not ok then
        ngx.log(ngx.ERR, "certificate for ", name, ": ", err)
        return ngx.exit(ngx.ERROR)
    end
end

-- Draining before a reload. A reload makes the old workers close their idle keep-alive
-- connections at once, and a client that sends its next request at that moment gets a reset
-- or an EOF. So the controller first asks the running generation of workers to drain: their
-- responses carry "Connection: close" (a header filter; HTTP lets a client see both
-- "keep-alive" and "close" and close wins), every active client reconnects, and when the
-- reload comes no client is about to reuse a connection an old worker closes. The new
-- generation does not drain: each configuration load takes the next generation number, and
-- every generation up to the one asked drains (old workers finishing their requests, too).
function nk.init()
    nk.generation = dict:incr("_generation", 1, 0)
    nanokube = nk
end

local function update_draining()
    nk.draining = (dict:get("_drain") or 0) >= nk.generation
end

function nk.init_worker()
    update_draining()
    ngx.timer.every(0.005, function(premature)
        if not premature then update_draining() end
    end)
end

-- "start": every generation loaded so far drains, also one whose workers are still starting
-- (a reload just before); "cancel": the latest stops draining, older ones still exiting go on.
function nk.drain()
    if ngx.req.get_method() ~= "POST" then return ngx.exit(405) end
    ngx.req.read_body()
    local body = ngx.req.get_body_data()
    local latest = dict:get("_generation") or nk.generation
    if body == "start" then
        dict:set("_drain", latest)
    elseif body == "cancel" then
        dict:set("_drain", latest - 1)
    else
        ngx.status = 400
        ngx.say("start or cancel")
        return
    end
    local text = tostring(latest)
    ngx.status = 201
    ngx.header["Content-Length"] = #text      -- the controller reads a plain body
    ngx.print(text)
end

function nk.configure(store)
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
    local ok, err = store(doc)
    ngx.status = ok and 201 or 400
    ngx.say(ok and "ok" or err)
end

package.loaded.nanokube = nk
"""


def _file(path: str) -> str:
    if not isinstance(path, str) or not SAFE_FILE_RE.match(path):
        raise ValueError(f"unsafe file path for nginx.conf: {path!r}")
    return path


def upstream_name(backend: Backend, cookie: str | None = None, tls: bool = False) -> str:
    """`ns-svc-port` (the backends document's key), with `-affinity-<cookie>` for cookie
    affinity and `-tls` for backend-protocol HTTPS (each such upstream balances the same
    endpoints: only the key and where a request without endpoints goes differ)."""
    name = f"{backend.namespace}-{backend.service}-{backend.port}"
    if cookie:
        name += f"-affinity-{cookie}"
    return name + "-tls" if tls else name


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


def render(config: Config, runtime_dir: str, default_cert: tuple[str, str],
           listen_http: int = 80, listen_https: int = 443, status_port: int = 10254) -> str:
    """nginx.conf. Certificates are not in it: every server starts with the default one and
    ssl_certificate_by_lua picks the host's own from the servers document (servers())."""
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
    w.line(f"lua_shared_dict {CERTS_DICT} 32m;")
    w.open("init_by_lua_block")
    for line in LUA.strip().splitlines():
        w.line(line)
    w.line(f"nk.unavailable = {status_port}")
    w.line("nk.init()")
    w.line(f'nk.load("{rt}/{BACKENDS_FILE}")')
    w.line(f'nk.load("{rt}/{SERVERS_FILE}", nk.store_certs)')
    w.close()
    w.line('init_worker_by_lua_block { require("nanokube").init_worker() }')
    w.line('header_filter_by_lua_block { if nanokube.draining then ngx.header["Connection"] = "close" end }')
    _upstreams(w, config)

    servers = list(config.servers)
    if not any(s.host == "" for s in servers):
        servers.insert(0, Server(""))
    for server in servers:
        _server(w, config, server, default_cert, listen_http, listen_https, redirect)

    w.open("server")
    w.line(f"listen {status_port};")
    w.open("location = /healthz")
    w.line('return 200 "ok\\n";')
    w.close()
    w.open("location = /nginx_status")
    w.line("stub_status;")
    w.close()
    for path, store in ((BACKENDS_PATH, "store"), (SERVERS_PATH, "store_certs")):
        w.open(f"location = {path}")
        # only the controller, from inside the pod
        w.line("allow 127.0.0.1;")
        w.line("allow ::1;")
        w.line("deny all;")
        w.line("client_max_body_size 64m;")
        w.line("client_body_buffer_size 64m;")
        w.line(f'content_by_lua_block {{ local nk = require("nanokube") nk.configure(nk.{store}) }}')
        w.close()
    w.open(f"location = {DRAIN_PATH}")
    w.line("allow 127.0.0.1;")
    w.line("allow ::1;")
    w.line("deny all;")
    w.line('content_by_lua_block { require("nanokube").drain() }')
    w.close()
    w.open("location /")
    w.line("return 404;")
    w.close()
    w.close()

    w.open("server")
    w.line(f"listen {UNAVAILABLE}:{status_port};")
    w.line(f"listen {UNAVAILABLE_TLS}:{status_port} ssl;")
    w.line(f"ssl_certificate {_file(default_cert[0])};")
    w.line(f"ssl_certificate_key {_file(default_cert[1])};")
    w.open("location /")
    w.line("return 503;")
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


def servers(config: Config, pem_of) -> dict[str, dict[str, str]]:
    """The certificates NGINX picks by SNI: host -> {"cert", "key"} (PEM text), for every
    server whose TLS Secret is usable; `pem_of(secret_key)` gives (cert, key) bytes or None.
    Hosts left out get the default certificate."""
    out: dict[str, dict[str, str]] = {}
    for server in config.servers:
        pem = pem_of(server.tls_secret) if server.tls_secret and server.host else None
        if pem:
            out[server.host] = {"cert": pem[0].decode("ascii", "replace"),
                                "key": pem[1].decode("ascii", "replace")}
    return out


def servers_json(config: Config, pem_of) -> str:
    """servers(config, pem_of) as the canonical text written to servers.json and POSTed."""
    return json.dumps(servers(config, pem_of), sort_keys=True, separators=(",", ":"))


def _tls(loc: Location) -> bool:
    return loc.settings.get("backend-protocol", "HTTP") == "HTTPS"


def _affinity_cookie(loc: Location) -> str | None:
    return loc.settings.get("session-cookie-name") if loc.settings.get("affinity") == "cookie" else None


def _upstreams(w: _Writer, config: Config):
    wanted: dict[str, tuple[Backend, str | None, bool]] = {}
    for server in config.servers:
        for loc in server.locations:
            if loc.backend:
                cookie, tls = _affinity_cookie(loc), _tls(loc)
                wanted[upstream_name(loc.backend, cookie, tls)] = (loc.backend, cookie, tls)
    if config.default_backend:
        wanted[upstream_name(config.default_backend)] = (config.default_backend, None, False)
    for cookie in sorted({c for _, c, _ in wanted.values() if c}):
        # The cookie's value keys the balancer's hash; a client without one gets a fresh key
        # (set as the cookie below), so it sticks to one endpoint from then on.
        w.open(f"map $cookie_{cookie} $nk_affinity_{cookie}")
        w.line('"" $request_id;')
        w.line(f"default $cookie_{cookie};")
        w.close()
    for name in sorted(wanted):
        backend, cookie, tls = wanted[name]
        key = f"ngx.var.nk_affinity_{cookie}" if cookie else "nil"
        w.open(f"upstream {name}")
        w.line("server 0.0.0.1;     # placeholder: the balancer sets the peer")
        w.line("balancer_by_lua_block { require(\"nanokube\").balance("
               f"\"{upstream_name(backend)}\", {key}{', true' if tls else ''}) }}")
        w.line("keepalive 64;")
        w.line("keepalive_requests 10000;")
        w.close()


def _server(w, config, server, default_cert, listen_http, listen_https, redirect):
    catch_all = server.host == ""
    w.open("server")
    suffix = " default_server" if catch_all else ""
    w.line(f"listen {listen_http}{suffix};")
    w.line(f"listen {listen_https} ssl{suffix};")
    w.line(f"server_name {server_name(server.host)};")
    crt, key = default_cert
    w.line(f"ssl_certificate {_file(crt)};")
    w.line(f"ssl_certificate_key {_file(key)};")
    w.line('ssl_certificate_by_lua_block { require("nanokube").certificate() }')
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
        tls = protocol == "HTTPS"
        w.line(f"proxy_pass {'https' if tls else 'http'}://{upstream_name(backend, cookie, tls)};")
