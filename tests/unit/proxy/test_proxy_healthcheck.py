"""healthCheckNodePort answers (kube-proxy's contract) and the model's slice bookkeeping."""
from __future__ import annotations

import asyncio
import json
import socket

from proxy_objects import endpoint, service, slice_

from nanokube.node.proxy.healthcheck import HealthCheckServers, ServiceHealth, health_response
from nanokube.node.proxy.model import ProxyModel


def test_health_response_matches_kube_proxy():
    status, headers, body = health_response(ServiceHealth("ns", "web", 2), True)
    assert status == 200
    assert headers == {"Content-Type": "application/json", "X-Content-Type-Options": "nosniff",
                       "X-Load-Balancing-Endpoint-Weight": "2"}
    assert body == ('{\n\t"service": {\n\t\t"namespace": "ns",\n\t\t"name": "web"\n\t},\n'
                    '\t"localEndpoints": 2,\n\t"serviceProxyHealthy": true\n}')
    assert json.loads(body) == {"service": {"namespace": "ns", "name": "web"}, "localEndpoints": 2,
                                "serviceProxyHealthy": True}
    assert health_response(ServiceHealth("ns", "web", 0), True)[0] == 503
    assert health_response(ServiceHealth("ns", "web", 3), False)[0] == 503


async def test_health_servers_listen_and_answer():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    healthy = {"v": True}
    servers = HealthCheckServers(lambda: healthy["v"], host="127.0.0.1")
    await servers.sync({port: ServiceHealth("default", "web", 1)})
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        raw = (await reader.read()).decode()
        writer.close()
        assert raw.startswith("HTTP/1.1 200")
        assert "X-Load-Balancing-Endpoint-Weight: 1" in raw
        assert '"localEndpoints": 1' in raw
        await servers.sync({})
        try:
            await asyncio.open_connection("127.0.0.1", port)
            assert False, "still listening"
        except OSError:
            pass
    finally:
        await servers.close()


def test_model_follows_a_slice_that_changes_service():
    m = ProxyModel("node-1", "10.244.1.0/24")
    m.update_service("ADDED", service("a", "10.96.0.5", [{"port": 80}]))
    m.update_service("ADDED", service("b", "10.96.0.6", [{"port": 80}]))
    s = slice_("a", [endpoint("10.244.1.2")], [{"port": 8080}], name="shared")
    assert m.update_endpointslice("ADDED", s) == {("default", "a")}
    moved = slice_("b", [endpoint("10.244.1.2")], [{"port": 8080}], name="shared")
    assert m.update_endpointslice("MODIFIED", moved) == {("default", "a"), ("default", "b")}
    assert m.service_ports(("default", "a"))[0].endpoints == ()
    assert m.service_ports(("default", "b"))[0].endpoints[0].ip == "10.244.1.2"
    assert m.update_endpointslice("DELETED", moved) == {("default", "b")}
    assert m.service_ports(("default", "b"))[0].endpoints == ()


def test_model_merges_slices_and_marks_local_endpoints():
    m = ProxyModel("node-1", None)
    m.update_service("ADDED", service("a", "10.96.0.5", [{"port": 80}]))
    m.update_endpointslice("ADDED", slice_("a", [endpoint("10.244.1.2")], [{"port": 8080}], name="a-1"))
    m.update_endpointslice("ADDED", slice_("a", [endpoint("10.244.2.2", node="node-2"),
                                                 endpoint("10.244.1.2")], [{"port": 8080}], name="a-2"))
    eps = m.service_ports(("default", "a"))[0].endpoints
    assert [(e.ip, e.is_local) for e in eps] == [("10.244.1.2", True), ("10.244.2.2", False)]
