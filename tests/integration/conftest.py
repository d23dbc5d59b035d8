"""Fixtures that run a real `nanokube server` and point kubectl and the Python client at it.

Every process a test starts is ended by its id, also when the test fails."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ApiServerProcess:
    """One `nanokube server` on loopback with its own data dir."""

    def __init__(self, data_dir: Path, port: int | None = None, extra: list[str] | None = None):
        self.data_dir = data_dir
        self.port = port or free_port()
        self.extra = extra or []
        self.proc: subprocess.Popen | None = None
        self.log = data_dir.parent / f"{data_dir.name}-server.log"

    @property
    def kubeconfig(self) -> str:
        return str(self.data_dir / "kubeconfig")

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20) -> "ApiServerProcess":
        cmd = [sys.executable, "-m", "nanokube", "server", "--data-dir", str(self.data_dir),
               "--listen", f"127.0.0.1:{self.port}", *self.extra]
        self.proc = subprocess.Popen(cmd, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,
                                     cwd=ROOT)
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", context=ctx, timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"server not ready: {self.log.read_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def apiserver(tmp_path):
    server = ApiServerProcess(tmp_path / "data")
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def kubectl(apiserver, tmp_path):
    """Run the real kubectl against the server: kubectl("get", "svc") -> CompletedProcess."""
    home = tmp_path / "home"
    home.mkdir()
    env = dict(os.environ, KUBECONFIG=apiserver.kubeconfig, HOME=str(home))

    def run(*args, input: str | None = None, check: bool = True, timeout: float = 30):
        proc = subprocess.run(["kubectl", *args], input=input, capture_output=True, text=True,
                              env=env, timeout=timeout, cwd=ROOT)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc
    run.env = env
    return run


@pytest.fixture
def k8s_client(apiserver):
    """The official Python client configured from the server's kubeconfig."""
    kubernetes = pytest.importorskip("kubernetes")
    api_client = kubernetes.config.new_client_from_config(config_file=apiserver.kubeconfig)
    try:
        yield api_client
    finally:
        api_client.close()


def require_kubectl():
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
