"""The container environment: service links, downward API, $(VAR) expansion, sources."""
import base64

import pytest

from nanokube.node.envvars import EnvError, container_env, expand, service_env, services_env


def svc(name, ns, ip, ports):
    return {"metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": ip, "ports": ports}}


KUBERNETES = svc("kubernetes", "default", "10.96.0.1",
                 [{"name": "https", "port": 443, "protocol": "TCP"}])
POD = {"metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1"},
       "spec": {"nodeName": "node-1", "serviceAccountName": "default"}}


def test_service_env_is_docker_link_style():
    env = service_env(svc("my-svc", "shop", "10.96.0.20",
                          [{"name": "http", "port": 80, "protocol": "TCP"},
                           {"name": "dns", "port": 53, "protocol": "UDP"}]))
    assert env["MY_SVC_SERVICE_HOST"] == "10.96.0.20"
    assert env["MY_SVC_SERVICE_PORT"] == "80"
    assert env["MY_SVC_SERVICE_PORT_HTTP"] == "80"
    assert env["MY_SVC_SERVICE_PORT_DNS"] == "53"
    assert env["MY_SVC_PORT"] == "tcp://10.96.0.20:80"
    assert env["MY_SVC_PORT_80_TCP"] == "tcp://10.96.0.20:80"
    assert env["MY_SVC_PORT_80_TCP_PROTO"] == "tcp"
    assert env["MY_SVC_PORT_80_TCP_PORT"] == "80"
    assert env["MY_SVC_PORT_80_TCP_ADDR"] == "10.96.0.20"
    assert env["MY_SVC_PORT_53_UDP"] == "udp://10.96.0.20:53"


def test_headless_services_have_no_env():
    assert service_env(svc("h", "shop", "None", [{"port": 80}])) == {}


def test_kubernetes_service_always_other_namespaces_only_with_links():
    other = svc("db", "shop", "10.96.0.30", [{"port": 5432, "protocol": "TCP"}])
    elsewhere = svc("x", "other", "10.96.0.40", [{"port": 1, "protocol": "TCP"}])
    env = services_env([KUBERNETES, other, elsewhere], "shop", True)
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    assert env["KUBERNETES_SERVICE_PORT_HTTPS"] == "443"
    assert env["KUBERNETES_PORT_443_TCP"] == "tcp://10.96.0.1:443"
    assert env["DB_SERVICE_HOST"] == "10.96.0.30"
    assert "X_SERVICE_HOST" not in env
    env = services_env([KUBERNETES, other], "shop", False)
    assert "DB_SERVICE_HOST" not in env and env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"


def test_expand():
    values = {"A": "1", "B": "two"}
    assert expand("$(A)-$(B)", values.get) == "1-two"
    assert expand("$(C)", values.get) == "$(C)"
    assert expand("$$(A)", values.get) == "$(A)"
    assert expand("$(A", values.get) == "$(A"


def test_container_env_field_refs_and_expansion():
    container = {"name": "c", "env": [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
        {"name": "URL", "value": "http://$(POD_IP):80/$(KUBERNETES_SERVICE_HOST)"},
    ]}
    env = container_env(POD, container, pod_ip="10.244.1.5", host_ip="10.123.0.11",
                        hostname="web-1", services=[KUBERNETES])
    assert env["POD_NAME"] == "web-1" and env["POD_NS"] == "shop" and env["POD_UID"] == "u-1"
    assert env["POD_IP"] == "10.244.1.5" and env["HOST_IP"] == "10.123.0.11"
    assert env["NODE"] == "node-1" and env["SA"] == "default"
    assert env["URL"] == "http://10.244.1.5:80/10.96.0.1"
    assert env["HOSTNAME"] == "web-1"
    assert "/usr/bin" in env["PATH"]


def test_container_env_overrides_service_links():
    container = {"name": "c", "env": [{"name": "KUBERNETES_SERVICE_HOST", "value": "mine"}]}
    env = container_env(POD, container, pod_ip="", host_ip="", hostname="h",
                        services=[KUBERNETES])
    assert env["KUBERNETES_SERVICE_HOST"] == "mine"


def test_config_map_and_secret_refs():
    sources = {
        ("ConfigMap", "cfg"): {"data": {"mode": "fast", "level": "3"}},
        ("Secret", "s"): {"data": {"token": base64.b64encode(b"hunter2").decode()}},
    }
    container = {"name": "c",
                 "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
                 "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s",
                                                                         "key": "token"}}},
                         {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg",
                                                                            "key": "mode"}}}]}
    env = container_env(POD, container, pod_ip="", host_ip="", hostname="h", services=[],
                        get_source=lambda kind, name: sources.get((kind, name)))
    assert env["TOKEN"] == "hunter2" and env["MODE"] == "fast"
    assert env["CFG_mode"] == "fast" and env["CFG_level"] == "3"


def test_missing_reference_is_an_error_unless_optional():
    container = {"name": "c", "env": [{"name": "X", "valueFrom": {
        "configMapKeyRef": {"name": "nope", "key": "k"}}}]}
    with pytest.raises(EnvError, match='configmap "nope" not found'):
        container_env(POD, container, pod_ip="", host_ip="", hostname="h", services=[],
                      get_source=lambda kind, name: None)
    container["env"][0]["valueFrom"]["configMapKeyRef"]["optional"] = True
    env = container_env(POD, container, pod_ip="", host_ip="", hostname="h", services=[],
                        get_source=lambda kind, name: None)
    assert "X" not in env
