"""The `kubernetes` Service's endpoints with several API servers on one store: each server's
lease record, the live servers' addresses (sorted, the same from every server), a crashed
server dropped once its record expired, a stopping server removed at once."""
from datetime import datetime, timedelta, timezone

import pytest

from nanokube.api.endpointreconciler import (ADDRESS_ANNOTATION, LeaseEndpointReconciler,
                                             expired, kubernetes_endpoints, lease_name,
                                             live_addresses)
from nanokube.api.storage import ResourceStorage
from nanokube.registry.endpoints import EndpointsStrategy
from nanokube.registry.endpointslice import EndpointSliceStrategy
from nanokube.registry.lease import LeaseStrategy
from nanokube.store.sqlite import SQLiteStore


@pytest.fixture
async def storages(tmp_path):
    store = SQLiteStore(str(tmp_path / "state.db"))
    await store.open()
    yield {(s.group, s.plural): ResourceStorage(s, store)
           for s in (LeaseStrategy(), EndpointsStrategy(), EndpointSliceStrategy())}
    await store.close()


async def endpoint_ips(storages) -> tuple[list[str], list[str]]:
    ep = await storages[("", "endpoints")].get("default", "kubernetes")
    sl = await storages[("discovery.k8s.io", "endpointslices")].get("default", "kubernetes")
    return ([a["ip"] for s in ep["subsets"] for a in s["addresses"]],
            [e["addresses"][0] for e in sl["endpoints"]])


def record(ip: str, renewed: datetime, seconds: int = 15) -> dict:
    return {"metadata": {"name": lease_name(ip), "annotations": {ADDRESS_ANNOTATION: ip}},
            "spec": {"renewTime": renewed.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                     "leaseDurationSeconds": seconds}}


def test_one_server_endpoints_keep_their_shape():
    ep, slice_ = kubernetes_endpoints(["10.123.0.1"], 6443)
    assert ep["subsets"] == [{"addresses": [{"ip": "10.123.0.1"}],
                              "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}]
    assert slice_["endpoints"] == [{"addresses": ["10.123.0.1"], "conditions": {"ready": True}}]
    assert slice_["metadata"]["labels"]["kubernetes.io/service-name"] == "kubernetes"
    assert kubernetes_endpoints([], 6443)[0]["subsets"] == []


def test_live_addresses_skip_expired_records_and_sort_numerically():
    now = datetime.now(timezone.utc)
    leases = [record("10.123.0.10", now), record("10.123.0.9", now - timedelta(seconds=3)),
              record("10.123.0.2", now - timedelta(seconds=16)), {"metadata": {}, "spec": {}}]
    assert expired(leases[2], now) and not expired(leases[1], now) and expired(leases[3], now)
    assert live_addresses(leases, now) == ["10.123.0.9", "10.123.0.10"]


async def test_servers_share_the_endpoints_and_a_crashed_one_drops_out(storages):
    a = LeaseEndpointReconciler(storages, "10.123.0.1", 6443, "a", lease_duration=15)
    b = LeaseEndpointReconciler(storages, "10.123.0.2", 6443, "b", lease_duration=15)
    c = LeaseEndpointReconciler(storages, "10.123.0.3", 6443, "c", lease_duration=15)
    assert a.interval == 10   # kube-apiserver: 10 s rounds for a 15 s TTL
    await c.reconcile()
    await a.reconcile()
    assert await b.reconcile() == ["10.123.0.1", "10.123.0.2", "10.123.0.3"]
    assert await endpoint_ips(storages) == (["10.123.0.1", "10.123.0.2", "10.123.0.3"],) * 2
    leases = storages[("coordination.k8s.io", "leases")]
    lease = await leases.get("kube-system", "apiserver-10-123-0-2")
    assert lease["metadata"]["labels"] == {"apiserver.kubernetes.io/identity": "kube-apiserver"}
    assert lease["spec"]["holderIdentity"] == "b"
    # b crashes: its record is not renewed; 20 s later it has expired
    lease["spec"]["renewTime"] = (datetime.now(timezone.utc) - timedelta(seconds=20)).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")
    await leases.update("kube-system", lease["metadata"]["name"], lease)
    assert await a.reconcile() == ["10.123.0.1", "10.123.0.3"]
    assert await endpoint_ips(storages) == (["10.123.0.1", "10.123.0.3"],) * 2
    names = [le["metadata"]["name"] for le in (await leases.list("kube-system"))[0]]
    assert "apiserver-10-123-0-2" not in names
    # c stops cleanly: gone at once
    await c.remove()
    assert await endpoint_ips(storages) == (["10.123.0.1"], ["10.123.0.1"])
    # b comes back at its address: it is listed again
    assert await b.reconcile() == ["10.123.0.1", "10.123.0.2"]


async def test_a_round_that_changes_nothing_writes_nothing(storages):
    a = LeaseEndpointReconciler(storages, "10.123.0.1", 6443, "a")
    await a.reconcile()
    before = await storages[("", "endpoints")].get("default", "kubernetes")
    await a.reconcile()
    after = await storages[("", "endpoints")].get("default", "kubernetes")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
