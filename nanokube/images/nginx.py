"""A stand-in for the `nginx` image's default site: a welcome page on port 80.

    python -m nanokube.images.nginx [-g "daemon off;" ...]   (nginx's own flags are ignored)

GET/HEAD / (and /index.html) answer a small "Welcome to nginx!" page naming the pod; other paths
answer nginx's 404 page, other methods 405. Listens on $NGINX_PORT when set (the variable the
image's documentation uses for its templates), else 80. Each request is logged to stdout in
nginx's "combined" format, as the image's access.log -> stdout link does. SIGTERM and SIGQUIT
(nginx's fast and graceful shutdown) both exit 0.
"""
from __future__ import annotations

import os
import signal
import sys
import time

from nanokube.images.http_server import Request, Response, serve_http
from nanokube.images.serving import Program, log, pod_hostname

SERVER = "nginx"
STARTED = time.time()

WELCOME = """<!DOCTYPE html>
<html>
<head>
<title>Welcome to nginx!</title>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>This is nanokube's stand-in for the nginx image, serving from pod <b>{pod}</b>.</p>
</body>
</html>
"""

ERROR = """<html>
<head><title>{status} {reason}</title></head>
<body>
<center><h1>{status} {reason}</h1></center>
<hr><center>nginx</center>
</body>
</html>
"""


def error_page(status: int, reason: str) -> Response:
    return Response(status, ERROR.format(status=status, reason=reason), "text/html")


class WelcomeSite:
    def __init__(self, hostname: str):
        self.page = WELCOME.format(pod=hostname).encode()
        self.headers = [
            ("Last-Modified", time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(STARTED))),
            ("ETag", f'"{int(STARTED):x}-{len(self.page):x}"'), ("Accept-Ranges", "bytes")]

    def handle(self, request: Request) -> Response:
        path = request.target.split("?", 1)[0]
        if path not in ("/", "/index.html"):
            return error_page(404, "Not Found")
        if request.method not in ("GET", "HEAD"):
            return error_page(405, "Not Allowed")
        return Response(200, self.page, "text/html", headers=self.headers)


def access_log(request: Request, response: Response) -> None:
    """nginx's combined format plus "$http_x_forwarded_for", as the image configures it."""
    peer = request.peer.rsplit(":", 1)[0].strip("[]")
    when = time.strftime("%d/%b/%Y:%H:%M:%S %z")
    sent = 0 if request.method == "HEAD" else len(response.body)
    log(f'{peer} - - [{when}] "{request.method} {request.target} {request.version}" '
        f'{response.status} {sent} "{request.header("referer", "-")}" '
        f'"{request.header("user-agent", "-")}" "{request.header("x-forwarded-for", "-")}"')


def main() -> int:
    port = int(os.environ.get("NGINX_PORT") or 80)
    program = Program(stop_signals=(signal.SIGTERM, signal.SIGINT, signal.SIGQUIT))

    async def start(program: Program) -> None:
        site = WelcomeSite(pod_hostname())
        await serve_http(port, site.handle, server_header=SERVER, on_response=access_log)
        log(f"/docker-entrypoint.sh: Configuration complete; ready for start up (port {port})")

    return program.run(start)


if __name__ == "__main__":
    sys.exit(main())
