"""services/proxy and pods/proxy: parsing [scheme:]name[:port], choosing the endpoint and the
port, kube-apiserver's error messages, and a whole request relayed through a real agent tunnel
(TunnelServer on loopback) to an HTTP server standing in for the pod."""
from __future__ import annotations

import asyncio
import random

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request

from nanokube.api import errors as E
from nanokube.api import proxy as P
from nanokube.node.httpserver import HTTPServer, Router
from nanokube.node.tunnel import TunnelServer


def test_split_scheme_name_port():
    assert P.split_scheme_name_port("web") == ("", "web", "")
    assert P.split_scheme_name_port("web:80") == ("", "web", "80")
    assert P.split_scheme_name_port("web:http") == ("", "web", "http")
    assert P.split_scheme_name_port("https:web:443") == ("https", "web", "443")
    assert P.split_scheme_name_port("https:web:") == ("https", "web", "")
    # two parts are always name:port
    assert P.split_scheme_name_port("https:web") == ("", "https", "web")
    for bad in ("", ":80", "ftp:web:21", "a:b:c:d", "https::80"):
        assert P.split_scheme_name_port(bad) is None, bad


SERVICE = {"metadata": {"name": "web"},
           "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080},
                              {"name": "metrics", "port": 9090}]}}


def pod(name: str, ip: str) -> dict:
    return {"metadata": {"name": name}, "spec": {"nodeName": "n1"},
            "status": {"podIP": ip, "podIPs": [{"ip": ip}]}}


def address(name: str, ip: str) -> dict:
    return {"ip": ip, "nodeName": "n1", "targetRef": {"kind": "Pod", "name": name}}


ENDPOINTS = {"subsets": [{
    "addresses": [address("a", "10.244.1.2"), address("b", "10.244.1.3")],
    "notReadyAddresses": [address("c", "10.244.1.4")],
    "ports": [{"name": "http", "port": 8080}, {"name": "metrics", "port": 9090}]}]}
PODS = {"a": pod("a", "10.244.1.2"), "b": pod("b", "10.244.1.3"), "c": pod("c", "10.244.1.4")}


def status_of(call) -> tuple[int, str]:
    with pytest.raises(E.StatusError) as info:
        call()
    return info.value.code, info.value.message


def test_port_number_becomes_the_service_port_name():
    assert P.service_port_name(SERVICE, "80") == "http"
    assert P.service_port_name(SERVICE, "metrics") == "metrics"
    assert status_of(lambda: P.service_port_name(SERVICE, "81")) == \
        (503, 'no service port 81 found for service "web"')


def test_a_random_ready_endpoint_on_the_port():
    rng = random.Random(1)
    seen = {P.pick_endpoint(SERVICE, ENDPOINTS, "80", "web:80", PODS, rng)[:2]
            for _ in range(40)}
    assert seen == {("10.244.1.2", 8080), ("10.244.1.3", 8080)}     # never the not-ready c
    assert P.pick_endpoint(SERVICE, ENDPOINTS, "metrics", "web:metrics", PODS,
                           rng)[1] == 9090


def test_stale_addresses_are_skipped():
    moved = dict(PODS, a=pod("a", "10.244.2.9"))        # a's IP changed: not a's any more
    del moved["b"]                                      # b is gone
    assert status_of(lambda: P.pick_endpoint(SERVICE, ENDPOINTS, "80", "web:80", moved)) == \
        (503, 'no endpoints available for service "web:80"')


def test_no_endpoints_messages():
    assert status_of(lambda: P.pick_endpoint(SERVICE, {"subsets": []}, "80", "web:80",
                                             PODS)) == \
        (503, 'no endpoints available for service "web"')
    assert status_of(lambda: P.pick_endpoint(SERVICE, None, "", "web", PODS))[0] == 503
    # no port given: only an unnamed port matches (the service's ports are named)
    assert status_of(lambda: P.pick_endpoint(SERVICE, ENDPOINTS, "", "web", PODS)) == \
        (503, 'no endpoints available for service "web"')
    single = {"subsets": [{"addresses": [address("a", "10.244.1.2")],
                           "ports": [{"port": 8080}]}]}
    svc = {"metadata": {"name": "one"}, "spec": {"ports": [{"port": 80}]}}
    assert P.pick_endpoint(svc, single, "", "one", PODS)[:2] == ("10.244.1.2", 8080)
    assert P.pick_endpoint(svc, single, "80", "one:80", PODS)[:2] == ("10.244.1.2", 8080)


def test_pod_port_and_address():
    p = {"spec": {"containers": [{"name": "x"}, {"name": "y", "ports": [
        {"containerPort": 8080}, {"containerPort": 9000}]}]}, "status": {"podIP": "10.244.1.2"}}
    assert P.pod_target_port(p, "") == "8080"
    assert P.pod_target_port(p, "9000") == "9000"
    assert P.pod_target_port({"spec": {"containers": [{"name": "x"}]}}, "") == ""
    assert P.pod_address(p) == "10.244.1.2"
    for ip in ("", "127.0.0.1", "0.0.0.0", "169.254.1.1", "224.0.0.1", "nonsense"):
        assert status_of(lambda: P.pod_address({"status": {"podIP": ip}})) == \
            (400, "address not allowed")


def test_split_proxy_path_keeps_escaping_and_trailing_slash():
    base = "/api/v1/namespaces/default/services/web:80/proxy"
    assert P.split_proxy_path(base + "/a%2Fb/?x=1&y=%20", True) == (base, "/a%2Fb/", "x=1&y=%20")
    assert P.split_proxy_path(base, True) == (base, "", "")
    assert P.split_proxy_path(base + "/", True) == (base, "/", "")
    assert P.split_proxy_path("/api/v1/nodes/n1/proxy/healthz", False) == \
        ("/api/v1/nodes/n1/proxy", "/healthz", "")


def test_redirects_to_the_backend_stay_under_the_proxy():
    t = P.Target("http", "10.244.1.2", 8080, "10.0.0.2")
    prefix = "/api/v1/namespaces/default/pods/a/proxy"
    assert P.rewrite_location("/login?next=%2F", t, prefix) == prefix + "/login?next=%2F"
    assert P.rewrite_location("http://10.244.1.2:8080/x", t, prefix) == prefix + "/x"
    assert P.rewrite_location("http://other.test/x", t, prefix) == "http://other.test/x"


def test_request_head_drops_credentials_and_hop_by_hop_headers():
    request = make_mocked_request("POST", "/x", headers={
        "Authorization": "Bearer secret", "Connection": "keep-alive", "Keep-Alive": "5",
        "X-Forwarded-For": "192.0.2.7", "Content-Length": "3", "Accept": "text/plain",
        "Host": "127.0.0.1:6443"})
    head = P.request_head(request, "/api/v1/namespaces/d/pods/a/proxy", "/echo", "msg=hi",
                          False).decode()
    lines = head.split("\r\n")
    assert lines[0] == "POST /echo?msg=hi HTTP/1.1"
    assert "Authorization: Bearer secret" not in lines and "Keep-Alive: 5" not in lines
    assert "Host: 127.0.0.1:6443" in lines and "Content-Length: 3" in lines
    assert "X-Forwarded-Uri: /api/v1/namespaces/d/pods/a/proxy/echo" in lines
    assert any(line.startswith("X-Forwarded-For: 192.0.2.7") for line in lines)
    assert "Connection: close" in lines and head.endswith("\r\n\r\n")


# ---- a whole request: API server handler -> agent tunnel -> "pod" ---------------------------

class Storage:
    def __init__(self, objects: dict):
        self.objects = objects

    async def get(self, namespace, name):
        try:
            return self.objects[name]
        except KeyError:
            raise E.not_found_error(self.plural, "", name) from None


def storage(plural: str, objects: dict) -> Storage:
    s = Storage(objects)
    s.plural = plural
    return s


class FakeApi:
    def __init__(self, pod_port: int, with_endpoints: bool = True):
        web_pod = pod("web-1", "127.0.0.1")
        web_pod["status"]["hostIP"] = "127.0.0.1"
        web_pod["spec"]["containers"] = [{"name": "c", "ports": [{"containerPort": pod_port}]}]
        svc = {"metadata": {"name": "web"},
               "spec": {"ports": [{"name": "http", "port": 80, "targetPort": pod_port}]}}
        eps = {"subsets": [{"addresses": [address("web-1", "127.0.0.1")],
                            "ports": [{"name": "http", "port": pod_port}]}]}
        self.storages = {("", "pods"): storage("pods", {"web-1": web_pod}),
                         ("", "services"): storage("services", {
                             "web": svc, "empty": {**svc, "metadata": {"name": "empty"}}}),
                         ("", "endpoints"): storage("endpoints", {"web": eps}),
                         ("", "nodes"): storage("nodes", {})}


async def pod_app(request: web.Request) -> web.StreamResponse:
    """What the pod answers: the request as it arrived, or a redirect, or a stream."""
    if request.path == "/redirect":
        raise web.HTTPFound("/elsewhere")
    if request.path == "/ws":
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            await ws.send_str(msg.data.upper())
        return ws
    if request.path == "/stream":
        resp = web.StreamResponse(headers={"Access-Control-Allow-Origin": "*"})
        await resp.prepare(request)
        for i in range(3):
            await resp.write(b"part%d\n" % i)
        await resp.write_eof()
        return resp
    body = await request.read()
    return web.json_response({
        "method": request.method, "path": request.raw_path, "body": body.decode(),
        "authorization": request.headers.get("Authorization"),
        "forwardedUri": request.headers.get("X-Forwarded-Uri"),
        "forwardedFor": request.headers.get("X-Forwarded-For")})


@pytest.fixture
async def relay(monkeypatch):
    pod_server = TestServer(web.Application(), port=0)
    pod_server.app.router.add_route("*", "/{tail:.*}", pod_app)
    await pod_server.start_server()
    router = Router()
    TunnelServer(lambda: {"127.0.0.1"}, None).add_routes(router)
    agent = HTTPServer(router, "127.0.0.1", 0)
    await agent.start()
    monkeypatch.setattr(P, "KUBELET_PORT", agent.addresses[0][1])
    # the "pod" listens on loopback, which pods/proxy refuses ("address not allowed")
    monkeypatch.setattr(P, "_global_unicast", lambda ip: True)
    api = FakeApi(pod_server.port)

    async def handler(request: web.Request) -> web.StreamResponse:
        parts = request.path.split("/")
        try:
            return await P.serve(request, api, parts[5], parts[4], parts[6])
        except E.StatusError as e:
            return web.json_response({"message": e.message}, status=e.code)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()
        await agent.close()
        await pod_server.close()


async def test_service_proxy_relays_method_path_query_and_body(relay):
    r = await relay.post("/api/v1/namespaces/default/services/web:80/proxy/echo/a%2Fb?msg=hi",
                         data=b"payload", headers={"Authorization": "Bearer t"})
    assert r.status == 200
    got = await r.json()
    assert got["method"] == "POST" and got["path"] == "/echo/a%2Fb?msg=hi"
    assert got["body"] == "payload" and got["authorization"] is None
    assert got["forwardedUri"] == "/api/v1/namespaces/default/services/web:80/proxy/echo/a%2Fb"
    assert got["forwardedFor"] == "127.0.0.1"


async def test_pod_proxy_default_port_streaming_and_cors(relay):
    r = await relay.get("/api/v1/namespaces/default/pods/web-1/proxy/stream")
    assert r.status == 200 and await r.text() == "part0\npart1\npart2\n"
    assert "Access-Control-Allow-Origin" not in r.headers
    r = await relay.request("HEAD", "/api/v1/namespaces/default/pods/web-1/proxy/x")
    assert r.status == 200


async def test_redirects(relay):
    r = await relay.get("/api/v1/namespaces/default/services/web:80/proxy?a=1",
                        allow_redirects=False)
    assert r.status == 301
    assert r.headers["Location"] == "/api/v1/namespaces/default/services/web:80/proxy/?a=1"
    r = await relay.get("/api/v1/namespaces/default/services/web:http/proxy/redirect",
                        allow_redirects=False)
    assert r.status == 302
    assert r.headers["Location"] == "/api/v1/namespaces/default/services/web:http/proxy/elsewhere"


async def test_errors(relay):
    r = await relay.get("/api/v1/namespaces/default/services/empty:80/proxy/")
    assert r.status == 503
    assert (await r.json())["message"] == 'no endpoints available for service "empty"'
    r = await relay.get("/api/v1/namespaces/default/services/nope/proxy/")
    assert r.status == 404 and (await r.json())["message"] == 'services "nope" not found'
    r = await relay.get("/api/v1/namespaces/default/services/web:81/proxy/")
    assert (await r.json())["message"] == 'no service port 81 found for service "web"'
    r = await relay.get("/api/v1/namespaces/default/pods/web-1:1/proxy/")
    assert r.status == 503
    assert (await r.json())["message"] == \
        "error trying to reach service: dial tcp 127.0.0.1:1: connect: connection refused"
    r = await relay.request("TRACE", "/api/v1/namespaces/default/pods/web-1/proxy/")
    assert r.status == 405


async def test_websocket_upgrade_passes_through(relay):
    async with relay.ws_connect("/api/v1/namespaces/default/services/web:80/proxy/ws") as ws:
        for text in ("hello", "again"):
            await ws.send_str(text)
            assert (await asyncio.wait_for(ws.receive(), 5)).data == text.upper()
