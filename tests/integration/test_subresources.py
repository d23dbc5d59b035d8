"""pods/binding, graceful pod deletion and */scale, through kubectl and plain requests."""
from __future__ import annotations

import asyncio
import json

import pytest

from nanokube.api.errors import StatusError
from nanokube.client import Client

DEPLOY = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
          "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                   "template": {"metadata": {"labels": {"app": "web"}},
                                "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}
POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
       "spec": {"containers": [{"name": "c", "image": "nginx"}]}}


def test_kubectl_scale_uses_the_scale_subresource(kubectl):
    kubectl("apply", "-f", "-", input=json.dumps(DEPLOY))
    out = kubectl("scale", "deployment", "web", "--replicas=5").stdout
    assert "deployment.apps/web scaled" in out
    got = json.loads(kubectl("get", "deploy", "web", "-o", "json").stdout)
    assert got["spec"]["replicas"] == 5
    scale = json.loads(kubectl("get", "--raw",
                               "/apis/apps/v1/namespaces/default/deployments/web/scale").stdout)
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 5
    assert scale["status"]["selector"] == "app=web"


def test_binding_then_graceful_deletion(apiserver, kubectl):
    async def run():
        async with Client.from_kubeconfig(apiserver.kubeconfig) as c:
            pods = "/api/v1/namespaces/default/pods"
            await c.create(pods, POD)
            binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
                       "target": {"apiVersion": "v1", "kind": "Node", "name": "node-1"}}
            await c.create(f"{pods}/p/binding", binding)
            pod = await c.get(f"{pods}/p")
            assert pod["spec"]["nodeName"] == "node-1"
            assert any(x["type"] == "PodScheduled" and x["status"] == "True"
                       for x in pod["status"]["conditions"])
            with pytest.raises(StatusError) as e:
                await c.create(f"{pods}/p/binding", binding)
            assert e.value.code == 409 and "already assigned" in e.value.message
            # A bound pod is deleted gracefully: marked, and removed by grace period 0.
            marked = await c.delete(f"{pods}/p")
            assert marked["metadata"]["deletionTimestamp"]
            assert marked["metadata"]["deletionGracePeriodSeconds"] == 30
            await c.get(f"{pods}/p")
            await c.delete(f"{pods}/p", {"kind": "DeleteOptions", "apiVersion": "v1",
                                          "gracePeriodSeconds": 0})
            with pytest.raises(StatusError) as e:
                await c.get(f"{pods}/p")
            assert e.value.code == 404
    asyncio.run(run())
