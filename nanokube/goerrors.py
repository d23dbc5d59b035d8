"""Error texts as Go's net package prints them, which Kubernetes components pass on verbatim
(probe output, port-forward and proxy errors): one place, for the node agent and the API server."""
from __future__ import annotations

import os


def errno_text(e: OSError) -> str:
    """An errno as Go prints it: "connection refused" (lower-case, no number)."""
    text = os.strerror(e.errno) if e.errno else str(e)
    return text[:1].lower() + text[1:]


def dial_error(host: str, port: int, e: OSError, network: str = "tcp") -> str:
    """net.Dial's error: "dial tcp 10.244.1.4:8080: connect: connection refused"."""
    return f"dial {network} {host}:{port}: connect: {errno_text(e)}"
