"""What the catalogue's programs share: logging, listening sockets, UDP, running until a signal.

The programs start in every pod and are benchmark targets, so they stay on the standard library
(uvloop when importable). The HTTP server is http_server.py.
"""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from typing import Awaitable, Callable

# The address programs listen on; all addresses (dual-stack) unless set. Tests set 127.0.0.1.
BIND_ENV = "NANOKUBE_BIND_ADDRESS"


def pod_hostname() -> str:
    """The pod's name as its containers see it: $HOSTNAME (set for containers), else uname's."""
    return os.environ.get("HOSTNAME") or socket.gethostname()


def format_peer(address) -> str:
    """"IP:port" as Go's RemoteAddr prints it (IPv4-mapped IPv6 shown as IPv4, IPv6 bracketed)."""
    host, port = address[0], address[1]
    if host.startswith("::ffff:") and "." in host:
        host = host[7:]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# ---- logging ---------------------------------------------------------------------------------

class Log:
    """Lines to stdout, as a container logs; buffered and flushed within 50 ms so that a busy
    server does not pay a write(2) per request."""

    def __init__(self, fd: int = 1):
        self.fd = fd
        self.pending: list[str] = []
        self.loop: asyncio.AbstractEventLoop | None = None

    def __call__(self, line: str) -> None:
        self.pending.append(line + "\n")
        if self.loop is None:
            self.flush()
        elif len(self.pending) == 1:
            self.loop.call_later(0.05, self.flush)
        elif len(self.pending) > 512:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        data = "".join(self.pending).encode("utf-8", "replace")
        self.pending.clear()
        try:
            while data:
                data = data[os.write(self.fd, data):]
        except OSError:                        # stdout gone: logging is best effort
            pass


log = Log()


def go_log(message: str) -> None:
    """A line as Go's log package prints it: "2006/01/02 15:04:05 message"."""
    log(time.strftime("%Y/%m/%d %H:%M:%S ") + message)


CONNECTIONS: set = set()  # open HTTP connections (http_server.HTTPProtocol), closed at exit


# ---- listening -------------------------------------------------------------------------------

def bind_socket(port: int, kind: int) -> socket.socket:
    """A socket on `port` of every address (IPv6 dual-stack when the kernel has IPv6), or of
    $NANOKUBE_BIND_ADDRESS when set."""
    address = os.environ.get(BIND_ENV)
    if address:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        candidates = [(family, address)]
    else:
        candidates = [(socket.AF_INET6, "::"), (socket.AF_INET, "0.0.0.0")]
    error: OSError | None = None
    for family, host in candidates:
        try:
            sock = socket.socket(family, kind)
        except OSError as e:                    # no IPv6 in this kernel
            error = e
            continue
        try:
            if family == socket.AF_INET6 and host == "::":
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            if kind == socket.SOCK_STREAM:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.setblocking(False)
            return sock
        except OSError as e:
            sock.close()
            error = e
    raise error


class _Datagram(asyncio.DatagramProtocol):
    def __init__(self, answer: Callable[[bytes, str], bytes | None]):
        self.answer = answer
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        reply = self.answer(data, format_peer(addr))
        if reply is not None:
            self.transport.sendto(reply, addr)


async def serve_udp(port: int, answer: Callable[[bytes, str], bytes | None]):
    """Answer each datagram with answer(data, "IP:port") (None: no reply)."""
    loop = asyncio.get_running_loop()
    sock = bind_socket(port, socket.SOCK_DGRAM)
    transport, _ = await loop.create_datagram_endpoint(lambda: _Datagram(answer), sock=sock)
    return transport


# ---- running a program -----------------------------------------------------------------------

class Program:
    """Runs main(program) on the fastest event loop available until stop() or SIGTERM/SIGINT."""

    def __init__(self, stop_signals=(signal.SIGTERM, signal.SIGINT)):
        self.stop_signals = stop_signals
        # called instead of stop(0) on a stop signal, for programs that shut down in steps
        self.on_signal: Callable[[int], None] | None = None
        self.exit_code = 0
        self.stopped: asyncio.Event | None = None

    def stop(self, code: int = 0) -> None:
        self.exit_code = code
        self.stopped.set()

    def stop_soon(self, code: int = 0) -> None:
        """Stop after the current response has gone out."""
        asyncio.get_running_loop().call_soon(self.stop, code)

    def run(self, main: Callable[["Program"], Awaitable[None]]) -> int:
        # until the loop handles them, a signal still ends the process with a clean code
        for sig in self.stop_signals:
            signal.signal(sig, lambda *_: sys.exit(0))
        try:
            import uvloop
            runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
        except ImportError:
            runner = asyncio.Runner()
        with runner:
            return runner.run(self._main(main))

    async def _main(self, main) -> int:
        loop = asyncio.get_running_loop()
        log.loop = loop
        self.stopped = asyncio.Event()
        for sig in self.stop_signals:
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            await main(self)
            await self.stopped.wait()
        finally:
            for connection in list(CONNECTIONS):
                connection.transport.close()
            log.flush()
            log.loop = None
        return self.exit_code

    def _on_signal(self, sig: int) -> None:
        if self.on_signal is not None:
            self.on_signal(sig)
        else:
            self.stop(0)
