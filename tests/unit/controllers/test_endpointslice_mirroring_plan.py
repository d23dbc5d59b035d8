"""EndpointSliceMirroring: which Endpoints are mirrored and into which slices."""
from __future__ import annotations

import asyncio
import copy

from nanokube.controllers.endpoints import endpoints_labels
from nanokube.controllers.endpointslicemirroring import (
    CONTROLLER_NAME, EndpointSliceMirroringController, plan_mirroring)

SERVICE = {"metadata": {"name": "manual", "namespace": "default", "uid": "svc-uid"},
           "spec": {"clusterIP": "10.96.0.20", "ports": [{"port": 80, "protocol": "TCP"}]}}
PORTS = [{"name": "", "port": 8080, "protocol": "TCP"}]


def endpoints(*subsets, labels=None, annotations=None, rv="1"):
    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "manual", "namespace": "default", "uid": "ep-uid",
                         "resourceVersion": rv, "labels": labels or {},
                         "annotations": annotations or {}},
            "subsets": list(subsets)}


def subset(ready=(), not_ready=(), ports=None):
    s = {"ports": ports if ports is not None else [{"port": 8080, "protocol": "TCP"}]}
    if ready:
        s["addresses"] = [{"ip": ip} for ip in ready]
    if not_ready:
        s["notReadyAddresses"] = [{"ip": ip} for ip in not_ready]
    return s


def ips(sl):
    return [ep["addresses"][0] for ep in sl["endpoints"]]


def created(plan_, name):
    """What the API would answer: the generated name filled in."""
    sl = copy.deepcopy(plan_)
    sl["metadata"].pop("generateName", None)
    sl["metadata"]["name"] = name
    sl["metadata"]["resourceVersion"] = "5"
    return sl


def test_selectorless_service_is_mirrored_into_one_slice():
    plan = plan_mirroring(SERVICE, endpoints(subset(["10.244.1.2", "10.244.2.3"])), [])
    assert not plan.updates and not plan.deletes and not plan.events
    [sl] = plan.creates
    meta = sl["metadata"]
    assert meta["generateName"] == "manual-" and "name" not in meta
    assert meta["labels"] == {"kubernetes.io/service-name": "manual",
                              "endpointslice.kubernetes.io/managed-by": CONTROLLER_NAME}
    assert meta["ownerReferences"] == [{"apiVersion": "v1", "kind": "Endpoints",
                                        "name": "manual", "uid": "ep-uid", "controller": True,
                                        "blockOwnerDeletion": True}]
    assert sl["addressType"] == "IPv4" and sl["ports"] == PORTS
    assert ips(sl) == ["10.244.1.2", "10.244.2.3"]


def test_service_with_selector_missing_service_and_skip_mirror_are_not_mirrored():
    with_selector = {**SERVICE, "spec": {**SERVICE["spec"], "selector": {"app": "x"}}}
    ep = endpoints(subset(["10.244.1.2"]))
    assert plan_mirroring(with_selector, ep, []).creates == []
    assert plan_mirroring(None, ep, []).creates == []
    skip = endpoints(subset(["10.244.1.2"]),
                     labels={"endpointslice.kubernetes.io/skip-mirror": "true"})
    assert plan_mirroring(SERVICE, skip, []).creates == []
    # only the value "true" skips
    other = endpoints(subset(["10.244.1.2"]),
                      labels={"endpointslice.kubernetes.io/skip-mirror": "false"})
    assert len(plan_mirroring(SERVICE, other, []).creates) == 1
    leader = endpoints(subset(["10.244.1.2"]),
                       annotations={"control-plane.alpha.kubernetes.io/leader": "{}"})
    assert plan_mirroring(SERVICE, leader, []).creates == []


def test_endpoints_controller_labels_its_endpoints_skip_mirror():
    assert endpoints_labels(SERVICE)["endpointslice.kubernetes.io/skip-mirror"] == "true"


def test_ready_not_ready_hostname_node_and_target_ref():
    s = subset(["10.244.1.2"], ["10.244.1.3"])
    s["addresses"][0].update(hostname="db-0", nodeName="node-1",
                             targetRef={"kind": "Pod", "namespace": "default", "name": "db-0"})
    [sl] = plan_mirroring(SERVICE, endpoints(s), []).creates
    assert sl["endpoints"] == [
        {"addresses": ["10.244.1.2"], "conditions": {"ready": True}, "hostname": "db-0",
         "nodeName": "node-1",
         "targetRef": {"kind": "Pod", "namespace": "default", "name": "db-0"}},
        {"addresses": ["10.244.1.3"], "conditions": {"ready": False}}]


def test_ports_keep_name_protocol_and_app_protocol_and_port_sets_split():
    web = [{"name": "http", "port": 8080, "protocol": "TCP", "appProtocol": "http"},
           {"name": "dns", "port": 53, "protocol": "UDP"}]
    plan = plan_mirroring(SERVICE, endpoints(subset(["10.0.0.1"], ports=web),
                                             subset(["10.0.0.2"])), [])
    assert sorted(len(sl["ports"]) for sl in plan.creates) == [1, 2]
    two = next(sl for sl in plan.creates if len(sl["ports"]) == 2)
    assert two["ports"] == web and ips(two) == ["10.0.0.1"]


def test_ipv4_and_ipv6_addresses_go_to_slices_of_their_family():
    plan = plan_mirroring(SERVICE, endpoints(subset(["10.0.0.1", "fd00::1", "FD00:0::2"])), [])
    by_type = {sl["addressType"]: ips(sl) for sl in plan.creates}
    assert by_type == {"IPv4": ["10.0.0.1"], "IPv6": ["fd00::1", "fd00::2"]}


def test_invalid_addresses_are_skipped_with_an_event():
    plan = plan_mirroring(SERVICE, endpoints(subset(["10.0.0.1", "not-an-ip"])), [])
    assert ips(plan.creates[0]) == ["10.0.0.1"]
    assert plan.events == [("InvalidIPAddress",
                            "Skipped 1 invalid IP addresses when mirroring to EndpointSlices")]


def test_more_than_1000_addresses_are_truncated_with_an_event():
    ready = [f"10.1.{i // 256}.{i % 256}" for i in range(1000)]
    plan = plan_mirroring(SERVICE, endpoints(subset(ready, ["10.9.0.1", "10.9.0.2"])), [])
    [sl] = plan.creates
    assert len(sl["endpoints"]) == 1000 and all(e["conditions"]["ready"] for e in sl["endpoints"])
    assert plan.events == [("TooManyAddressesToMirror",
                            "A max of 1000 addresses can be mirrored to EndpointSlices per "
                            "Endpoints subset. 2 addresses were skipped")]
    small = plan_mirroring(SERVICE, endpoints(subset(["10.0.0.1", "10.0.0.2", "10.0.0.3"])), [],
                           max_per_subset=2)
    assert ips(small.creates[0]) == ["10.0.0.1", "10.0.0.2"]


def test_unchanged_endpoints_change_nothing_and_changed_addresses_update_the_slice():
    ep = endpoints(subset(["10.0.0.1", "10.0.0.2"]))
    existing = [created(plan_mirroring(SERVICE, ep, []).creates[0], "manual-abcde")]
    same = plan_mirroring(SERVICE, ep, existing)
    assert not (same.creates or same.updates or same.deletes)
    fewer = plan_mirroring(SERVICE, endpoints(subset(["10.0.0.2"]), rv="2"), existing)
    assert not fewer.creates and not fewer.deletes
    [sl] = fewer.updates
    assert sl["metadata"]["name"] == "manual-abcde" and ips(sl) == ["10.0.0.2"]
    assert sl["metadata"]["resourceVersion"] == "5"


def test_port_change_reuses_the_slice_name():
    existing = [created(plan_mirroring(SERVICE, endpoints(subset(["10.0.0.1"])), []).creates[0],
                        "manual-abcde")]
    plan = plan_mirroring(SERVICE, endpoints(subset(["10.0.0.1"], ports=[{"port": 9090}])),
                          existing)
    assert not plan.creates and not plan.deletes
    assert plan.updates[0]["metadata"]["name"] == "manual-abcde"
    assert plan.updates[0]["ports"] == [{"name": "", "port": 9090, "protocol": "TCP"}]


def test_emptied_endpoints_delete_the_slice_and_duplicates_go():
    sl = created(plan_mirroring(SERVICE, endpoints(subset(["10.0.0.1"])), []).creates[0], "m-a")
    dup = {**copy.deepcopy(sl), "metadata": {**sl["metadata"], "name": "m-b"}}
    plan = plan_mirroring(SERVICE, endpoints(subset(["10.0.0.1"])), [sl, dup])
    assert [d["metadata"]["name"] for d in plan.deletes] == ["m-b"] and not plan.updates
    empty = plan_mirroring(SERVICE, endpoints(), [sl])
    assert empty.deletes == [sl] and not empty.creates


def test_endpoints_or_service_deleted_or_selector_added_delete_the_slices():
    ep = endpoints(subset(["10.0.0.1"]))
    sl = created(plan_mirroring(SERVICE, ep, []).creates[0], "manual-abcde")
    assert plan_mirroring(SERVICE, None, [sl]).deletes == [sl]
    assert plan_mirroring(None, ep, [sl]).deletes == [sl]
    selector = {**SERVICE, "spec": {**SERVICE["spec"], "selector": {"app": "web"}}}
    assert plan_mirroring(selector, ep, [sl]).deletes == [sl]


def test_labels_and_annotations_mirrored_but_trigger_time_and_last_applied():
    ep = endpoints(subset(["10.0.0.1"]),
                   labels={"team": "a", "kubernetes.io/service-name": "spoof"},
                   annotations={"note": "x", "kubectl.kubernetes.io/last-applied-configuration":
                                "{}", "endpoints.kubernetes.io/last-change-trigger-time": "t"})
    [sl] = plan_mirroring(SERVICE, ep, []).creates
    assert sl["metadata"]["labels"] == {
        "team": "a", "kubernetes.io/service-name": "manual",
        "endpointslice.kubernetes.io/managed-by": CONTROLLER_NAME}
    assert sl["metadata"]["annotations"] == {"note": "x"}
    # a label change alone updates the slice
    existing = [created(sl, "manual-abcde")]
    ep["metadata"]["labels"]["team"] = "b"
    [upd] = plan_mirroring(SERVICE, ep, existing).updates
    assert upd["metadata"]["labels"]["team"] == "b"


def test_deleting_endpoints_get_no_new_slices():
    ep = endpoints(subset(["10.0.0.1"]))
    ep["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    assert plan_mirroring(SERVICE, ep, []).creates == []


# ---- the controller against a fake API ---------------------------------------------------------

class FakeInformer:
    def __init__(self, items=()):
        self.store = {f"{o['metadata']['namespace']}/{o['metadata']['name']}": o for o in items}
        self.handlers = []

    def get(self, key):
        return self.store.get(key)

    def list(self, namespace=None):
        return [o for o in self.store.values()
                if namespace is None or o["metadata"]["namespace"] == namespace]

    def add_handler(self, handler):
        self.handlers.append(handler)

    def write_through(self, obj, key=None):
        if obj is None:
            self.store.pop(key, None)
        else:
            self.store[f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"] = obj


class FakeInformers:
    def __init__(self, services, endpoints):
        self.by_plural = {"services": FakeInformer(services), "endpoints": FakeInformer(endpoints),
                          "endpointslices": FakeInformer()}

    def services(self):
        return self.by_plural["services"]

    def informer(self, group, version, plural, namespace=None):
        return self.by_plural[plural]


class FakeClient:
    def __init__(self):
        self.calls = []
        self.events = []

    @staticmethod
    def resource_path(group, version, plural, namespace=None, name=None, subresource=None):
        return "/".join(p for p in (plural, namespace, name) if p)

    async def create(self, path, body):
        if "/events" in path or path.startswith("events"):
            self.events.append(body)
            return body
        self.calls.append(("create", path))
        body = copy.deepcopy(body)
        body["metadata"]["name"] = body["metadata"].pop("generateName") + "x1"
        body["metadata"]["resourceVersion"] = "7"
        return body

    async def update(self, path, body):
        self.calls.append(("update", path))
        return body

    async def delete(self, path):
        self.calls.append(("delete", path))


def test_controller_mirrors_updates_and_cleans_up():
    async def run():
        client = FakeClient()
        ep = endpoints(subset(["10.0.0.1", "10.0.0.2"]))
        informers = FakeInformers([SERVICE], [ep])
        ctrl = EndpointSliceMirroringController(client, informers, max_per_subset=1)
        await ctrl.reconcile("default/manual")
        slices = informers.by_plural["endpointslices"]
        [sl] = slices.list("default")
        assert sl["metadata"]["name"] == "manual-x1" and ips(sl) == ["10.0.0.1"]
        await ctrl.reconcile("default/manual")          # same version: no second Event
        await ctrl.recorder.flush()
        assert [e["reason"] for e in client.events] == ["TooManyAddressesToMirror"]
        assert client.events[0]["involvedObject"]["kind"] == "Endpoints"
        assert client.events[0]["source"]["component"] == "endpoint-slice-mirroring-controller"
        assert client.calls == [("create", "endpointslices/default")]
        del informers.by_plural["endpoints"].store["default/manual"]
        await ctrl.reconcile("default/manual")
        assert client.calls[-1] == ("delete", "endpointslices/default/manual-x1")
        assert slices.list("default") == []
    asyncio.run(run())


def test_controller_queues_only_what_can_matter():
    informers = FakeInformers([], [])
    ctrl = EndpointSliceMirroringController(FakeClient(), informers)
    svc_handler = informers.services().handlers[0]
    ep_handler = informers.by_plural["endpoints"].handlers[0]
    selector = {**SERVICE, "spec": {**SERVICE["spec"], "selector": {"app": "web"}}}
    svc_handler(None, selector)                       # a selector Service: not ours
    ep_handler(None, endpoints(labels={"endpointslice.kubernetes.io/skip-mirror": "true"}))
    assert len(ctrl.queue) == 0
    svc_handler(SERVICE, selector)                    # gained a selector: clean up
    assert len(ctrl.queue) == 1
