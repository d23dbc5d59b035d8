"""The routing model: owned Ingresses + Services + EndpointSlices + Secrets -> servers/locations.

Kubernetes' Ingress semantics (reference §1.2): hosts exact or single-label wildcard, rules
without host; Exact, Prefix (element-wise) and ImplementationSpecific (here: as Prefix, or a
regex when use-regex / rewrite-target is set); several Ingresses for one host merged, conflicts
won by the oldest Ingress (creationTimestamp, then namespace/name) with a Warning Event on the
loser. Everything user-supplied is validated here, so the renderer only sees safe values.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from nanokube.certmanager.names import default_secret_name
from nanokube.ingress import annotations as ann

INGRESS_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
NORMAL, WARNING = "Normal", "Warning"

# DNS-1123 subdomain, optionally with "*." as its whole first label.
_LABEL = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
HOST_RE = re.compile(rf"^(?:\*\.)?{_LABEL}(?:\.{_LABEL})*$")
DNS1035_RE = re.compile(r"^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$")
PORT_NAME_RE = re.compile(r"^[a-z0-9](?:[-a-z0-9]{0,13}[a-z0-9])?$")   # IANA_SVC_NAME
IP_RE = re.compile(r"^[0-9.]+$|:")
# Plain (non-regex) paths: no quote, brace, semicolon, backslash, '$', '%', space or control
# character can appear, so nothing in a path can close an NGINX token.
PLAIN_PATH_RE = re.compile(r"^/[A-Za-z0-9._~!*+,:@=&/-]{0,1023}$")
# Regex paths (use-regex): additionally regex metacharacters, and a backslash only before a
# character that NGINX's string parser leaves alone (never before a quote or another backslash).
# '$' only as an anchor, never in NGINX's variable syntax ($name, ${name}).
REGEX_PATH_RE = re.compile(
    r"^/(?:[A-Za-z0-9._~!*+,:@=&/()|?^\[\]-]|\$(?![A-Za-z0-9_{])|\\[dDwWsS.()\[\]+*?|/^$-]){0,1023}$")
REGEX_PATH_TYPES = ("ImplementationSpecific",)


@dataclass
class Backend:
    namespace: str
    service: str
    port: int | str
    endpoints: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class Location:
    path: str
    path_type: str
    backend: Backend | None        # None: a non-Service (resource) backend -> 503
    ingress: str
    settings: dict = field(default_factory=dict)

    @property
    def regex(self) -> bool:
        return bool(self.settings.get("use-regex"))


@dataclass
class Server:
    host: str
    locations: list[Location] = field(default_factory=list)
    tls_secret: str | None = None
    tls: bool = False
    ssl_redirect: bool = False


@dataclass
class Config:
    servers: list[Server] = field(default_factory=list)
    default_backend: Backend | None = None
    events: list[tuple[str, str, str, str]] = field(default_factory=list)


# ---- classes ---------------------------------------------------------------------------------

def owns(ingress: dict, class_name: str, controller: str, ingress_classes: list[dict]) -> bool:
    """spec.ingressClassName, else the legacy annotation, else the default IngressClass."""
    ours = {c["metadata"]["name"] for c in ingress_classes or ()
            if (c.get("spec") or {}).get("controller") == controller}
    known = {c["metadata"]["name"] for c in ingress_classes or ()}
    name = (ingress.get("spec") or {}).get("ingressClassName")
    if name:
        return name in ours or (name == class_name and name not in known)
    legacy = ((ingress.get("metadata") or {}).get("annotations") or {}).get(INGRESS_CLASS_ANNOTATION)
    if legacy is not None:
        return legacy == class_name
    return any((c.get("metadata", {}).get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION) == "true"
               for c in ingress_classes or ()
               if c["metadata"]["name"] in ours)


# ---- helpers ---------------------------------------------------------------------------------

def _key(obj: dict) -> str:
    md = obj.get("metadata") or {}
    return f"{md.get('namespace', '')}/{md.get('name', '')}"


def _age(obj: dict) -> tuple:
    md = obj.get("metadata") or {}
    return (md.get("creationTimestamp") or "", md.get("namespace") or "", md.get("name") or "")


def _shown(text, limit: int = 100) -> str:
    return ann._shown(str(text), limit)


def valid_host(host: str) -> bool:
    return isinstance(host, str) and len(host) <= 253 and bool(HOST_RE.match(host)) \
        and not IP_RE.search(host)


def valid_path(path: str, regex: bool) -> bool:
    if not isinstance(path, str):
        return False
    if regex:
        if not REGEX_PATH_RE.match(path):
            return False
        try:
            re.compile(path)
        except re.error:
            return False
        return True
    if not PLAIN_PATH_RE.match(path):
        return False
    # Kubernetes' own rules for Exact/Prefix paths.
    return not ("//" in path or "/./" in path or "/../" in path
                or path.endswith("/..") or path.endswith("/."))


def wildcard_matches(pattern: str, host: str) -> bool:
    """'*.foo.com' matches exactly one extra label: bar.foo.com, not baz.bar.foo.com."""
    if not pattern.startswith("*."):
        return pattern == host
    first, _, rest = host.partition(".")
    return bool(first) and rest == pattern[2:]


def _backend_ref(ref: dict) -> tuple[str | None, int | str | None, str | None]:
    """(service, port, error) from a v1 or v1beta1 IngressBackend."""
    if not isinstance(ref, dict):
        return None, None, "backend is not an object"
    if "service" in ref:
        svc = ref.get("service") or {}
        name, port = svc.get("name"), svc.get("port") or {}
        if "number" in port and "name" in port:
            return None, None, "service port: cannot set both name and number"
        value = port.get("number", port.get("name"))
    elif "serviceName" in ref:                          # v1beta1
        name, value = ref.get("serviceName"), ref.get("servicePort")
        if isinstance(value, str) and value.isdigit():
            value = int(value)
    else:
        return None, None, None                         # a resource backend
    if not isinstance(name, str) or not DNS1035_RE.match(name):
        return None, None, f"invalid service name {_shown(name)}"
    if isinstance(value, bool) or not (isinstance(value, int) and 1 <= value <= 65535
                                       or isinstance(value, str) and PORT_NAME_RE.match(value)):
        return None, None, f"invalid service port {_shown(value)}"
    return name, value, None


class _Resolver:
    """Service port -> ready endpoints from the EndpointSlices."""

    def __init__(self, services: list[dict], endpointslices: list[dict]):
        self.services = {_key(s): s for s in services}
        self.slices: dict[str, list[dict]] = {}
        for sl in endpointslices:
            md = sl.get("metadata") or {}
            svc = (md.get("labels") or {}).get(SERVICE_NAME_LABEL)
            if svc:
                self.slices.setdefault(f"{md.get('namespace', '')}/{svc}", []).append(sl)

    def backend(self, namespace: str, name: str, port: int | str) -> tuple[Backend, str | None]:
        b = Backend(namespace, name, port, [])
        svc = self.services.get(f"{namespace}/{name}")
        if svc is None:
            return b, f"service {namespace}/{name} not found"
        sport = None
        for p in (svc.get("spec") or {}).get("ports") or []:
            if (p.get("port") == port) if isinstance(port, int) else (p.get("name") == port):
                sport = p
                break
        if sport is None:
            return b, f"service {namespace}/{name} has no port {port}"
        port_name = sport.get("name") or ""
        seen = set()
        for sl in self.slices.get(f"{namespace}/{name}", []):
            numbers = [p.get("port") for p in sl.get("ports") or []
                       if (p.get("name") or "") == port_name and p.get("port")]
            if not numbers:
                continue
            for ep in sl.get("endpoints") or []:
                # ready unset means ready (EndpointConditions docs).
                if (ep.get("conditions") or {}).get("ready") is False:
                    continue
                addresses = ep.get("addresses") or []
                if addresses:
                    seen.add((addresses[0], numbers[0]))
        b.endpoints = sorted(seen)
        return b, None


# ---- build -----------------------------------------------------------------------------------

def build(ingresses: list[dict], services: list[dict], endpointslices: list[dict],
          secrets: list[dict], class_name: str = "nginx",
          controller: str = "k8s.io/ingress-nginx", ingress_classes: list[dict] = ()) -> Config:
    config = Config()
    resolver = _Resolver(services, endpointslices)
    tls_secrets = {_key(s) for s in secrets
                   if s.get("type") == "kubernetes.io/tls"
                   or {"tls.crt", "tls.key"} <= set((s.get("data") or {}).keys())}
    owned = sorted((i for i in ingresses if owns(i, class_name, controller, list(ingress_classes))),
                   key=_age)
    servers: dict[str, Server] = {}
    taken: dict[tuple, str] = {}          # (host, kind, normalised path) -> winning ingress
    tls_owner: dict[str, tuple[str, dict]] = {}   # tls host -> (ingress, settings)

    def event(ing: str, reason: str, message: str, type_: str = WARNING):
        config.events.append((ing, type_, reason, message))

    def backend_of(ing_key: str, namespace: str, ref: dict) -> tuple[bool, Backend | None]:
        name, port, error = _backend_ref(ref)
        if error:
            event(ing_key, "InvalidBackend", error)
            return False, None
        if name is None:
            return True, None
        b, problem = resolver.backend(namespace, name, port)
        if problem:
            event(ing_key, "ServiceNotFound", problem)
        return True, b

    for ing in owned:
        ing_key = _key(ing)
        namespace = (ing.get("metadata") or {}).get("namespace") or "default"
        spec = ing.get("spec") or {}
        settings, problems = ann.parse((ing.get("metadata") or {}).get("annotations"))
        for reason, message in problems:
            event(ing_key, reason, message)
        if "rewrite-target" in settings:
            settings["use-regex"] = True      # as ingress-nginx: rewrites need regex locations

        default_ref = spec.get("defaultBackend") or spec.get("backend")
        if default_ref:
            ok, b = backend_of(ing_key, namespace, default_ref)
            if ok and b is not None:
                if config.default_backend is None:
                    config.default_backend = b
                else:
                    event(ing_key, "Conflict", "spec.defaultBackend ignored: an older Ingress "
                          "already sets the default backend")

        for rule in spec.get("rules") or []:
            host = rule.get("host") or ""
            if host and not valid_host(host):
                event(ing_key, "InvalidHost", f"host {_shown(host)} is not a valid DNS name; rule ignored")
                continue
            for p in ((rule.get("http") or {}).get("paths") or []):
                _add_path(config, servers, taken, ing_key, namespace, host, p, settings,
                          backend_of, event)

        for index, tls in enumerate(spec.get("tls") or []):
            secret = tls.get("secretName")
            secret_key = f"{namespace}/{secret}" if secret else None
            if not secret:
                # cert-manager's default issuer keeps this entry's certificate under a fixed name
                default = f"{namespace}/{default_secret_name(ing_key.rpartition('/')[2], index)}"
                secret_key = default if default in tls_secrets else None
            if secret_key and secret_key not in tls_secrets:
                event(ing_key, "SecretNotFound", f"TLS secret {_shown(secret_key)} not found or not "
                      "of type kubernetes.io/tls; using the default certificate")
                secret_key = None
            for host in tls.get("hosts") or []:
                if not valid_host(host):
                    event(ing_key, "InvalidHost", f"TLS host {_shown(host)} is not a valid DNS name; ignored")
                    continue
                if host in tls_owner and tls_owner[host][0] != ing_key:
                    event(ing_key, "Conflict", f"TLS for host {host} is already set by "
                          f"{tls_owner[host][0]}; ignored")
                    continue
                if host in tls_owner:
                    continue
                tls_owner[host] = (ing_key, settings)
                server = servers.setdefault(host, Server(host))
                server.tls, server.tls_secret = True, secret_key
                server.ssl_redirect = settings.get("ssl-redirect", True)

    # A wildcard TLS entry covers the one-label hosts under it that have no TLS of their own.
    for host, server in servers.items():
        if server.tls or not host:
            continue
        for tls_host, (_, settings) in tls_owner.items():
            if tls_host.startswith("*.") and wildcard_matches(tls_host, host):
                server.tls, server.tls_secret = True, servers[tls_host].tls_secret
                server.ssl_redirect = settings.get("ssl-redirect", True)
                break

    config.servers = [servers[h] for h in sorted(servers)]
    for server in config.servers:
        server.locations.sort(key=location_order)
    return config


def _add_path(config, servers, taken, ing_key, namespace, host, p, settings, backend_of, event):
    path = p.get("path") or "/"
    path_type = p.get("pathType") or "ImplementationSpecific"
    if path_type not in ("Exact", "Prefix", "ImplementationSpecific"):
        event(ing_key, "InvalidPath", f"pathType {_shown(path_type)} is not supported; path ignored")
        return
    regex = bool(settings.get("use-regex")) and path_type in REGEX_PATH_TYPES
    if not valid_path(path, regex):
        event(ing_key, "InvalidPath", f"path {_shown(path)} contains characters that are not "
              f"allowed{' in a regex' if regex else ''}; path ignored")
        return
    loc_settings = dict(settings)
    if not regex:
        loc_settings.pop("use-regex", None)
        if loc_settings.pop("rewrite-target", None) is not None:
            event(ing_key, "InvalidAnnotation", f"rewrite-target applies to ImplementationSpecific "
                  f"(regex) paths only; ignored for {path_type} path {path}")
    ok, backend = backend_of(ing_key, namespace, p.get("backend") or {})
    if not ok:
        return
    key = (host, match_kind(path_type, regex), normalised(path, path_type, regex))
    if key in taken:
        event(ing_key, "Conflict", f"path {path} ({path_type}) on host {host or '*'} is already "
              f"served by {taken[key]}; ignored")
        return
    taken[key] = ing_key
    server = servers.setdefault(host, Server(host))
    server.locations.append(Location(path, path_type, backend, ing_key, loc_settings))


def match_kind(path_type: str, regex: bool) -> str:
    if regex:
        return "Regex"
    return "Exact" if path_type == "Exact" else "Prefix"


def normalised(path: str, path_type: str, regex: bool) -> str:
    """Prefix paths match the same requests with or without a trailing slash."""
    if regex or path_type == "Exact":
        return path
    return path.rstrip("/") or "/"


def location_order(loc: Location) -> tuple:
    """Longest path first; for the same path, Exact before Prefix (the Kubernetes order)."""
    return (-len(loc.path), 0 if loc.path_type == "Exact" else 1, loc.path)


# ---- the semantics as a function (for tests and for debugging the rendered config) -----------

def prefix_matches(rule_path: str, request_path: str) -> bool:
    """Element-wise prefix match on '/'-separated elements, trailing slashes ignored."""
    rule = [e for e in rule_path.split("/") if e]
    req = [e for e in request_path.split("/") if e]
    return req[:len(rule)] == rule


def path_matches(loc: Location, request_path: str) -> bool:
    if loc.regex:
        return re.match(loc.path, request_path, re.IGNORECASE) is not None
    if loc.path_type == "Exact":
        return loc.path == request_path
    return prefix_matches(loc.path, request_path)


def select_server(config: Config, host: str) -> Server | None:
    host = host.lower().split(":")[0]
    by_host = {s.host: s for s in config.servers}
    if host in by_host:
        return by_host[host]
    for s in config.servers:
        if s.host.startswith("*.") and wildcard_matches(s.host, host):
            return s
    return by_host.get("")


def route(config: Config, host: str, request_path: str) -> Location | Backend | None:
    """The Location serving a request, else the default backend (None = the 404 default)."""
    server = select_server(config, host)
    path = request_path.split("?", 1)[0].split("#", 1)[0]
    if server is not None:
        matches = [loc for loc in server.locations if path_matches(loc, path)]
        regexes = [loc for loc in matches if loc.regex]
        exact = [loc for loc in matches if loc.path_type == "Exact" and not loc.regex]
        if exact:
            return exact[0]
        if regexes:          # NGINX: a matching regex location beats prefix locations
            return regexes[0]
        if matches:
            return matches[0]
    return config.default_backend
