"""Builders of Service and EndpointSlice dicts shared by the proxy unit tests."""
from __future__ import annotations

import copy


def service(name: str, cluster_ip: str, ports: list[dict], ns: str = "default", status=None, **spec) -> dict:
    ports = [{"protocol": "TCP", **p} for p in ports]
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"namespace": ns, "name": name},
            "spec": {"clusterIP": cluster_ip, "type": spec.pop("type", "ClusterIP"), "ports": ports, **spec},
            "status": copy.deepcopy(status or {})}


def endpoint(ip: str, node: str = "node-1", ready: bool = True, serving: bool | None = None,
             terminating: bool = False) -> dict:
    cond = {"ready": ready, "serving": ready if serving is None else serving, "terminating": terminating}
    return {"addresses": [ip], "nodeName": node, "conditions": cond}


def slice_(svc: str, endpoints: list[dict], ports: list[dict], name: str | None = None,
           ns: str = "default") -> dict:
    ports = [{"protocol": "TCP", **p} for p in ports]
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"namespace": ns, "name": name or f"{svc}-abcde",
                         "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4", "endpoints": endpoints, "ports": ports}
