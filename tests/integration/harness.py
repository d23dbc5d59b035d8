"""Helpers shared by the integration tests and benchmarks: a real `nanokube server` process.

(A module of its own, not conftest.py: `from conftest import` is ambiguous when pytest
collects several test folders with a conftest each.)"""
from __future__ import annotations

import contextlib
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


def require_kubectl():
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")


# ---- whole clusters (`nanokube up`), for the tests that need root ------------------------------

def wait_for(what, predicate, timeout: float = 20.0, interval: float = 0.1):
    """The first truthy value of predicate(), or AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


def leftovers(name: str) -> list[str]:
    """Namespaces and links of cluster `name` that still exist."""
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    found = [line for line in netns.splitlines() if line.startswith(f"nk-{name}-")]
    return found + [line for line in links.splitlines() if f"nk-{name}" in line]


def processes_under(path: Path) -> list[str]:
    """Processes whose command line names `path` (a test cluster's home: its pods' launchers
    and log pumps do): after `down`, none may be left."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if str(path) in argv:
                found.append(f"{entry.name} {argv.strip()}")
    return found


def stop_process(proc: subprocess.Popen | None, timeout: float = 10) -> None:
    """SIGTERM a process this test started, SIGKILL if it lingers."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def alive(pid: int) -> bool:
    """Running and not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


@contextlib.contextmanager
def cluster_up(tmp: Path, prefix: str, nodes: int = 1, timeout: float = 60):
    """A test module's cluster: `nanokube up`, then `down` also when the module fails, and
    nothing of it left behind afterwards."""
    require_kubectl()
    c = ClusterRun(tmp, prefix=prefix)
    try:
        c.nk("up", "--nodes", str(nodes), timeout=timeout)
        yield c
    finally:
        c.nk("down", check=False)
    assert leftovers(c.name) == []
    assert processes_under(c.home) == []


class ClusterRun:
    """One cluster of a test, in its own NANOKUBE_HOME under the test's tmp folder."""

    def __init__(self, tmp: Path, prefix: str = "t"):
        import os
        self.name = f"{prefix}{os.getpid() % 100000}"
        tmp.mkdir(parents=True, exist_ok=True)
        self.home = tmp / "home"
        self.env = dict(os.environ, NANOKUBE_HOME=str(self.home), HOME=str(tmp))

    @property
    def dir(self) -> Path:
        return self.home / self.name

    def nk(self, *args, check=True, timeout=60) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "nanokube", "--name", self.name, *args],
                              capture_output=True, text=True, env=self.env, timeout=timeout,
                              cwd=ROOT)
        if check and proc.returncode != 0:
            raise AssertionError(f"nanokube {args}: {proc.stdout}\n{proc.stderr}")
        return proc

    def kubectl(self, *args, input=None, check=True) -> subprocess.CompletedProcess:
        env = dict(self.env, KUBECONFIG=str(self.dir / "kubeconfig"))
        proc = subprocess.run(["kubectl", *args], capture_output=True, text=True, env=env,
                              input=input, timeout=60)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {args}: {proc.stdout}\n{proc.stderr}")
        return proc

    def get(self, *args) -> dict:
        import json
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def state(self) -> dict:
        import json
        return json.loads((self.dir / "cluster.json").read_text())
