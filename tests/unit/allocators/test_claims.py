"""Allocations shared through the store: two API servers (two ServiceStrategy instances with
their own bitmaps) on one store never hand out one value twice."""
import asyncio
import json
import random

import pytest

from nanokube.allocators.claims import PREFIX, held_values
from nanokube.api import errors as E
from nanokube.api.storage import ResourceStorage
from nanokube.registry.base import ServerConfig
from nanokube.registry.service import ServiceStrategy
from nanokube.store.sqlite import SQLiteStore


def service(name: str, type_: str = "ClusterIP", **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"type": type_, "ports": [{"port": 80}], **spec}}


@pytest.fixture
async def servers(tmp_path):
    store = SQLiteStore(str(tmp_path / "state.db"))
    await store.open()
    config = ServerConfig(service_cluster_ip_range="10.0.0.0/26",
                          service_node_port_range="30000-30099")
    strategies = []
    for seed in (1, 1):   # the same random choices: every first pick collides
        s = ServiceStrategy(config)
        for allocator in [*s.allocators.ip_allocators.values(), s.allocators.node_ports]:
            allocator.bitmap.rng = random.Random(seed)
        await s.share_allocations(store)
        strategies.append(s)
    yield store, [ResourceStorage(s, store) for s in strategies]
    for s in strategies:
        await s.stop_sharing()
    await store.close()


async def claims(store) -> dict[str, str]:
    kvs, _, _ = await store.list(PREFIX)
    return {kv.key[len(PREFIX):]: json.loads(kv.value)["name"] for kv in kvs}


async def settle():
    for _ in range(20):
        await asyncio.sleep(0.01)


async def test_concurrent_creates_on_two_servers_get_distinct_values(servers):
    store, (a, b) = servers
    made = await asyncio.gather(*(
        (a if i % 2 else b).create("default", service(f"s{i}", "NodePort")) for i in range(16)))
    ips = [svc["spec"]["clusterIP"] for svc in made]
    ports = [svc["spec"]["ports"][0]["nodePort"] for svc in made]
    assert len(set(ips)) == 16 and len(set(ports)) == 16
    await settle()
    held = await claims(store)
    assert held == {v: svc["metadata"]["name"] for svc in made for v in held_values(svc)}


async def test_a_value_claimed_on_one_server_is_refused_on_the_other(servers):
    _, (a, b) = servers
    first = await a.create("default", service("one"))
    with pytest.raises(E.StatusError) as err:
        await b.create("default", service("two", clusterIP=first["spec"]["clusterIP"]))
    assert err.value.code == 422
    assert "provided IP is already allocated" in str(err.value)


async def test_delete_and_update_give_claims_back(servers):
    store, (a, b) = servers
    svc = await a.create("default", service("x", "NodePort"))
    port = svc["spec"]["ports"][0]["nodePort"]
    svc["spec"]["type"] = "ClusterIP"
    svc["spec"]["ports"][0].pop("nodePort")
    await b.update("default", "x", svc)
    await settle()
    assert f"nodeports/{port}" not in await claims(store)
    await b.delete("default", "x")
    await settle()
    assert await claims(store) == {}
    # the other server may now take the freed IP on request
    again = await a.create("default", service("y", clusterIP=svc["spec"]["clusterIP"]))
    assert again["spec"]["clusterIP"] == svc["spec"]["clusterIP"]


async def test_repair_claims_for_stored_services_and_drops_leaks(servers):
    store, (a, _) = servers
    svc = await a.create("default", service("kept"))
    await settle()
    shared = a.strategy.shared
    ip_claim = f"clusterips/{svc['spec']['clusterIP']}"
    await store.delete(PREFIX + ip_claim)                 # as after `nanokube migrate`
    await store.create(PREFIX + "nodeports/30001", json.dumps({"uid": "gone"}).encode())
    assert await shared.repair() == (1, 0)               # the leak is only suspected once
    assert await shared.repair() == (0, 1)
    assert await claims(store) == {ip_claim: "kept"}
