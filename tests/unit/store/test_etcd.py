"""What only the etcd store has: endpoints, failover between members, compaction seen from
another client."""
import asyncio

import pytest

from nanokube.store import CompactedError
from nanokube.store.etcd import EtcdStore, parse_endpoints
from nanokube.store.etcd_cluster import EtcdCluster, etcd_binary

needs_etcd = pytest.mark.skipif(etcd_binary() is None, reason="etcd is not installed")


def test_parse_endpoints():
    assert parse_endpoints("etcd://127.0.0.1:2379,127.0.0.2:2379") == [
        "http://127.0.0.1:2379", "http://127.0.0.2:2379"]
    assert parse_endpoints("http://h:1/") == ["http://h:1"]
    for bad in ("etcd://", "etcd://hostonly"):
        with pytest.raises(ValueError):
            parse_endpoints(bad)


@needs_etcd
async def test_writes_and_watches_survive_losing_a_member(tmp_path):
    with EtcdCluster(tmp_path / "etcd", members=3) as cluster:
        store = EtcdStore(cluster.endpoints)
        await store.open()
        try:
            r0 = store.current_revision()
            watch = store.watch("/a/", r0)
            first = await store.create("/a/0", b"0")
            assert (await asyncio.wait_for(anext(watch), 5))[0].kv == first
            cluster.kill(cluster.members[store._current])   # the member in use, watch's too
            written = [first]
            for i in range(1, 6):
                written.append(await store.create(f"/a/{i}", str(i).encode()))
            seen = []
            while len(seen) < 5:
                seen += await asyncio.wait_for(anext(watch), 10)
            assert [e.kv for e in seen] == written[1:]   # resumed, nothing lost or repeated
            await watch.aclose()
        finally:
            await store.close()


@needs_etcd
async def test_compaction_by_another_client_is_learned(tmp_path):
    with EtcdCluster(tmp_path / "etcd") as cluster:
        mine, other = EtcdStore(cluster.endpoints), EtcdStore(cluster.endpoints)
        await mine.open()
        await other.open()
        try:
            old = (await mine.create("/a/x", b"1")).mod_revision
            await mine.update("/a/x", b"2")
            top = (await mine.update("/a/x", b"3")).mod_revision
            await other.compact(top)
            with pytest.raises(CompactedError) as err:
                await mine.list("/a/", revision=old)
            assert (err.value.requested, err.value.compacted) == (old, top)
            assert mine.compacted_revision() == top
            again = EtcdStore(cluster.endpoints)
            await again.open()
            assert again.compacted_revision() == top
            await again.close()
        finally:
            await mine.close()
            await other.close()


@needs_etcd
def test_a_port_taken_before_etcd_binds_it_means_new_ports(tmp_path):
    import socket
    cluster = EtcdCluster(tmp_path / "etcd", members=1)
    taken = cluster.members[0].client_port
    with socket.socket() as squatter:          # another process got the port first
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        with cluster:
            assert cluster.members[0].client_port != taken
            assert cluster.members[0].alive()
