"""The subset of ingress-nginx's annotations we honour (prefix nginx.ingress.kubernetes.io/).

Every value is checked against a strict pattern and turned into a typed, already-safe value
before it can reach the NGINX configuration; invalid or unknown annotations of our prefix are
reported (a Warning Event) and ignored, the rest of the Ingress keeps working.
"""
from __future__ import annotations

import ipaddress
import re

PREFIX = "nginx.ingress.kubernetes.io/"

# strconv.ParseBool, as ingress-nginx parses its boolean annotations.
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}

SIZE_RE = re.compile(r"^[0-9]{1,9}[kKmMgG]?$")          # NGINX size syntax: 0, 8k, 10m, 1g
SECONDS_RE = re.compile(r"^[0-9]{1,6}$")                  # whole seconds
COOKIE_NAME_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")      # must also be a valid $cookie_ variable
# A rewrite target: an absolute path of safe characters and capture references $1..$9.
REWRITE_RE = re.compile(r"^/(?:[A-Za-z0-9._~!*+,:@=&/-]|\$[1-9](?![0-9])){0,512}$")
MAX_CIDRS = 64


def _bool(value: str) -> bool:
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError("must be true or false")


def _size(value: str) -> str:
    if not SIZE_RE.match(value):
        raise ValueError("must be an NGINX size such as 8k, 10m or 1g")
    return value.lower()


def _seconds(value: str) -> int:
    if not SECONDS_RE.match(value):
        raise ValueError("must be a whole number of seconds")
    return int(value)


def _protocol(value: str) -> str:
    if value.upper() not in ("HTTP", "HTTPS"):
        raise ValueError("must be HTTP or HTTPS")
    return value.upper()


def _cidrs(value: str) -> list[str]:
    parts = [p.strip() for p in value.split(",") if p.strip()]
    if not parts or len(parts) > MAX_CIDRS:
        raise ValueError(f"must be a list of 1 to {MAX_CIDRS} CIDRs")
    # Re-rendered from the parsed network, so only ipaddress's own text reaches NGINX.
    try:
        return [str(ipaddress.ip_network(p, strict=False)) for p in parts]
    except ValueError as exc:
        raise ValueError(f"invalid CIDR: {exc}") from None


def _rewrite(value: str) -> str:
    if not REWRITE_RE.match(value):
        raise ValueError("must be an absolute path of safe characters with optional $1..$9")
    return value


def _affinity(value: str) -> str:
    if value != "cookie":
        raise ValueError("only cookie affinity is supported")
    return value


def _cookie_name(value: str) -> str:
    if not COOKIE_NAME_RE.match(value):
        raise ValueError("must be 1-64 letters, digits or _")
    return value


PARSERS = {
    "ssl-redirect": _bool,
    "force-ssl-redirect": _bool,
    "proxy-body-size": _size,
    "proxy-read-timeout": _seconds,
    "proxy-send-timeout": _seconds,
    "backend-protocol": _protocol,
    "whitelist-source-range": _cidrs,
    "rewrite-target": _rewrite,
    "use-regex": _bool,
    "affinity": _affinity,
    "session-cookie-name": _cookie_name,
}

DEFAULT_COOKIE_NAME = "INGRESSCOOKIE"   # ingress-nginx's default session-cookie-name


def parse(annotations: dict | None) -> tuple[dict, list[tuple[str, str]]]:
    """Our annotations -> (settings keyed by the short name, [(reason, message)] problems)."""
    settings: dict = {}
    problems: list[tuple[str, str]] = []
    for key, value in sorted((annotations or {}).items()):
        if not isinstance(key, str) or not key.startswith(PREFIX):
            continue
        name = key[len(PREFIX):]
        parser = PARSERS.get(name)
        if parser is None:
            problems.append(("UnknownAnnotation", f"annotation {_shown(key)} is not supported; ignored"))
            continue
        if not isinstance(value, str) or len(value) > 4096:
            problems.append(("InvalidAnnotation", f"annotation {key}: invalid value; ignored"))
            continue
        try:
            settings[name] = parser(value.strip())
        except ValueError as exc:
            problems.append(("InvalidAnnotation", f"annotation {key}: {exc}; ignored"))
    if "session-cookie-name" in settings and "affinity" not in settings:
        del settings["session-cookie-name"]
    if "affinity" in settings:
        settings.setdefault("session-cookie-name", DEFAULT_COOKIE_NAME)
    return settings, problems


def _shown(text: str, limit: int = 100) -> str:
    """A bounded, printable rendition of user text for Event messages."""
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= limit else text[:limit] + "..."
