"""Builders for Ingress, Service and EndpointSlice dicts used by the ingress unit tests."""
from __future__ import annotations

CLASS = {"kubernetes.io/ingress.class": "nginx"}


def backend(service="web", port=80):
    return {"service": {"name": service,
                        "port": {"number": port} if isinstance(port, int) else {"name": port}}}


def path(p, path_type="Prefix", service="web", port=80):
    return {"path": p, "pathType": path_type, "backend": backend(service, port)}


def rule(host, *paths):
    r = {"http": {"paths": list(paths)}}
    if host:
        r["host"] = host
    return r


def ingress(name, *rules, ns="default", ts="2024-01-01T00:00:00Z", annotations=None, tls=None,
            default=None, cls=True):
    ann = dict(CLASS if cls else {})
    ann.update(annotations or {})
    spec = {"rules": list(rules)}
    if tls is not None:
        spec["tls"] = tls
    if default is not None:
        spec["defaultBackend"] = default
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": ts, "annotations": ann},
            "spec": spec}


def service(name, ns="default", ports=(("http", 80, 8080),)):
    return {"metadata": {"name": name, "namespace": ns},
            "spec": {"ports": [{"name": n, "port": p, "targetPort": t} for n, p, t in ports]}}


def endpointslice(service_name, ips, ns="default", ports=(("http", 8080),), ready=True):
    return {"metadata": {"name": service_name + "-abc", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": "IPv4", "ports": [{"name": n, "port": p} for n, p in ports],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": ready}} for ip in ips]}
