"""Throwaway etcd clusters on loopback, for tests and benchmarks (not for `nanokube up`, which is
given the etcd of the user's choice with --store etcd://...).

Each member is a real `etcd` process (Debian's etcd-server) with its own data dir under
`base_dir`, client and peer URLs on free 127.0.0.1 ports, and short raft timings so that a
one-member cluster is ready in ~0.1 s and a three-member one re-elects in well under a second.
Members are ended by their pid.
"""
from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path


def etcd_binary() -> str | None:
    return shutil.which("etcd")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    proc: subprocess.Popen | None = None

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class EtcdCluster:
    def __init__(self, base_dir: Path | str, members: int = 1, heartbeat_ms: int = 20,
                 election_ms: int = 200):
        self.base_dir = Path(base_dir)
        self.heartbeat_ms = heartbeat_ms
        self.election_ms = election_ms
        self.size = members
        self.members = self._new_members()

    def _new_members(self) -> list[Member]:
        return [Member(f"m{i}", _free_port(), _free_port(), self.base_dir / f"m{i}")
                for i in range(self.size)]

    @property
    def endpoints(self) -> list[str]:
        return [m.client_url for m in self.members]

    @property
    def url(self) -> str:
        """The --store value: etcd://127.0.0.1:P1,127.0.0.1:P2,..."""
        return "etcd://" + ",".join(f"127.0.0.1:{m.client_port}" for m in self.members)

    def _argv(self, m: Member) -> list[str]:
        initial = ",".join(f"{x.name}={x.peer_url}" for x in self.members)
        return [etcd_binary() or "etcd", "--name", m.name, "--data-dir", str(m.data_dir),
                "--listen-client-urls", m.client_url, "--advertise-client-urls", m.client_url,
                "--listen-peer-urls", m.peer_url, "--initial-advertise-peer-urls", m.peer_url,
                "--initial-cluster", initial, "--initial-cluster-state", "new",
                "--initial-cluster-token", f"nanokube-{self.members[0].client_port}",
                "--heartbeat-interval", str(self.heartbeat_ms),
                "--election-timeout", str(self.election_ms),
                "--logger", "zap", "--log-outputs", str(self.base_dir / f"{m.name}.log")]

    def start(self, timeout: float = 20, attempts: int = 3) -> "EtcdCluster":
        """Start every member. A free port picked here can be taken by another process before
        etcd binds it: then the whole cluster starts again on new ports (a fresh data dir)."""
        if etcd_binary() is None:
            raise RuntimeError("etcd is not installed (Debian: etcd-server)")
        self.base_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(attempts):
            try:
                for m in self.members:
                    self.start_member(m)
                for m in self.members:
                    self.wait_healthy(m, timeout)
                return self
            except BaseException:
                self.stop()
                if attempt == attempts - 1 or not self._port_was_taken():
                    raise
                for m in self.members:
                    shutil.rmtree(m.data_dir, ignore_errors=True)
                self.members = self._new_members()
        return self

    def _port_was_taken(self) -> bool:
        for m in self.members:
            log = self.base_dir / f"{m.name}.log"
            if log.exists() and "address already in use" in log.read_text(errors="replace"):
                log.unlink()
                return True
        return False

    def start_member(self, m: Member) -> None:
        m.proc = subprocess.Popen(self._argv(m), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)

    def wait_healthy(self, m: Member, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not m.alive():
                raise RuntimeError(f"etcd member {m.name} exited; see {self.base_dir}/{m.name}.log")
            try:
                with urllib.request.urlopen(m.client_url + "/health", timeout=1) as r:
                    if b'"true"' in r.read():
                        return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"etcd member {m.name} is not healthy after {timeout}s")

    def kill(self, m: Member, sig: int = signal.SIGKILL) -> None:
        if m.alive():
            m.proc.send_signal(sig)
            m.proc.wait(10)

    def stop(self) -> None:
        for m in self.members:
            if m.alive():
                m.proc.terminate()
        for m in self.members:
            if m.proc is not None:
                try:
                    m.proc.wait(5)
                except subprocess.TimeoutExpired:
                    m.proc.kill()
                    m.proc.wait(5)

    def __enter__(self) -> "EtcdCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
