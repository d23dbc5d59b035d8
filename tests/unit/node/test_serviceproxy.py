"""The agent's service proxy glue without root: informer events reach the proxier, and the
HTTP answers copy kube-proxy's (/healthz JSON, status codes; /metrics in Prometheus text)."""
from __future__ import annotations

import asyncio
import json
import re

import aiohttp

from nanokube.node.proxy.nft import FakeNft
from nanokube.node.proxy import NftProxier
from nanokube.node.proxy.conntrack import FakeConntrack
from nanokube.node.serviceproxy import ServiceProxy, event_type, go_time, healthz_body

GO_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{9} \+0000 UTC m=\+\d+\.\d{9}$")


class FakeInformer:
    def __init__(self) -> None:
        self.handlers = []
        self.synced = asyncio.Event()

    def add_handler(self, h) -> None:
        self.handlers.append(h)

    def emit(self, old, new) -> None:
        for h in self.handlers:
            h(old, new)


def svc(name: str, ip: str) -> dict:
    return {"metadata": {"namespace": "default", "name": name, "resourceVersion": "1"},
            "spec": {"type": "ClusterIP", "clusterIP": ip,
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}


def eps(name: str, ips: list[str]) -> dict:
    return {"metadata": {"namespace": "default", "name": f"{name}-x",
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}, "nodeName": "n1"}
                          for ip in ips]}


def test_event_type():
    assert event_type(None, {}) == "ADDED"
    assert event_type({}, {}) == "MODIFIED"
    assert event_type({}, None) == "DELETED"


def test_healthz_body_is_kube_proxys():
    body = healthz_body(True, 100.0, 200.5, True)
    assert re.fullmatch(r'\{"lastUpdated": "[^"]+","currentTime": "[^"]+", "nodeEligible": true\}',
                        body)
    doc = json.loads(body)
    assert doc["lastUpdated"][:19] == doc["currentTime"][:19]   # healthy: lastUpdated = now
    assert GO_TIME.match(doc["currentTime"])
    stale = json.loads(healthz_body(False, 100.0, 200.5, False))
    assert stale["lastUpdated"].startswith("1970-01-01 00:01:40.000000000 +0000 UTC")
    assert stale["nodeEligible"] is False
    never = json.loads(healthz_body(False, None, 200.5, True))
    assert never["lastUpdated"] == "0001-01-01 00:00:00 +0000 UTC"
    assert GO_TIME.match(go_time(1.5))


def _proxy(informer, nft, node_ip="127.0.0.1", ports=(0, 0)) -> ServiceProxy:
    proxier = NftProxier("n1", [node_ip], None, "10.244.0.0/16", "10.96.0.0/12", nft=nft,
                         conntrack=FakeConntrack(), health_check_servers=False, coalesce=0)
    return ServiceProxy(None, "n1", node_ip, informer, cluster_cidr="10.244.0.0/16",
                        service_cidr="10.96.0.0/12", metrics_port=ports[0],
                        healthz_port=ports[1], proxier=proxier)


def test_events_feed_the_proxier_and_first_sync_waits_for_both_lists():
    async def main():
        services = FakeInformer()
        nft = FakeNft()
        proxy = _proxy(services, nft)
        proxy.slices.run = lambda: asyncio.sleep(3600)     # no API server here
        proxy._serve = lambda: asyncio.sleep(0)
        services.emit(None, svc("web", "10.96.0.10"))
        proxy.slices._notify(None, eps("web", ["10.244.1.5", "10.244.2.6"]))
        task = asyncio.create_task(proxy.run())
        await asyncio.sleep(0.05)
        assert not proxy.synced.is_set() and not proxy.proxier.healthy()
        services.synced.set()
        proxy.slices.synced.set()
        await asyncio.wait_for(proxy.synced.wait(), 2)
        rules = proxy.proxier.ruleset()
        assert "10.96.0.10 . tcp . 80 . 1 : 10.244.2.6 . 8080" in rules
        services.emit(svc("web", "10.96.0.10"), None)           # deleted
        await asyncio.sleep(0.05)
        assert "10.96.0.10" not in proxy.proxier.ruleset()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    asyncio.run(main())


def test_http_endpoints():
    async def main():
        services = FakeInformer()
        proxy = _proxy(services, FakeNft(), ports=(0, 0))
        # bind on ephemeral ports: find them from the runners after start
        await proxy._serve()
        ports = [r.addresses[0][1] for r in proxy._runners]
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{ports[1]}/healthz") as r:
                assert r.status == 503                          # before the first sync
                assert r.headers["X-Content-Type-Options"] == "nosniff"
                assert (await r.json(content_type=None))["nodeEligible"] is True
            await proxy.proxier.start()
            async with s.get(f"http://127.0.0.1:{ports[1]}/healthz") as r:
                assert r.status == 200
            async with s.get(f"http://127.0.0.1:{ports[1]}/livez") as r:
                assert r.status == 200
            async with s.get(f"http://127.0.0.1:{ports[0]}/metrics") as r:
                text = await r.text()
                assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                assert "kubeproxy_sync_proxy_rules_last_timestamp_seconds" in text
                assert 'kubeproxy_healthz_total{code="503"} 1.0' in text
                assert 'kubeproxy_healthz_total{code="200"} 1.0' in text
        await proxy.proxier.stop()
        for r in proxy._runners:
            await r.close()
    asyncio.run(main())
