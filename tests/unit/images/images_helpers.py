"""Helpers of the image program tests: run a program on a free loopback port, talk to it."""
from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
POD_NAME = "pod-under-test"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ProgramProcess:
    """One program (`python -m nanokube.images.<module> args...`) listening on 127.0.0.1."""

    def __init__(self, module: str, args: list[str], env: dict[str, str], log: Path):
        self.log = log
        environment = {**os.environ, "NANOKUBE_BIND_ADDRESS": "127.0.0.1", "HOSTNAME": POD_NAME,
                       "PYTHONPATH": str(ROOT), **env}
        self.started = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", f"nanokube.images.{module}", *args],
                                     env=environment, stdout=log.open("wb"),
                                     stderr=subprocess.STDOUT, cwd=ROOT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_http(self, port: int, timeout: float = 10.0) -> float:
        """Wait until an HTTP request on `port` is answered; returns seconds since start."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"exited {self.proc.returncode}: {self.output()}"
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if s.recv(16).startswith(b"HTTP/1.1 "):
                        return time.monotonic() - self.started
            except OSError:
                time.sleep(0.005)
        raise AssertionError(f"no answer on port {port}: {self.output()}")

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()




def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """One GET on its own connection: (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def udp(port: int, message: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.sendto(message, ("127.0.0.1", port))
        return s.recv(2048)
