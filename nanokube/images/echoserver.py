"""The ingress-conformance echoserver: every request is answered with a JSON description of itself.

    python -m nanokube.images.echoserver

Listens on $PORT (default 3000). The answer names what the request looked like when it reached
the pod and which pod it reached, which is what Ingress conformance tests assert on:
{"path", "host", "method", "proto", "headers", "namespace", "ingress", "service", "pod"}; the last
four come from $NAMESPACE, $INGRESS_NAME, $SERVICE_NAME and $POD_NAME (the pod's hostname if unset).
"""
from __future__ import annotations

import json
import os
import sys

from nanokube.images.http_server import Request, Response, serve_http
from nanokube.images.serving import Program, go_log, pod_hostname


def canonical_header(name: str) -> str:
    """Go's CanonicalMIMEHeaderKey: "x-forwarded-for" -> "X-Forwarded-For"."""
    if not name or any(c in name for c in " \t\"(),/:;<=>?@[\\]{}"):
        return name
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


class EchoServer:
    def __init__(self, environ=os.environ):
        self.context = {
            "namespace": environ.get("NAMESPACE", ""),
            "ingress": environ.get("INGRESS_NAME", ""),
            "service": environ.get("SERVICE_NAME", ""),
            "pod": environ.get("POD_NAME") or pod_hostname(),
        }

    def handle(self, request: Request) -> Response:
        go_log(f"Echoing back request made to {request.target} to client ({request.peer})")
        headers: dict[str, list[str]] = {}
        for name, value in request.headers:
            if name.lower() != "host":          # Go keeps Host out of the header map
                headers.setdefault(canonical_header(name), []).append(value)
        body = {"path": request.target, "host": request.header("host", ""),
                "method": request.method, "proto": request.version,
                "headers": headers, **self.context}
        return Response(200, json.dumps(body), "application/json",
                        headers=[("X-Content-Type-Options", "nosniff")])


def main() -> int:
    port = int(os.environ.get("PORT") or 3000)

    async def start(program: Program) -> None:
        await serve_http(port, EchoServer().handle)
        go_log(f"Echo server listening on port {port}.")

    return Program().run(start)


if __name__ == "__main__":
    sys.exit(main())
