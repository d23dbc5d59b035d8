"""Issue 2 acceptance with the official Python `kubernetes` client."""
from __future__ import annotations

import threading

import pytest

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client, watch  # noqa: E402

pytestmark = pytest.mark.stores("sqlite", "etcd")


def _service(name: str) -> client.V1Service:
    return client.V1Service(
        metadata=client.V1ObjectMeta(name=name, labels={"suite": "py"}),
        spec=client.V1ServiceSpec(selector={"app": name}, type="NodePort",
                                  ports=[client.V1ServicePort(name="http", port=80,
                                                              target_port=8080)]))


def test_services_create_list_patch_watch_delete(k8s_client):
    v1 = client.CoreV1Api(k8s_client)
    created = v1.create_namespaced_service("default", _service("py-svc"))
    assert created.spec.cluster_ip.startswith("10.")
    assert 30000 <= created.spec.ports[0].node_port <= 32767

    names = [s.metadata.name for s in v1.list_namespaced_service(
        "default", label_selector="suite=py").items]
    assert names == ["py-svc"]

    patched = v1.patch_namespaced_service("py-svc", "default",
                                          {"spec": {"ports": [{"port": 80, "targetPort": 9090}]}})
    assert patched.spec.ports[0].target_port == 9090
    assert patched.spec.ports[0].node_port == created.spec.ports[0].node_port

    events: list[tuple[str, str]] = []
    w = watch.Watch()
    rv = v1.list_namespaced_service("default").metadata.resource_version

    def consume():
        for ev in w.stream(v1.list_namespaced_service, "default", resource_version=rv,
                           timeout_seconds=10):
            events.append((ev["type"], ev["object"].metadata.name))
            if ev["type"] == "DELETED":
                w.stop()
    t = threading.Thread(target=consume)
    t.start()
    v1.patch_namespaced_service("py-svc", "default", {"metadata": {"labels": {"x": "y"}}})
    deleted = v1.delete_namespaced_service("py-svc", "default")
    t.join(15)
    assert deleted.metadata.name == "py-svc"
    assert ("MODIFIED", "py-svc") in events and ("DELETED", "py-svc") in events
    with pytest.raises(client.ApiException) as e:
        v1.read_namespaced_service("py-svc", "default")
    assert e.value.status == 404


def test_ingresses_create_list_patch_watch_delete(k8s_client):
    net = client.NetworkingV1Api(k8s_client)
    ing = client.V1Ingress(
        metadata=client.V1ObjectMeta(name="py-ing"),
        spec=client.V1IngressSpec(ingress_class_name="nginx", rules=[client.V1IngressRule(
            host="example.com", http=client.V1HTTPIngressRuleValue(paths=[
                client.V1HTTPIngressPath(path="/", path_type="Prefix",
                                         backend=client.V1IngressBackend(
                                             service=client.V1IngressServiceBackend(
                                                 name="my-service",
                                                 port=client.V1ServiceBackendPort(
                                                     number=80))))]))]))
    net.create_namespaced_ingress("default", ing)
    assert [i.metadata.name for i in net.list_namespaced_ingress("default").items] == ["py-ing"]
    patched = net.patch_namespaced_ingress("py-ing", "default",
                                           {"metadata": {"annotations": {"a": "b"}}})
    assert patched.metadata.annotations == {"a": "b"}
    w = watch.Watch()
    seen = []
    for ev in w.stream(net.list_namespaced_ingress, "default", timeout_seconds=5):
        seen.append((ev["type"], ev["object"].metadata.name))
        w.stop()
    assert seen == [("ADDED", "py-ing")]
    net.delete_namespaced_ingress("py-ing", "default")
    assert net.list_namespaced_ingress("default").items == []


def test_paging_with_a_label_selector_returns_every_match(k8s_client):
    """limit/continue with a selector: no matching object is lost between pages."""
    v1 = client.CoreV1Api(k8s_client)
    for i in range(7):
        svc = _service(f"page-{i}")
        svc.metadata.labels = {"page": "yes" if i % 2 == 0 else "no"}
        svc.spec.type = "ClusterIP"
        v1.create_namespaced_service("default", svc)
    seen, token = [], None
    while True:
        page = v1.list_namespaced_service("default", label_selector="page=yes", limit=3,
                                          _continue=token)
        seen += [s.metadata.name for s in page.items]
        token = page.metadata._continue
        if not token:
            break
    assert sorted(seen) == ["page-0", "page-2", "page-4", "page-6"]
