import asyncio
import json

import pytest
from aiohttp import web

from nanokube.api.errors import StatusError
from nanokube.client import APIConnectionError, APIResource, Client, parse_warning


async def serve(app):
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def server(discovery_docs):
    RESOURCE_LIST, APPS_LIST = discovery_docs
    seen = []

    async def watch(request):
        seen.append(dict(request.query))
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        e1 = json.dumps({"type": "ADDED", "object": {"metadata": {"name": "a"}}}).encode()
        e2 = json.dumps({"type": "MODIFIED", "object": {"metadata": {"name": "b"}}}).encode()
        # one event split over two chunks, two events in one chunk
        await resp.write(e1[:10])
        await asyncio.sleep(0.01)
        await resp.write(e1[10:] + b"\n" + e2 + b"\n")
        if request.query.get("resourceVersion") == "1":
            await resp.write(json.dumps({"type": "ERROR", "object": {
                "kind": "Status", "status": "Failure", "reason": "Expired", "code": 410,
                "message": "too old resource version: 1 (5)"}}).encode() + b"\n")
        await resp.write_eof()
        return resp

    async def svc(request):
        seen.append({"auth": request.headers.get("Authorization"),
                     "accept": request.headers.get("Accept")})
        return web.json_response(
            {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404,
             "reason": "NotFound", "message": 'services "x" not found',
             "details": {"name": "x", "kind": "services"}}, status=404,
            headers={"Warning": '299 - "unknown field \\"spec.x\\""'})

    def static(doc):
        async def handler(request):
            return web.json_response(doc)
        return handler

    app = web.Application()
    app.router.add_get("/api/v1/namespaces/default/services", watch)
    app.router.add_get("/api/v1/namespaces/default/services/x", svc)
    app.router.add_get("/api", static({"versions": ["v1"]}))
    app.router.add_get("/api/v1", static(RESOURCE_LIST))
    app.router.add_get("/apis", static({"groups": [
        {"name": "apps", "versions": [{"version": "v1beta1"}, {"version": "v1"}],
         "preferredVersion": {"version": "v1"}},
        {"name": "broken", "versions": [{"version": "v1"}]}]}))
    app.router.add_get("/apis/apps/v1", static(APPS_LIST))
    app.router.add_get("/apis/apps/v1beta1", static(
        {**APPS_LIST, "resources": [{**APPS_LIST["resources"][0], "name": "deployments"}]}))
    runner, url = await serve(app)
    yield url, seen
    await runner.cleanup()


def test_resource_path():
    rp = Client.resource_path
    assert rp("", "v1", "services") == "/api/v1/services"
    assert rp("", "v1", "services", "ns", "x", "status") == \
        "/api/v1/namespaces/ns/services/x/status"
    assert rp("apps", "v1", "deployments", "ns") == "/apis/apps/v1/namespaces/ns/deployments"


async def test_request_raises_the_servers_status_and_reports_warnings(server):
    url, seen = server
    warnings = []
    async with Client(url, token="t0k", warning_handler=warnings.append) as c:
        with pytest.raises(StatusError) as e:
            await c.get("/api/v1/namespaces/default/services/x")
    assert (e.value.code, e.value.reason, e.value.message, e.value.details) == \
        (404, "NotFound", 'services "x" not found', {"name": "x", "kind": "services"})
    assert seen[-1] == {"auth": "Bearer t0k", "accept": "application/json"}
    assert warnings == ['unknown field "spec.x"']


async def test_watch_streams_events_split_across_chunks(server):
    url, seen = server
    async with Client(url) as c:
        events = [e async for e in c.watch("/api/v1/namespaces/default/services",
                                           resource_version="7", labelSelector="a=b")]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == \
        [("ADDED", "a"), ("MODIFIED", "b")]
    assert seen[-1] == {"watch": "true", "resourceVersion": "7", "labelSelector": "a=b"}


async def test_watch_raises_on_an_error_event(server):
    url, _ = server
    got = []
    async with Client(url) as c:
        with pytest.raises(StatusError) as e:
            async for ev in c.watch("/api/v1/namespaces/default/services",
                                    resource_version="1"):
                got.append(ev)
    assert len(got) == 2
    assert (e.value.code, e.value.reason) == (410, "Expired")


async def test_discovery_maps_every_name_and_prefers_the_preferred_version(server):
    url, _ = server
    async with Client(url) as c:
        res = await c.resources()
        svc = APIResource("", "v1", "services", True)
        for key in ("Service", "service", "services", "svc"):
            assert res[key] == svc
        assert "services/status" not in res
        assert res["ns"] == APIResource("", "v1", "namespaces", False)
        assert res["deploy"] == res["deployments.apps"] == \
            APIResource("apps", "v1", "deployments", True)
        assert await c.kind_of("apps", "deployments") == "Deployment"
        assert await c.resource("SVC") == svc


def test_parse_warning():
    assert parse_warning('299 - "unknown field \\"spec.x\\""') == 'unknown field "spec.x"'


async def test_connection_refused():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    async with Client(f"http://127.0.0.1:{port}") as c:
        with pytest.raises(APIConnectionError) as e:
            await c.get("/api")
    assert e.value.refused
