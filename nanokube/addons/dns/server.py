"""The DNS server: UDP and TCP on one address, plus CoreDNS-style /health, /ready and /metrics.

UDP datagrams are answered inline from the prepared answers (no task per query). TCP carries
the same messages with a two-byte length prefix, several per connection (RFC 7766), never
truncated.
"""
from __future__ import annotations

import asyncio
import logging
import socket
from typing import Callable

from nanokube.addons.dns.answers import Answers

log = logging.getLogger("nanokube.dns")

TCP_IDLE_SECONDS = 10


class Counters:
    def __init__(self) -> None:
        self.udp = 0
        self.tcp = 0


class UDPProtocol(asyncio.DatagramProtocol):
    def __init__(self, answers: Answers, counters: Counters):
        self.answers = answers
        self.counters = counters
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        self.counters.udp += 1
        try:
            resp = self.answers.respond(data)
        except Exception:               # a bad query must never stop the server
            log.exception("query from %s failed", addr)
            return
        if resp is not None:
            self.transport.sendto(resp, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("udp: %s", exc)


def split_hostport(text: str, default_port: int) -> tuple[str, int]:
    """"0.0.0.0:53", "[::1]:53", ":53", "127.0.0.1" -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or (host.count(":") and not host.startswith("[")):
        return text.strip("[]") or "0.0.0.0", default_port
    return host.strip("[]") or "0.0.0.0", int(port)


class DNSServer:
    def __init__(self, answers: Answers, host: str, port: int):
        self.answers = answers
        self.host, self.port = host, port
        self.counters = Counters()
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        # a big receive buffer absorbs bursts while the loop is busy elsewhere
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        self._udp, _ = await loop.create_datagram_endpoint(
            lambda: UDPProtocol(self.answers, self.counters), sock=sock)
        self._tcp = await asyncio.start_server(self._serve_tcp, self.host, self.port,
                                               reuse_address=True)

    async def _serve_tcp(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE_SECONDS)
                query = await asyncio.wait_for(reader.readexactly(int.from_bytes(head, "big")),
                                               TCP_IDLE_SECONDS)
                self.counters.tcp += 1
                resp = self.answers.respond(query, tcp=True)
                if resp is not None:
                    writer.write(len(resp).to_bytes(2, "big") + resp)
                    await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
            pass
        except Exception:
            log.exception("tcp query failed")
        finally:
            writer.close()

    def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()


# ---- /health, /ready, /metrics -------------------------------------------------------------------

async def serve_http(host: str, port: int,
                     routes: dict[str, Callable[[], tuple[int, str]]]) -> asyncio.AbstractServer:
    """A minimal HTTP/1.0-style server for probes and Prometheus: GET path -> (status, body)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            path = request.split(b" ", 2)[1].decode(errors="replace").split("?", 1)[0]
            route = routes.get(path)
            status, body = route() if route else (404, "404 page not found\n")
            reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}.get(status, "")
            data = body.encode()
            writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; "
                         f"charset=utf-8\r\nContent-Length: {len(data)}\r\n"
                         f"Connection: close\r\n\r\n".encode() + data)
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError,
                ConnectionError, IndexError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port, reuse_address=True)


def metrics_text(counters: Counters, answers: Answers) -> str:
    """The few CoreDNS metric names that dashboards look at first."""
    return (
        "# HELP coredns_dns_requests_total Counter of DNS requests made per zone, protocol "
        "and family.\n# TYPE coredns_dns_requests_total counter\n"
        f'coredns_dns_requests_total{{proto="udp",server="dns://",zone="."}} {counters.udp}\n'
        f'coredns_dns_requests_total{{proto="tcp",server="dns://",zone="."}} {counters.tcp}\n'
        "# HELP nanokube_dns_prepared_answers Answers prepared in wire format.\n"
        "# TYPE nanokube_dns_prepared_answers gauge\n"
        f"nanokube_dns_prepared_answers {len(answers.table)}\n")
