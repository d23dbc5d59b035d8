"""Fixtures that run a real `nanokube server` and point kubectl and the Python client at it.

Every process a test starts is ended by its id, also when the test fails."""
from __future__ import annotations

import os
import subprocess

import pytest

from harness import ROOT, ApiServerProcess

def pytest_generate_tests(metafunc):
    """Modules marked `pytest.mark.stores("sqlite", "etcd")` run against each store backend."""
    marker = metafunc.definition.get_closest_marker("stores")
    if marker is not None and "store_backend" in metafunc.fixturenames:
        metafunc.parametrize("store_backend", marker.args)


@pytest.fixture
def store_backend():
    return "sqlite"


@pytest.fixture
def store_args(store_backend, tmp_path):
    """`nanokube server` arguments for the backend: nothing for SQLite; for etcd a throwaway
    one-member etcd on loopback, ended by pid after the test."""
    if store_backend == "sqlite":
        yield []
        return
    from nanokube.store.etcd_cluster import EtcdCluster, etcd_binary
    if etcd_binary() is None:
        pytest.skip("etcd is not installed (make setup installs etcd-server)")
    with EtcdCluster(tmp_path / "etcd") as etcd:
        yield ["--store", etcd.url]


@pytest.fixture
def apiserver(tmp_path, store_args):
    server = ApiServerProcess(tmp_path / "data", extra=store_args)
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
