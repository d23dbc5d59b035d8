"""`make demo`: the seed walkthrough against a real nanokube API server, with the real kubectl.

Until `nanokube up` exists this starts `nanokube server` on loopback with a throw-away data
directory, shows kubectl working on the seed's Services, and stops it again."""
from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(url: str, proc: subprocess.Popen, timeout: float = 20) -> float:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise SystemExit("nanokube server exited during start-up")
        try:
            with urllib.request.urlopen(url + "/readyz", context=ctx, timeout=1):
                return time.monotonic() - t0
        except OSError:
            time.sleep(0.05)
    raise SystemExit("nanokube server did not become ready")


def _step(title: str, *args: str, env: dict, stdin: str | None = None) -> None:
    print(f"\n\033[1m$ kubectl {' '.join(args)}\033[0m   # {title}", flush=True)
    subprocess.run(["kubectl", *args], env=env, cwd=ROOT, input=stdin, text=True)


def main() -> int:
    if shutil.which("kubectl") is None:
        print("kubectl is not installed; use `nanokube get` etc. instead", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="nanokube-demo-"))
    port = _free_port()
    data = work / "demo"
    proc = subprocess.Popen([sys.executable, "-m", "nanokube", "server", "--data-dir", str(data),
                             "--listen", f"127.0.0.1:{port}"],
                            stdout=open(work / "server.log", "wb"), stderr=subprocess.STDOUT)
    try:
        took = _wait_ready(f"https://127.0.0.1:{port}", proc)
        print(f"nanokube API server ready on https://127.0.0.1:{port} in {took:.2f}s")
        env = dict(os.environ, KUBECONFIG=str(data / "kubeconfig"), HOME=str(work))
        _step("the seed's manifests, completed", "apply", "-f", "examples/seed/", env=env)
        _step("cluster IPs from 10.96.0.0/12, node ports from 30000-32767", "get", "services",
              "-o", "wide", env=env)
        _step("applying again changes nothing", "apply", "-f", "examples/seed/", env=env)
        _step("the v1beta1 Ingress, served as v1", "get", "ingress", env=env)
        _step("", "describe", "service", "my-nodeport-service", env=env)
        for f in sorted((ROOT / "examples" / "seed-verbatim").glob("clusterip-*.yaml")):
            _step(f"the seed's text as written: {f.name}", "create", "-f",
                  str(f.relative_to(ROOT)), env=env)
        _step("frees the IPs and ports", "delete", "-f", "examples/seed/", env=env)
        _step("", "get", "services", env=env)
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
