"""A tiny fake API server (services only) on 127.0.0.1, in a thread of its own so that the CLI's
own event loop can talk to it, and a kubeconfig pointing at it."""
from __future__ import annotations

import asyncio
import json
import threading

import pytest
from aiohttp import web

RESOURCE_LIST = {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
    {"name": "services", "singularName": "service", "namespaced": True, "kind": "Service",
     "shortNames": ["svc"], "verbs": ["get", "list"]},
    {"name": "services/status", "singularName": "", "namespaced": True, "kind": "Service"},
    {"name": "namespaces", "singularName": "namespace", "namespaced": False,
     "kind": "Namespace", "shortNames": ["ns"]},
]}
APPS_LIST = {"kind": "APIResourceList", "groupVersion": "apps/v1", "resources": [
    {"name": "deployments", "singularName": "deployment", "namespaced": True,
     "kind": "Deployment", "shortNames": ["deploy"]}]}


def status(code, reason, message, details=None):
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}
    if details is not None:
        body["details"] = details
    return web.json_response(body, status=code)


class FakeAPI:
    def __init__(self):
        self.objects: dict[tuple[str, str], dict] = {}
        self.requests: list[tuple[str, str, str, object]] = []   # method, path+query, ctype, body
        self.fail_create: web.Response | None = None
        self.rv = 10

    def table(self, objs):
        return {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
                "metadata": {"resourceVersion": str(self.rv)},
                "columnDefinitions": [
                    {"name": "Name", "type": "string", "format": "name", "priority": 0},
                    {"name": "Type", "type": "string", "format": "", "priority": 0},
                    {"name": "Selector", "type": "string", "format": "", "priority": 1}],
                "rows": [{"cells": [o["metadata"]["name"], o["spec"].get("type", "ClusterIP"),
                                    "<none>"],
                          "object": {"kind": "PartialObjectMetadata",
                                     "metadata": o["metadata"]}} for o in objs]}

    async def handle(self, request: web.Request):
        body = None
        if request.can_read_body:
            body = json.loads(await request.read())
        self.requests.append((request.method, request.path_qs,
                              request.headers.get("Content-Type", ""), body))
        path = request.path
        if path == "/api":
            return web.json_response({"kind": "APIVersions", "versions": ["v1"]})
        if path == "/apis":
            return web.json_response({"kind": "APIGroupList", "groups": [
                {"name": "apps", "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
                 "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}}]})
        if path == "/api/v1":
            return web.json_response(RESOURCE_LIST)
        if path == "/apis/apps/v1":
            return web.json_response(APPS_LIST)
        parts = path.strip("/").split("/")
        # /api/v1/namespaces/<ns>/services[/<name>]
        if parts[:3] != ["api", "v1", "namespaces"] or len(parts) < 5 or parts[4] != "services":
            return status(404, "NotFound", "the server could not find the requested resource")
        ns = parts[3]
        name = parts[5] if len(parts) > 5 else None
        table = "as=Table" in request.headers.get("Accept", "")
        if request.method == "GET" and name is None:
            items = [o for (n, _), o in sorted(self.objects.items()) if n == ns]
            if table:
                return web.json_response(self.table(items))
            return web.json_response({"kind": "ServiceList", "apiVersion": "v1",
                                      "metadata": {"resourceVersion": str(self.rv)},
                                      "items": items})
        if request.method == "POST":
            if self.fail_create is not None:
                return self.fail_create
            self.rv += 1
            obj = dict(body)
            obj["metadata"] = {**obj["metadata"], "resourceVersion": str(self.rv)}
            self.objects[(ns, obj["metadata"]["name"])] = obj
            return web.json_response(obj, status=201)
        obj = self.objects.get((ns, name))
        if obj is None:
            return status(404, "NotFound", f'services "{name}" not found',
                          {"name": name, "kind": "services"})
        if request.method == "GET":
            return web.json_response(self.table([obj]) if table else obj)
        if request.method == "PATCH":
            self.rv += 1
            return web.json_response(obj)
        if request.method == "DELETE":
            del self.objects[(ns, name)]
            return web.json_response(obj)
        return status(405, "MethodNotAllowed", "no")


@pytest.fixture
def fake_api(tmp_path):
    api = FakeAPI()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder = {}

    async def start():
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", api.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        holder["runner"] = runner
        holder["port"] = site._server.sockets[0].getsockname()[1]

    def serve():
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    started.wait(10)
    api.url = f"http://127.0.0.1:{holder['port']}"
    api.kubeconfig = tmp_path / "kubeconfig"
    api.kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters:\n- name: k\n  cluster:\n    server: {api.url}\n"
        "contexts:\n- name: c\n  context:\n    cluster: k\n    user: u\n"
        "users:\n- name: u\n  user:\n    token: secret\n")
    yield api
    asyncio.run_coroutine_threadsafe(holder["runner"].cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


@pytest.fixture
def discovery_docs():
    return RESOURCE_LIST, APPS_LIST
