"""`agnhost netexec`: the HTTP/UDP test server of Kubernetes' e2e network tests.

HTTP (--http-port, default 8080; HTTPS with --tls-cert-file/--tls-private-key-file):
  /hostname       the pod's hostname                /echo?msg=M[&code=N]  M (status N)
  /clientip       the peer as "IP:port"             /header?key=K         request header K
  /healthz        200                               /readyz               200, 503 while shutting down
  /exit?code=N    exit with N                       /shutdown             exit 0
  /redirect?location=L[&code=N]                     /shell?shellCommand=C {"output": ...}
  /dial?request=R&host=H&port=P&protocol=http|udp[&tries=N]
                  asks H:P for R N times: {"responses": [...], "errors": [...]}
  anything else   "NOW: <time>"
UDP (--udp-port, default 8081, -1 disables): "hostname", "echo M", "clientip".
SCTP is not served (--sctp-port is accepted and ignored).
"""
from __future__ import annotations

import asyncio
import json
import signal
import time

from nanokube.images.flags import UsageError, parse_flags
from nanokube.images.http_server import Request, Response, serve_http
from nanokube.images.serving import Program, go_log, pod_hostname, serve_udp

FLAGS = {"http-port": 8080, "udp-port": 8081, "sctp-port": -1, "delay-shutdown": 0,
         "http-override": "", "udp-listen-addresses": "", "tls-cert-file": "",
         "tls-private-key-file": ""}
DIAL_HTTP_TIMEOUT = 5.0
DIAL_UDP_TIMEOUT = 3.0


class NetExec:
    def __init__(self, program: Program, delay_shutdown: int):
        self.program = program
        self.delay_shutdown = delay_shutdown
        self.hostname = pod_hostname()
        self.ready = True
        self.routes = {
            "/hostname": self.hostname_, "/hostName": self.hostname_, "/echo": self.echo,
            "/clientip": self.clientip, "/header": self.header, "/healthz": self.healthz,
            "/readyz": self.readyz, "/exit": self.exit, "/shutdown": self.shutdown,
            "/redirect": self.redirect, "/dial": self.dial, "/shell": self.shell,
        }

    def handle(self, request: Request):
        target = request.target
        # the benchmark path: no URL parsing for a plain /hostname
        if target == "/hostname":
            go_log("GET /hostname")
            return Response(200, self.hostname)
        route = self.routes.get(request.path)
        if route is None:
            return self.root(request)
        return route(request)

    # ---- handlers ---------------------------------------------------------------------------
    def root(self, request: Request) -> Response:
        go_log(f"GET {request.path}")
        return Response(200, f"NOW: {time.strftime('%Y-%m-%d %H:%M:%S %z %Z')}")

    def hostname_(self, request: Request) -> Response:
        go_log(f"GET {request.path}")
        return Response(200, self.hostname)

    def echo(self, request: Request) -> Response:
        msg = request.param("msg")
        code = request.param("code")
        go_log(f"GET /echo?msg={msg}")
        try:
            status = int(code) if code else 200
        except ValueError:
            return Response(400, f"invalid code {code!r}\n")
        return Response(status, msg)

    def clientip(self, request: Request) -> Response:
        go_log("GET /clientip")
        return Response(200, request.peer)

    def header(self, request: Request) -> Response:
        key = request.param("key")
        go_log(f"GET /header?key={key}")
        return Response(200, request.header(key, "") or "")

    def healthz(self, request: Request) -> Response:
        return Response(200, "ok")

    def readyz(self, request: Request) -> Response:
        return Response(200, "ok") if self.ready else Response(503, "shutting down")

    def exit(self, request: Request) -> Response:
        code = request.param("code", "0")
        go_log(f"GET /exit?code={code}")
        try:
            value = int(code)
        except ValueError:
            return Response(400, f"bad exit code: {code}\n")
        self.program.stop_soon(value)
        return Response(200, "", close=True)

    def shutdown(self, request: Request) -> Response:
        go_log("GET /shutdown")
        self.program.stop_soon(0)
        return Response(200, "", close=True)

    def redirect(self, request: Request) -> Response:
        location = request.param("location")
        code = request.param("code", "303")
        go_log(f"GET /redirect?location={location}")
        if not location:
            return Response(400, "location is required\n")
        return Response(int(code) if code.isdigit() else 303, "",
                        headers=[("Location", location)])

    async def shell(self, request: Request) -> Response:
        command = request.param("shellCommand") or request.param("cmd")
        go_log(f"GET /shell?shellCommand={command}")
        process = await asyncio.create_subprocess_shell(
            command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        output, _ = await process.communicate()
        result = {"output": output.decode("utf-8", "replace")}
        if process.returncode:
            result["error"] = f"exit status {process.returncode}"
        return Response(200 if not process.returncode else 417, json.dumps(result),
                        "application/json")

    async def dial(self, request: Request) -> Response:
        query = request.query
        get = lambda name: (query.get(name) or [""])[0]  # noqa: E731
        what, host, port, protocol = get("request"), get("host"), get("port"), get("protocol")
        go_log(f"GET /dial?request={what}&protocol={protocol}&host={host}&port={port}"
               f"&tries={get('tries')}")
        if not (what and host and port and protocol):
            return Response(400, "request, host, port and protocol required.  tries optional. "
                                 f"got: {dict(query)}\n")
        try:
            tries = int(get("tries") or 1)
            port_number = int(port)
        except ValueError:
            return Response(400, "tries and port must be integers\n")
        if protocol not in ("http", "udp"):
            return Response(400, f"unsupported protocol. {protocol}\n")
        responses, errors = [], []
        for _ in range(tries):
            try:
                if protocol == "http":
                    responses.append(await dial_http(what, host, port_number))
                else:
                    responses.append(await dial_udp(what, host, port_number))
            except (OSError, asyncio.TimeoutError, ValueError) as error:
                errors.append(f"error trying: {error or type(error).__name__}")
        output = {}
        if responses:
            output["responses"] = responses
        if errors:
            output["errors"] = errors
        return Response(200, json.dumps(output), "application/json")

    # ---- UDP --------------------------------------------------------------------------------
    def udp(self, data: bytes, peer: str) -> bytes | None:
        text = data.decode("utf-8", "replace").strip()
        go_log(f"UDP: {text!r} from {peer}")
        if text.lower() == "hostname":
            return self.hostname.encode()
        if text.startswith("echo "):
            return text[5:].encode()
        if text == "clientip":
            return peer.encode()
        return None

    def on_signal(self, sig: int) -> None:
        """SIGTERM: stop being ready, keep serving for --delay-shutdown seconds, then exit 0."""
        if self.delay_shutdown <= 0 or sig != signal.SIGTERM:
            self.program.stop(0)
            return
        go_log(f"Sleeping {self.delay_shutdown} seconds before terminating...")
        self.ready = False
        asyncio.get_running_loop().call_later(self.delay_shutdown, self.program.stop, 0)


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def dial_http(request: str, host: str, port: int) -> str:
    """GET http://host:port/<request> and return the body."""
    async def get() -> str:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(f"GET /{request} HTTP/1.1\r\nHost: {_host_port(host, port)}\r\n"
                         "User-Agent: Go-http-client/1.1\r\nConnection: close\r\n\r\n".encode())
            raw = await reader.read(-1)
        finally:
            writer.close()
        head, sep, body = raw.partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("malformed HTTP response")
        if b"transfer-encoding: chunked" in head.lower():
            body = _dechunk(body)
        return body.decode("utf-8", "replace")
    return await asyncio.wait_for(get(), DIAL_HTTP_TIMEOUT)


def _dechunk(body: bytes) -> bytes:
    out, pos = bytearray(), 0
    while True:
        eol = body.index(b"\r\n", pos)
        size = int(body[pos:eol].split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        out += body[eol + 2:eol + 2 + size]
        pos = eol + 2 + size + 2


async def dial_udp(request: str, host: str, port: int) -> str:
    """Send <request> to host:port over UDP and return the one datagram that answers."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[bytes] = loop.create_future()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data, addr):
            if not answer.done():
                answer.set_result(data)

        def error_received(self, exc):
            if not answer.done():
                answer.set_exception(exc)

    transport, _ = await loop.create_datagram_endpoint(Client, remote_addr=(host, port))
    try:
        transport.sendto(request.encode())
        return (await asyncio.wait_for(answer, DIAL_UDP_TIMEOUT)).decode("utf-8", "replace")
    finally:
        transport.close()


def netexec(argv: list[str]) -> int:
    flags = parse_flags(argv, FLAGS)
    ssl_context = None
    if flags["tls-cert-file"] or flags["tls-private-key-file"]:
        if not (flags["tls-cert-file"] and flags["tls-private-key-file"]):
            raise UsageError("--tls-cert-file and --tls-private-key-file go together")
        import ssl
        ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ssl_context.load_cert_chain(flags["tls-cert-file"], flags["tls-private-key-file"])

    async def main(program: Program) -> None:
        server = NetExec(program, flags["delay-shutdown"])
        program.on_signal = server.on_signal
        if flags["udp-port"] != -1:
            await serve_udp(flags["udp-port"], server.udp)
            go_log(f"Started UDP server on port {flags['udp-port']}")
        await serve_http(flags["http-port"], server.handle, ssl=ssl_context)
        go_log(f"Started HTTP{'S' if ssl_context else ''} server on port {flags['http-port']}")

    return Program().run(main)
