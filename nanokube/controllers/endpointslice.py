"""The EndpointSlice controller: the ready/serving/terminating endpoints of each Service.

Per Service with a selector: one endpoint per matching pod that has an IP and is not finished,
grouped into slices by the (resolved) port list, at most 100 endpoints per slice; with no
endpoints at all, exactly one placeholder slice. Existing slices are kept and edited where they
can be, so that an endpoint change touches one slice (the reconciler of endpointslice/reconciler.go).
"""
from __future__ import annotations

import copy
import json
import logging
from datetime import datetime, timezone

from nanokube.api.errors import StatusError
from nanokube.controllers.informer import object_key
from nanokube.controllers.manager import Controller, is_pod_ready, is_pod_terminal

log = logging.getLogger("nanokube.endpointslice")

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"
HEADLESS_LABEL = "service.kubernetes.io/headless"
TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"
ZONE_LABEL = "topology.kubernetes.io/zone"
MAX_ENDPOINTS_PER_SLICE = 100


# ---- pods to endpoints ----------------------------------------------------------------------------

def selector_matches(selector: dict | None, labels: dict | None) -> bool:
    """A Service selector (a plain map): every pair present. An empty one selects nothing here,
    because the API drops it to nil."""
    if not selector:
        return False
    labels = labels or {}
    return all(labels.get(k) == v for k, v in selector.items())


def _restartable_init(c: dict) -> bool:
    return c.get("restartPolicy") == "Always"


def resolve_target_port(pod: dict, service_port: dict) -> int | None:
    """FindPort: an int targetPort as is; a name is the first container port (regular containers,
    then sidecar init containers) with that name and the same protocol; None if there is none."""
    target = service_port.get("targetPort", service_port.get("port"))
    if isinstance(target, int):
        return target
    protocol = service_port.get("protocol") or "TCP"
    spec = pod.get("spec") or {}
    containers = list(spec.get("containers") or []) + \
        [c for c in spec.get("initContainers") or [] if _restartable_init(c)]
    for c in containers:
        for port in c.get("ports") or []:
            if port.get("name") == target and (port.get("protocol") or "TCP") == protocol:
                return port.get("containerPort")
    return None


def endpoint_ports(service: dict, pod: dict) -> list[dict]:
    ports = []
    for sp in (service.get("spec") or {}).get("ports") or []:
        number = resolve_target_port(pod, sp)
        if number is None:
            continue
        port = {"name": sp.get("name") or "", "port": number,
                "protocol": sp.get("protocol") or "TCP"}
        if sp.get("appProtocol"):
            port["appProtocol"] = sp["appProtocol"]
        ports.append(port)
    return ports


def pod_ips(pod: dict, address_type: str) -> list[str]:
    status = pod.get("status") or {}
    ips = [p.get("ip") for p in status.get("podIPs") or [] if p.get("ip")]
    if not ips and status.get("podIP"):
        ips = [status["podIP"]]
    want_v6 = address_type == "IPv6"
    return [ip for ip in ips if (":" in ip) == want_v6]


def endpoint_conditions(pod: dict, publish_not_ready: bool) -> dict:
    serving = is_pod_ready(pod)
    terminating = bool(pod["metadata"].get("deletionTimestamp"))
    return {"ready": publish_not_ready or (serving and not terminating),
            "serving": serving, "terminating": terminating}


def pod_endpoint(service: dict, pod: dict, node: dict | None, addresses: list[str]) -> dict:
    spec = service.get("spec") or {}
    meta = pod["metadata"]
    ep = {"addresses": addresses,
          "conditions": endpoint_conditions(pod, bool(spec.get("publishNotReadyAddresses"))),
          "targetRef": {"kind": "Pod", "namespace": meta["namespace"], "name": meta["name"],
                        "uid": meta.get("uid", "")}}
    pod_spec = pod.get("spec") or {}
    if pod_spec.get("nodeName"):
        ep["nodeName"] = pod_spec["nodeName"]
    zone = ((node or {}).get("metadata") or {}).get("labels", {}).get(ZONE_LABEL) \
        if node else None
    if zone:
        ep["zone"] = zone
    if pod_spec.get("hostname") and pod_spec.get("subdomain") == service["metadata"]["name"]:
        ep["hostname"] = pod_spec["hostname"]
    return ep


def ports_key(ports: list[dict]) -> str:
    return json.dumps(sorted(ports, key=lambda p: (p.get("name") or "", p.get("port") or 0,
                                                   p.get("protocol") or "")), sort_keys=True)


def desired_endpoints(service: dict, pods: list[dict], nodes: dict[str, dict],
                      address_type: str) -> dict[str, tuple[list[dict], list[dict]]]:
    """ports key -> (ports, endpoints) for the pods that belong in the Service's slices."""
    publish = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    groups: dict[str, tuple[list[dict], list[dict]]] = {}
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        if is_pod_terminal(pod):
            continue
        addresses = pod_ips(pod, address_type)
        if not addresses:
            continue
        node_name = (pod.get("spec") or {}).get("nodeName")
        node = nodes.get(node_name) if node_name else None
        if node_name and node is None and not publish:
            continue
        ports = endpoint_ports(service, pod)
        key = ports_key(ports)
        groups.setdefault(key, (ports, []))[1].append(pod_endpoint(service, pod, node, addresses))
    return groups


# ---- endpoints to slices --------------------------------------------------------------------------

def slice_labels(service: dict) -> dict:
    reserved = (SERVICE_NAME_LABEL, MANAGED_BY_LABEL, HEADLESS_LABEL)
    labels = {k: v for k, v in (service["metadata"].get("labels") or {}).items()
              if k not in reserved}
    labels[SERVICE_NAME_LABEL] = service["metadata"]["name"]
    labels[MANAGED_BY_LABEL] = CONTROLLER_NAME
    if (service.get("spec") or {}).get("clusterIP") == "None":
        labels[HEADLESS_LABEL] = ""
    return labels


def new_slice(service: dict, address_type: str, ports: list[dict], endpoints: list[dict]) -> dict:
    meta = service["metadata"]
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"generateName": f"{meta['name']}-", "namespace": meta["namespace"],
                         "labels": slice_labels(service),
                         "ownerReferences": [{"apiVersion": "v1", "kind": "Service",
                                              "name": meta["name"], "uid": meta["uid"],
                                              "controller": True, "blockOwnerDeletion": True}]},
            "addressType": address_type, "endpoints": endpoints, "ports": ports}


def _endpoint_id(ep: dict) -> str:
    ref = ep.get("targetRef") or {}
    return ref.get("uid") or ref.get("name") or ",".join(ep.get("addresses") or [])


def _is_placeholder(sl: dict) -> bool:
    return not sl.get("endpoints") and not sl.get("ports")


def reconcile_slices(service: dict, address_type: str,
                     groups: dict[str, tuple[list[dict], list[dict]]], existing: list[dict],
                     max_per_slice: int = MAX_ENDPOINTS_PER_SLICE
                     ) -> tuple[list[dict], list[dict], list[dict]]:
    """(to create, to update, to delete) that turn `existing` into the desired slices."""
    labels = slice_labels(service)
    creates: list[dict] = []
    updates: list[dict] = []
    deletes = [sl for sl in existing if sl.get("addressType") != address_type]
    existing = [sl for sl in existing if sl.get("addressType") == address_type]
    if not any(eps for _, eps in groups.values()):
        return _placeholder(service, address_type, existing, labels, deletes)
    by_ports: dict[str, list[dict]] = {}
    for sl in existing:
        key = ports_key(sl.get("ports") or [])
        if key in groups and not _is_placeholder(sl):
            by_ports.setdefault(key, []).append(sl)
        else:
            deletes.append(sl)
    for key, (ports, endpoints) in groups.items():
        c, u, d = _reconcile_group(service, address_type, ports, endpoints,
                                   by_ports.get(key, []), labels, max_per_slice)
        creates += c
        updates += u
        deletes += d
    return creates, updates, deletes


def _placeholder(service, address_type, existing, labels, deletes):
    keep = next((sl for sl in existing if _is_placeholder(sl)), None)
    deletes += [sl for sl in existing if sl is not keep]
    if keep is None:
        return [new_slice(service, address_type, [], [])], [], deletes
    if (keep["metadata"].get("labels") or {}) != labels:
        keep = copy.deepcopy(keep)
        keep["metadata"]["labels"] = labels
        return [], [keep], deletes
    return [], [], deletes


def _reconcile_group(service, address_type, ports, endpoints, slices, labels, max_per_slice):
    desired = {_endpoint_id(ep): ep for ep in endpoints}
    placed: set[str] = set()
    changed_slices, unchanged, deletes = [], [], []
    for sl in slices:
        kept, changed = [], (sl["metadata"].get("labels") or {}) != labels
        for ep in sl.get("endpoints") or []:
            eid = _endpoint_id(ep)
            if eid in desired and eid not in placed and len(kept) < max_per_slice:
                kept.append(desired[eid])
                placed.add(eid)
                changed = changed or desired[eid] != ep
            else:
                changed = True
        if not kept:
            deletes.append(sl)
            continue
        new = copy.deepcopy(sl)
        new["endpoints"], new["ports"] = kept, ports
        new["metadata"]["labels"] = labels
        (changed_slices if changed else unchanged).append(new)
    remaining = [ep for eid, ep in desired.items() if eid not in placed]
    # New endpoints go first into the fullest slices being updated anyway.
    for sl in sorted(changed_slices, key=lambda s: -len(s["endpoints"])):
        room = max_per_slice - len(sl["endpoints"])
        sl["endpoints"] += remaining[:room]
        remaining = remaining[room:]
    # What is left fits in one unchanged slice? Use the fullest that can take it all.
    if remaining and len(remaining) < max_per_slice:
        for sl in sorted(unchanged, key=lambda s: -len(s["endpoints"])):
            if max_per_slice - len(sl["endpoints"]) >= len(remaining):
                sl["endpoints"] += remaining
                remaining = []
                changed_slices.append(sl)
                break
    creates = [new_slice(service, address_type, ports, remaining[i:i + max_per_slice])
               for i in range(0, len(remaining), max_per_slice)]
    return creates, changed_slices, deletes


def address_types(service: dict) -> list[str]:
    families = (service.get("spec") or {}).get("ipFamilies") or ["IPv4"]
    return ["IPv6" if f == "IPv6" else "IPv4" for f in families]


def trigger_time() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ---- the controller -------------------------------------------------------------------------------

class EndpointSliceController(Controller):
    name = "endpointslice"
    workers = 4

    def __init__(self, client, informers):
        super().__init__(client, informers)
        self.services = informers.services()
        self.pods = informers.pods()
        self.nodes = informers.nodes()
        self.slices = informers.informer("discovery.k8s.io", "v1", "endpointslices")
        self.services.add_handler(lambda old, new: self.enqueue(object_key(new or old)))
        self.pods.add_handler(self._on_pod)
        self.slices.add_handler(self._on_slice)
        self.nodes.add_handler(self._on_node)

    def _on_pod(self, old: dict | None, new: dict | None) -> None:
        ns = (new or old)["metadata"]["namespace"]
        labels = [((o or {}).get("metadata") or {}).get("labels") for o in (old, new) if o]
        for svc in self.services.list(ns):
            selector = (svc.get("spec") or {}).get("selector")
            if any(selector_matches(selector, lb) for lb in labels):
                self.enqueue(object_key(svc))

    def _on_slice(self, old: dict | None, new: dict | None) -> None:
        labels = ((new or old)["metadata"].get("labels") or {})
        if labels.get(MANAGED_BY_LABEL) == CONTROLLER_NAME and labels.get(SERVICE_NAME_LABEL):
            self.enqueue(f"{(new or old)['metadata']['namespace']}/"
                         f"{labels[SERVICE_NAME_LABEL]}")

    def _on_node(self, old: dict | None, new: dict | None) -> None:
        """A node that appears or goes, or changes zone, changes which pods are published."""
        if old is not None and new is not None and \
                (old["metadata"].get("labels") or {}).get(ZONE_LABEL) == \
                (new["metadata"].get("labels") or {}).get(ZONE_LABEL):
            return
        for key in self.services.keys():
            self.enqueue(key)

    def _managed_slices(self, service: dict) -> list[dict]:
        name = service["metadata"]["name"]
        return [sl for sl in self.slices.list(service["metadata"]["namespace"])
                if (sl["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL) == name and
                (sl["metadata"].get("labels") or {}).get(MANAGED_BY_LABEL) == CONTROLLER_NAME]

    async def reconcile(self, key: str) -> float | None:
        service = self.services.get(key)
        if service is None:
            return None        # the garbage collector removes its slices (ownerReferences)
        spec = service.get("spec") or {}
        if not spec.get("selector") or spec.get("type") == "ExternalName":
            return None
        ns = service["metadata"]["namespace"]
        pods = [p for p in self.pods.list(ns)
                if selector_matches(spec["selector"], p["metadata"].get("labels"))]
        nodes = {n["metadata"]["name"]: n for n in self.nodes.list()}
        existing = self._managed_slices(service)
        for address_type in address_types(service):
            groups = desired_endpoints(service, pods, nodes, address_type)
            mine = [sl for sl in existing
                    if sl.get("addressType") == address_type or
                    sl.get("addressType") not in address_types(service)]
            creates, updates, deletes = reconcile_slices(service, address_type, groups, mine)
            await self._apply(ns, creates, updates, deletes)
            existing = [sl for sl in existing if sl not in mine]
        return None

    async def _apply(self, ns: str, creates, updates, deletes) -> None:
        stamp = trigger_time()
        for sl in [*creates, *updates]:
            sl["metadata"].setdefault("annotations", {})[TRIGGER_TIME] = stamp
        await write_slices(self.client, self.slices, ns, creates, updates, deletes)


async def write_slices(client, slices, ns: str, creates, updates, deletes) -> None:
    """Update, create, then delete EndpointSlices, writing each answer through to the `slices`
    informer (a slice already gone counts as deleted)."""
    path = client.resource_path("discovery.k8s.io", "v1", "endpointslices", ns)
    for sl in updates:
        slices.write_through(await client.update(f"{path}/{sl['metadata']['name']}", sl))
    for sl in creates:
        slices.write_through(await client.create(path, sl))
    for sl in deletes:
        try:
            await client.delete(f"{path}/{sl['metadata']['name']}")
        except StatusError as e:
            if e.code != 404:
                raise
        slices.write_through(None, object_key(sl))
