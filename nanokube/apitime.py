"""Times as the Kubernetes API writes them (metav1.Time): RFC 3339 in UTC. One place to write
and read them, for the API server, the controllers and the node agent alike."""
from __future__ import annotations

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
