"""Times as the Kubernetes API writes them (metav1.Time): RFC 3339 in UTC. One place to write
and read them, for the API server, the controllers and the node agent alike."""
from __future__ import annotations

import re
from datetime import datetime, timezone


def now_rfc3339() -> str:
    """Now, to the second, as metav1.Time serializes it: 2006-01-02T15:04:05Z."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_datetime(text: str | None) -> datetime | None:
    """An RFC 3339 time (Time or MicroTime) as an aware datetime; None when empty or not one."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None


def parse_time(text: str | None) -> float | None:
    """An RFC 3339 time (Time or MicroTime) as a Unix timestamp."""
    parsed = parse_datetime(text)
    return parsed.timestamp() if parsed else None


_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """A Go duration string in seconds; raises ValueError as time.ParseDuration would."""
    s = text.strip()
    if s in ("0", ""):
        if s == "":
            raise ValueError(f'time: invalid duration "{text}"')
        return 0.0
    sign = -1.0 if s.startswith("-") else 1.0
    s = s.lstrip("+-")
    total, pos = 0.0, 0
    for m in _PART.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s) or pos == 0:
        raise ValueError(f'time: invalid duration "{text}"')
    return sign * total
