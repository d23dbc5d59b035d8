"""Fixtures that run a real `nanokube server` and point kubectl and the Python client at it.

Every process a test starts is ended by its id, also when the test fails."""
from __future__ import annotations

import os
import subprocess

import pytest

from harness import ROOT, ApiServerProcess

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
