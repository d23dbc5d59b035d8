"""`agnhost`, the Kubernetes e2e test image, as far as tests and tutorials use it.

    python -m nanokube.images.agnhost <command> [--flag=value ...]

Commands: `netexec` (see netexec.py), `serve-hostname`, `pause`, `porter`. Flags are parsed the way
agnhost's (cobra/pflag) are: `--name=value`, `--name value`, `-name value`, and a bare `--name`
for a boolean. Flags of the real agnhost that we do not act on are accepted and ignored, so that
manifests written for it run unchanged.
"""
from __future__ import annotations

import os
import signal
import sys

from nanokube.images.flags import UsageError

# The servers' modules (asyncio and all) are imported by the commands that need them, so that
# `pause`, the image's default command and the most common one, stays a small process.


# ---- pause -------------------------------------------------------------------------------------

def pause(argv: list[str]) -> int:
    """Sleep until SIGTERM/SIGINT, then exit 0 (also what registry.k8s.io/pause does)."""
    def on_signal(sig, _frame):
        print(f"Shutting down, got signal: {signal.Signals(sig).name}", flush=True)
        sys.exit(0)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    print("Paused", flush=True)
    while True:
        signal.pause()


# ---- serve-hostname ----------------------------------------------------------------------------

SERVE_HOSTNAME_FLAGS = {"port": 9376, "http": True, "tcp": False, "udp": False, "close": False}


def serve_hostname(argv: list[str]) -> int:
    """Answer the hostname over HTTP (any path), TCP (then close) and/or UDP (any datagram)."""
    import asyncio
    import socket

    from nanokube.images.flags import parse_flags
    from nanokube.images.http_server import Response, serve_http
    from nanokube.images.serving import Program, bind_socket, go_log, pod_hostname, serve_udp

    flags = parse_flags(argv, SERVE_HOSTNAME_FLAGS)
    if flags["http"] and flags["tcp"]:
        raise UsageError("Can't serve TCP and HTTP on the same port")
    hostname = pod_hostname()
    port = flags["port"]

    def http(request):
        go_log(f"{request.method} {request.target}")
        return Response(200, hostname, close=flags["close"])

    async def tcp_client(reader, writer):
        go_log(f"TCP request from {writer.get_extra_info('peername')}")
        writer.write(hostname.encode())
        await writer.drain()
        writer.close()

    def udp(data, peer):
        go_log(f"UDP request from {peer}")
        return hostname.encode()

    async def main(program):
        if flags["udp"]:
            await serve_udp(port, udp)
            go_log(f"Serving on port {port} (udp).")
        if flags["tcp"]:
            await asyncio.start_server(tcp_client, sock=bind_socket(port, socket.SOCK_STREAM))
            go_log(f"Serving on port {port} (tcp).")
        if flags["http"]:
            await serve_http(port, http)
            go_log(f"Serving on port {port} (http).")

    return Program().run(main)


# ---- porter ------------------------------------------------------------------------------------

def porter(argv: list[str]) -> int:
    """Serve each $SERVE_PORT_<port>=<text> as <text> on <port> (any path)."""
    from nanokube.images.http_server import Response, serve_http
    from nanokube.images.serving import Program, go_log

    ports = {int(name[len("SERVE_PORT_"):]): text for name, text in os.environ.items()
             if name.startswith("SERVE_PORT_") and name[len("SERVE_PORT_"):].isdigit()}
    if not ports:
        raise UsageError("no SERVE_PORT_<port> environment variables set")

    async def main(program):
        for port, text in ports.items():
            await serve_http(port, lambda request, text=text: Response(200, text))
            go_log(f"Serving on port {port}")

    return Program().run(main)


COMMANDS = {"pause": pause, "serve-hostname": serve_hostname, "porter": porter}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print("Usage: agnhost [command]\n\nAvailable Commands: netexec, pause, porter, "
              "serve-hostname", file=sys.stderr)
        return 0 if argv else 1
    name, rest = argv[0], argv[1:]
    if name == "netexec":
        from nanokube.images.netexec import netexec
        command = netexec
    elif name in COMMANDS:
        command = COMMANDS[name]
    else:
        print(f'Error: unknown command "{name}" for "agnhost"', file=sys.stderr)
        return 1
    try:
        return command(rest)
    except UsageError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
