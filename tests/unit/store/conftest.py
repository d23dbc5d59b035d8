"""The `store` fixture: every backend that must pass the contract suite. The etcd variant runs
a throwaway one-member etcd on loopback ports per test (skipped only where etcd is not
installed; `make setup` installs it)."""
import pytest

from nanokube.store.etcd import EtcdStore
from nanokube.store.etcd_cluster import EtcdCluster, etcd_binary
from nanokube.store.sqlite import SQLiteStore

BACKENDS = ["sqlite", "etcd"]


@pytest.fixture(params=BACKENDS)
async def store(request, tmp_path):
    if request.param == "sqlite":
        store = SQLiteStore(str(tmp_path / "state.db"))
        await store.open()
        yield store
        await store.close()
        return
    if etcd_binary() is None:
        pytest.skip("etcd is not installed (make setup installs etcd-server)")
    with EtcdCluster(tmp_path / "etcd") as cluster:
        store = EtcdStore(cluster.endpoints)
        await store.open()
        try:
            yield store
        finally:
            await store.close()
