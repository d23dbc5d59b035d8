"""The EndpointSliceMirroring controller: EndpointSlices for hand-written Endpoints.

A Service without a selector gets its endpoints from a core/v1 Endpoints object of the same name
that a user (or another tool) writes. The node proxier reads only EndpointSlices, so this
controller mirrors such Endpoints into slices (pkg/controller/endpointslicemirroring):
- only when the Service exists and has no selector, and the Endpoints has neither the label
  `endpointslice.kubernetes.io/skip-mirror: "true"` nor a leader-election annotation;
- one slice per (address family, port set) of the subsets, named `<endpoints name>-<random>`,
  owned by the Endpoints, labelled with the Endpoints' labels plus `kubernetes.io/service-name`
  and `endpointslice.kubernetes.io/managed-by: endpointslicemirroring-controller.k8s.io`,
  annotated with its annotations but the trigger time and last-applied configuration;
- `addresses` are ready endpoints, `notReadyAddresses` not ready ones; at most 1000 addresses
  of a subset are mirrored, the rest skipped with a Warning Event on the Endpoints;
- the slices go when the Endpoints or the Service go, or the Service gains a selector.
"""
from __future__ import annotations

import copy
import ipaddress
import logging
from dataclasses import dataclass, field

from nanokube.controllers.endpointslice import (MANAGED_BY_LABEL, SERVICE_NAME_LABEL,
                                                TRIGGER_TIME, ports_key, write_slices)
from nanokube.controllers.events import WARNING, EventRecorder
from nanokube.controllers.informer import object_key
from nanokube.controllers.manager import Controller

log = logging.getLogger("nanokube.endpointslicemirroring")

COMPONENT = "endpoint-slice-mirroring-controller"
CONTROLLER_NAME = "endpointslicemirroring-controller.k8s.io"
SKIP_MIRROR_LABEL = "endpointslice.kubernetes.io/skip-mirror"
LEADER_ANNOTATION = "control-plane.alpha.kubernetes.io/leader"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
MAX_ENDPOINTS_PER_SUBSET = 1000      # kube-controller-manager's --mirroring-max-endpoints-per-subset

INVALID_IP_ADDRESS = "InvalidIPAddress"
TOO_MANY_ADDRESSES = "TooManyAddressesToMirror"


# ---- which Endpoints are mirrored -----------------------------------------------------------------

def should_mirror(endpoints: dict | None) -> bool:
    """The Endpoints itself allows mirroring (the Service is checked separately)."""
    if endpoints is None:
        return False
    meta = endpoints.get("metadata") or {}
    return (meta.get("labels") or {}).get(SKIP_MIRROR_LABEL) != "true" and \
        LEADER_ANNOTATION not in (meta.get("annotations") or {})


def has_selector(service: dict) -> bool:
    return bool((service.get("spec") or {}).get("selector"))


def mirroring_wanted(service: dict | None, endpoints: dict | None) -> bool:
    return should_mirror(endpoints) and service is not None and not has_selector(service)


# ---- Endpoints to desired endpoints ---------------------------------------------------------------

def address_type(ip: str) -> str | None:
    """IPv4 or IPv6 by what the address parses as; None for something that is no IP."""
    try:
        addr = ipaddress.ip_address(ip.strip())
    except (ValueError, AttributeError):
        return None
    if addr.version == 6 and addr.ipv4_mapped is None:
        return "IPv6"
    return "IPv4"


def _canonical_ip(ip: str) -> str:
    addr = ipaddress.ip_address(ip.strip())
    if addr.version == 6 and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


def address_to_endpoint(address: dict, ready: bool) -> dict:
    ep = {"addresses": [_canonical_ip(address["ip"])], "conditions": {"ready": ready}}
    if address.get("hostname"):
        ep["hostname"] = address["hostname"]
    if address.get("nodeName"):
        ep["nodeName"] = address["nodeName"]
    if address.get("targetRef"):
        ep["targetRef"] = address["targetRef"]
    return ep


def mirrored_ports(ports: list[dict] | None) -> list[dict]:
    result = []
    for p in ports or []:
        port = {"name": p.get("name") or "", "port": p.get("port"),
                "protocol": p.get("protocol") or "TCP"}
        if p.get("appProtocol"):
            port["appProtocol"] = p["appProtocol"]
        result.append(port)
    return result


@dataclass
class DesiredState:
    # (addressType, ports key) -> (ports, endpoints)
    groups: dict[tuple[str, str], tuple[list[dict], list[dict]]] = field(default_factory=dict)
    invalid: int = 0          # addresses that are no IP
    skipped: int = 0          # addresses not mirrored at all (invalid or over the limit)


def desired_state(endpoints: dict, max_per_subset: int = MAX_ENDPOINTS_PER_SUBSET
                  ) -> DesiredState:
    state = DesiredState()
    for subset in endpoints.get("subsets") or []:
        ports = mirrored_ports(subset.get("ports"))
        key = ports_key(ports)
        for family in ("IPv4", "IPv6"):
            state.groups.setdefault((family, key), (ports, []))
        candidates = [(a, True) for a in subset.get("addresses") or []] + \
                     [(a, False) for a in subset.get("notReadyAddresses") or []]
        added = 0
        for address, ready in candidates:
            if added >= max_per_subset:
                break          # one subset maps to one slice: the rest is dropped
            family = address_type(address.get("ip") or "")
            if family is None:
                state.invalid += 1
                continue
            eps = state.groups[(family, key)][1]
            ep = address_to_endpoint(address, ready)
            if ep not in eps:
                eps.append(ep)
            added += 1
        state.skipped += len(candidates) - added
    return state


def mirroring_events(state: DesiredState, max_per_subset: int = MAX_ENDPOINTS_PER_SUBSET
                     ) -> list[tuple[str, str]]:
    """(reason, message) of the Warning Events the mirroring of these Endpoints records."""
    events = []
    if state.invalid:
        events.append((INVALID_IP_ADDRESS, f"Skipped {state.invalid} invalid IP addresses when "
                                           "mirroring to EndpointSlices"))
    if state.skipped > state.invalid:
        events.append((TOO_MANY_ADDRESSES,
                       f"A max of {max_per_subset} addresses can be mirrored to EndpointSlices "
                       f"per Endpoints subset. {state.skipped} addresses were skipped"))
    return events


# ---- desired endpoints to slices ------------------------------------------------------------------

def mirrored_labels(endpoints: dict) -> dict:
    meta = endpoints["metadata"]
    labels = dict(meta.get("labels") or {})
    labels[SERVICE_NAME_LABEL] = meta["name"]
    labels[MANAGED_BY_LABEL] = CONTROLLER_NAME
    return labels


def mirrored_annotations(endpoints: dict) -> dict:
    return {k: v for k, v in (endpoints["metadata"].get("annotations") or {}).items()
            if k not in (TRIGGER_TIME, LAST_APPLIED)}


def new_mirrored_slice(endpoints: dict, address_type_: str, ports: list[dict],
                       eps: list[dict], name: str | None = None) -> dict:
    meta = endpoints["metadata"]
    slice_meta = {"namespace": meta["namespace"], "labels": mirrored_labels(endpoints),
                  "annotations": mirrored_annotations(endpoints),
                  "ownerReferences": [{"apiVersion": "v1", "kind": "Endpoints",
                                       "name": meta["name"], "uid": meta.get("uid", ""),
                                       "controller": True, "blockOwnerDeletion": True}]}
    if name:
        slice_meta["name"] = name
    else:
        slice_meta["generateName"] = f"{meta['name']}-"
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": slice_meta, "addressType": address_type_, "ports": ports,
            "endpoints": eps}


def _endpoint_view(ep: dict) -> tuple:
    """What mirroring sets of an endpoint (the API may default more)."""
    return (tuple(ep.get("addresses") or []), bool((ep.get("conditions") or {}).get("ready")),
            ep.get("hostname"), ep.get("nodeName"),
            tuple(sorted((ep.get("targetRef") or {}).items())))


def _slice_matches(existing: dict, desired: dict) -> bool:
    em, dm = existing["metadata"], desired["metadata"]
    return (em.get("labels") or {}) == dm["labels"] and \
        (em.get("annotations") or {}) == dm["annotations"] and \
        [_endpoint_view(e) for e in existing.get("endpoints") or []] == \
        [_endpoint_view(e) for e in desired["endpoints"]]


def _slice_key(sl: dict) -> tuple[str, str]:
    return (sl.get("addressType") or "IPv4", ports_key(sl.get("ports") or []))


def reconcile_mirrored(endpoints: dict, state: DesiredState, existing: list[dict]
                       ) -> tuple[list[dict], list[dict], list[dict]]:
    """(to create, to update, to delete) that turn the existing mirrored slices into one slice
    per (address family, port set) with endpoints."""
    by_key: dict[tuple[str, str], list[dict]] = {}
    for sl in sorted(existing, key=lambda s: s["metadata"].get("name", "")):
        by_key.setdefault(_slice_key(sl), []).append(sl)
    creates, updates, deletes = [], [], []
    for key, (ports, eps) in state.groups.items():
        current = by_key.pop(key, [])
        if not eps:
            deletes += current
            continue
        deletes += current[1:]
        name = current[0]["metadata"]["name"] if current else None
        desired = new_mirrored_slice(endpoints, key[0], ports, eps, name)
        if not current:
            creates.append(desired)
        elif not _slice_matches(current[0], desired):
            desired["metadata"]["resourceVersion"] = current[0]["metadata"].get(
                "resourceVersion")
            updates.append(desired)
    for slices in by_key.values():           # port sets no longer wanted
        deletes += slices
    return _recycle(creates, updates, deletes)


def _recycle(creates, updates, deletes):
    """A slice to create takes the name of one of the same family to delete (an update
    instead of a create and a delete, as recycleSlices does)."""
    creates, deletes = list(creates), list(deletes)
    for sl in list(creates):
        old = next((d for d in deletes if d.get("addressType") == sl["addressType"]), None)
        if old is None:
            continue
        creates.remove(sl)
        deletes.remove(old)
        sl = copy.deepcopy(sl)
        sl["metadata"].pop("generateName", None)
        sl["metadata"]["name"] = old["metadata"]["name"]
        sl["metadata"]["resourceVersion"] = old["metadata"].get("resourceVersion")
        updates.append(sl)
    return creates, updates, deletes


@dataclass
class MirrorPlan:
    creates: list[dict] = field(default_factory=list)
    updates: list[dict] = field(default_factory=list)
    deletes: list[dict] = field(default_factory=list)
    events: list[tuple[str, str]] = field(default_factory=list)   # Warning (reason, message)


def plan_mirroring(service: dict | None, endpoints: dict | None, existing: list[dict],
                   max_per_subset: int = MAX_ENDPOINTS_PER_SUBSET) -> MirrorPlan:
    """Everything one sync does, from the Service, its Endpoints and the slices mirrored so far."""
    if not mirroring_wanted(service, endpoints):
        return MirrorPlan(deletes=list(existing))
    state = desired_state(endpoints, max_per_subset)
    creates, updates, deletes = reconcile_mirrored(endpoints, state, existing)
    if (endpoints.get("metadata") or {}).get("deletionTimestamp"):
        creates = []           # no new slices for Endpoints on their way out
    return MirrorPlan(creates, updates, deletes, mirroring_events(state, max_per_subset))


def is_mirrored(sl: dict) -> bool:
    return ((sl.get("metadata") or {}).get("labels") or {}).get(MANAGED_BY_LABEL) == \
        CONTROLLER_NAME


# ---- the controller -------------------------------------------------------------------------------

class EndpointSliceMirroringController(Controller):
    """Keys are the Endpoints' (= the Service's) namespace/name."""
    name = "endpointslicemirroring"
    workers = 2

    def __init__(self, client, informers, max_per_subset: int = MAX_ENDPOINTS_PER_SUBSET):
        super().__init__(client, informers)
        self.max_per_subset = max_per_subset
        self.services = informers.services()
        self.endpoints = informers.informer("", "v1", "endpoints")
        self.slices = informers.informer("discovery.k8s.io", "v1", "endpointslices")
        self.recorder = EventRecorder(client, COMPONENT)
        self._reported: dict[str, str] = {}    # key -> resourceVersion whose Events are written
        self.services.add_handler(self._on_service)
        self.endpoints.add_handler(self._on_endpoints)
        self.slices.add_handler(self._on_slice)

    def _on_service(self, old: dict | None, new: dict | None) -> None:
        # Only selector-less Services matter, and a selector that comes or goes.
        if old is None or new is None:
            if not has_selector(new or old):
                self.enqueue(object_key(new or old))
        elif has_selector(old) != has_selector(new):
            self.enqueue(object_key(new))

    def _on_endpoints(self, old: dict | None, new: dict | None) -> None:
        if should_mirror(old) or should_mirror(new):
            self.enqueue(object_key(new or old))

    def _on_slice(self, old: dict | None, new: dict | None) -> None:
        """Someone else changed or deleted a slice we mirror: put it back."""
        for sl in (old, new):
            if sl is not None and is_mirrored(sl):
                service = (sl["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL)
                if service:
                    self.enqueue(f"{sl['metadata']['namespace']}/{service}")

    def _mirrored_slices(self, ns: str, name: str) -> list[dict]:
        return [sl for sl in self.slices.list(ns) if is_mirrored(sl) and
                (sl["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL) == name]

    async def reconcile(self, key: str) -> float | None:
        ns, _, name = key.partition("/")
        endpoints = self.endpoints.get(key)
        plan = plan_mirroring(self.services.get(key), endpoints,
                              self._mirrored_slices(ns, name), self.max_per_subset)
        self._report(key, endpoints, plan.events)
        if plan.creates or plan.updates or plan.deletes:
            log.debug("%s: create %d, update %d, delete %d mirrored slices", key,
                      len(plan.creates), len(plan.updates), len(plan.deletes))
        await write_slices(self.client, self.slices, ns, plan.creates, plan.updates,
                           plan.deletes)
        return None

    def _report(self, key: str, endpoints: dict | None, events: list[tuple[str, str]]) -> None:
        """The Warning Events, once per version of the Endpoints (syncs caused by our own slice
        writes would repeat them otherwise)."""
        if endpoints is None:
            self._reported.pop(key, None)
            return
        rv = endpoints["metadata"].get("resourceVersion", "")
        if self._reported.get(key) == rv:
            return
        self._reported[key] = rv
        for reason, message in events:
            self.recorder.record({"apiVersion": "v1", "kind": "Endpoints", **endpoints},
                                 WARNING, reason, message)
