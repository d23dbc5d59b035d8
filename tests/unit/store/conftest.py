"""The `store` fixture: every backend that must pass the contract suite (etcd joins later)."""
import pytest

from nanokube.store.sqlite import SQLiteStore

BACKENDS = ["sqlite"]


async def _open_sqlite(tmp_path):
    store = SQLiteStore(str(tmp_path / "state.db"))
    await store.open()
    return store


OPENERS = {"sqlite": _open_sqlite}


@pytest.fixture(params=BACKENDS)
async def store(request, tmp_path):
    store = await OPENERS[request.param](tmp_path)
    yield store
    await store.close()
