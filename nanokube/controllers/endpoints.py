"""The legacy Endpoints controller: core/v1 Endpoints of every Service with a selector.

Ready pods go to `addresses`, the others to `notReadyAddresses`; addresses with the same ports
share a subset (RepackSubsets). Terminating pods are left out unless the Service publishes
not-ready addresses. The `kubernetes` Service's Endpoints belong to the API server.
"""
from __future__ import annotations

import logging

from nanokube.api.errors import StatusError
from nanokube.controllers.endpointslice import (HEADLESS_LABEL, TRIGGER_TIME, endpoint_ports,
                                                selector_matches, trigger_time)
from nanokube.controllers.endpointslicemirroring import SKIP_MIRROR_LABEL
from nanokube.controllers.informer import object_key
from nanokube.controllers.manager import Controller, is_pod_ready, is_pod_terminal

log = logging.getLogger("nanokube.endpoints")


def _address(pod: dict, ip: str, service: dict) -> dict:
    meta, spec = pod["metadata"], pod.get("spec") or {}
    addr = {"ip": ip, "targetRef": {"kind": "Pod", "namespace": meta["namespace"],
                                    "name": meta["name"], "uid": meta.get("uid", "")}}
    if spec.get("nodeName"):
        addr["nodeName"] = spec["nodeName"]
    if spec.get("hostname") and spec.get("subdomain") == service["metadata"]["name"]:
        addr["hostname"] = spec["hostname"]
    return addr


def _pod_ip(pod: dict) -> str:
    status = pod.get("status") or {}
    return status.get("podIP") or next((p.get("ip") for p in status.get("podIPs") or []), "")


def endpoint_subsets(service: dict, pods: list[dict]) -> list[dict]:
    spec = service.get("spec") or {}
    publish = bool(spec.get("publishNotReadyAddresses"))
    # (ip, ready) -> address, and the ports each address serves
    entries: dict[str, tuple[dict, bool, list[dict]]] = {}
    for pod in pods:
        ip = _pod_ip(pod)
        if not ip or is_pod_terminal(pod):
            continue
        if pod["metadata"].get("deletionTimestamp") and not publish:
            continue
        ready = publish or is_pod_ready(pod)
        ports = endpoint_ports(service, pod)
        if not ports and spec.get("ports"):
            continue                 # no service port resolves for this pod
        entries[pod["metadata"]["name"]] = (_address(pod, ip, service), ready, ports)
    subsets: dict[str, dict] = {}
    for addr, ready, ports in entries.values():
        ports = sorted(ports, key=lambda p: (p["name"], p["port"], p["protocol"]))
        key = repr([(p["name"], p["port"], p["protocol"]) for p in ports])
        subset = subsets.setdefault(key, {"ports": ports} if ports else {})
        subset.setdefault("addresses" if ready else "notReadyAddresses", []).append(addr)
    result = []
    for key in sorted(subsets):
        subset = subsets[key]
        for field in ("addresses", "notReadyAddresses"):
            if field in subset:
                subset[field].sort(key=lambda a: (a["ip"], a["targetRef"]["name"]))
        result.append({k: subset[k] for k in ("addresses", "notReadyAddresses", "ports")
                       if k in subset})
    return result


def endpoints_labels(service: dict) -> dict:
    labels = dict(service["metadata"].get("labels") or {})
    if (service.get("spec") or {}).get("clusterIP") == "None":
        labels[HEADLESS_LABEL] = ""
    else:
        labels.pop(HEADLESS_LABEL, None)
    # The EndpointSlice controller already makes this Service's slices: not to be mirrored.
    labels[SKIP_MIRROR_LABEL] = "true"
    return labels


class EndpointsController(Controller):
    name = "endpoints"
    workers = 2

    def __init__(self, client, informers):
        super().__init__(client, informers)
        self.services = informers.services()
        self.pods = informers.pods()
        self.endpoints = informers.informer("", "v1", "endpoints")
        self._deleted_services: set[str] = set()
        self.services.add_handler(self._on_service)
        self.endpoints.add_handler(self._on_endpoints)
        self.pods.add_handler(self._on_pod)

    def _on_service(self, old: dict | None, new: dict | None) -> None:
        key = object_key(new or old)
        if new is None:
            self._deleted_services.add(key)
        else:
            self._deleted_services.discard(key)
        self.enqueue(key)

    def _on_endpoints(self, old: dict | None, new: dict | None) -> None:
        """Someone else changed Endpoints we manage: put ours back. Endpoints without a
        Service are a user's own business."""
        key = object_key(new or old)
        if self.services.get(key) is not None:
            self.enqueue(key)

    def _on_pod(self, old: dict | None, new: dict | None) -> None:
        ns = (new or old)["metadata"]["namespace"]
        labels = [(o["metadata"].get("labels")) for o in (old, new) if o]
        for svc in self.services.list(ns):
            if any(selector_matches((svc.get("spec") or {}).get("selector"), lb)
                   for lb in labels):
                self.enqueue(object_key(svc))

    async def reconcile(self, key: str) -> float | None:
        if key == "default/kubernetes":
            return None
        service = self.services.get(key)
        if service is None:
            # Endpoints carry no ownerReference: the Service's deletion is ours to follow.
            if key in self._deleted_services and self.endpoints.get(key) is not None:
                ns, name = key.split("/", 1)
                try:
                    await self.client.delete(self.client.resource_path("", "v1", "endpoints",
                                                                       ns, name))
                except StatusError as e:
                    if e.code != 404:
                        raise
            self._deleted_services.discard(key)
            return None
        spec = service.get("spec") or {}
        if not spec.get("selector") or spec.get("type") == "ExternalName":
            return None
        ns, name = service["metadata"]["namespace"], service["metadata"]["name"]
        pods = [p for p in self.pods.list(ns)
                if selector_matches(spec["selector"], p["metadata"].get("labels"))]
        subsets = endpoint_subsets(service, pods)
        labels = endpoints_labels(service)
        current = self.endpoints.get(key)
        if current is not None and (current.get("subsets") or []) == subsets and \
                (current["metadata"].get("labels") or {}) == labels:
            return None
        path = self.client.resource_path("", "v1", "endpoints", ns)
        meta = {"name": name, "namespace": ns, "labels": labels,
                "annotations": {TRIGGER_TIME: trigger_time()}}
        body = {"apiVersion": "v1", "kind": "Endpoints", "metadata": meta, "subsets": subsets}
        if current is None:
            try:
                self.endpoints.write_through(await self.client.create(path, body))
            except StatusError as e:
                if e.code != 409:
                    raise
                raise StatusError(409, "Conflict", "endpoints exist; waiting for the cache")
            return None
        meta["resourceVersion"] = current["metadata"]["resourceVersion"]
        meta["annotations"] = {**(current["metadata"].get("annotations") or {}),
                               TRIGGER_TIME: trigger_time()}
        self.endpoints.write_through(await self.client.update(f"{path}/{name}", body))
        return None
