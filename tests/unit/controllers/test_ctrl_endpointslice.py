"""EndpointSlice controller logic: conditions, named ports, grouping and slice packing."""
from __future__ import annotations

from nanokube.controllers.endpointslice import (
    CONTROLLER_NAME, desired_endpoints, endpoint_conditions, reconcile_slices,
    resolve_target_port, slice_labels)

SERVICE = {"metadata": {"name": "web", "namespace": "default", "uid": "svc-uid",
                        "labels": {"team": "a", "kubernetes.io/service-name": "spoof"}},
           "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.5",
                    "ports": [{"port": 80, "targetPort": "http", "protocol": "TCP"}]}}


def pod(name, ip="10.244.1.2", ready=True, node="node-1", deleting=False, phase="Running",
        ports=None, uid=None):
    p = {"metadata": {"name": name, "namespace": "default", "uid": uid or f"uid-{name}",
                      "labels": {"app": "web"}},
         "spec": {"nodeName": node, "containers": [{"name": "c", "ports": ports if ports
                                                    is not None else [
                                                        {"name": "http", "containerPort": 8080,
                                                         "protocol": "TCP"}]}]},
         "status": {"phase": phase, "podIP": ip, "conditions": [
             {"type": "Ready", "status": "True" if ready else "False"}]}}
    if deleting:
        p["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return p


NODES = {"node-1": {"metadata": {"name": "node-1", "labels": {
    "topology.kubernetes.io/zone": "z1"}}}}


def test_conditions():
    assert endpoint_conditions(pod("a"), False) == \
        {"ready": True, "serving": True, "terminating": False}
    assert endpoint_conditions(pod("a", ready=False), False) == \
        {"ready": False, "serving": False, "terminating": False}
    assert endpoint_conditions(pod("a", deleting=True), False) == \
        {"ready": False, "serving": True, "terminating": True}
    assert endpoint_conditions(pod("a", ready=False), True)["ready"] is True


def test_named_target_port_needs_name_and_protocol():
    sp = {"port": 80, "targetPort": "http", "protocol": "TCP"}
    assert resolve_target_port(pod("a"), sp) == 8080
    assert resolve_target_port(pod("a"), {**sp, "protocol": "UDP"}) is None
    assert resolve_target_port(pod("a", ports=[]), sp) is None
    assert resolve_target_port(pod("a"), {"port": 80, "targetPort": 9090}) == 9090
    assert resolve_target_port(pod("a"), {"port": 80}) == 80
    sidecar = pod("a", ports=[])
    sidecar["spec"]["initContainers"] = [
        {"name": "s", "restartPolicy": "Always",
         "ports": [{"name": "http", "containerPort": 7070}]}]
    assert resolve_target_port(sidecar, sp) == 7070


def test_desired_endpoints_include_terminating_skip_finished_and_ipless():
    pods = [pod("a"), pod("b", ip="10.244.1.3", deleting=True), pod("c", ip=""),
            pod("d", ip="10.244.1.4", phase="Succeeded"),
            pod("e", ip="10.244.9.9", node="gone")]
    groups = desired_endpoints(SERVICE, pods, NODES, "IPv4")
    (ports, eps), = groups.values()
    assert ports == [{"name": "", "port": 8080, "protocol": "TCP"}]
    assert [e["targetRef"]["name"] for e in eps] == ["a", "b"]
    a = eps[0]
    assert a == {"addresses": ["10.244.1.2"],
                 "conditions": {"ready": True, "serving": True, "terminating": False},
                 "targetRef": {"kind": "Pod", "namespace": "default", "name": "a",
                               "uid": "uid-a"},
                 "nodeName": "node-1", "zone": "z1"}
    published = {**SERVICE, "spec": {**SERVICE["spec"], "publishNotReadyAddresses": True}}
    names = [e["targetRef"]["name"] for _, eps in
             desired_endpoints(published, pods, NODES, "IPv4").values() for e in eps]
    assert "e" in names


def test_pods_with_different_ports_get_different_slices():
    pods = [pod("a"), pod("b", ip="10.244.1.3", ports=[{"name": "http", "containerPort": 9090}])]
    groups = desired_endpoints(SERVICE, pods, NODES, "IPv4")
    assert len(groups) == 2
    creates, updates, deletes = reconcile_slices(SERVICE, "IPv4", groups, [])
    assert sorted(c["ports"][0]["port"] for c in creates) == [8080, 9090]


def test_labels_and_owner():
    labels = slice_labels(SERVICE)
    assert labels == {"team": "a", "kubernetes.io/service-name": "web",
                      "endpointslice.kubernetes.io/managed-by": CONTROLLER_NAME}
    headless = {**SERVICE, "spec": {**SERVICE["spec"], "clusterIP": "None"}}
    assert slice_labels(headless)["service.kubernetes.io/headless"] == ""
    (created,), _, _ = reconcile_slices(SERVICE, "IPv4",
                                        desired_endpoints(SERVICE, [pod("a")], NODES, "IPv4"),
                                        [])
    assert created["metadata"]["generateName"] == "web-"
    assert created["metadata"]["ownerReferences"] == [{
        "apiVersion": "v1", "kind": "Service", "name": "web", "uid": "svc-uid",
        "controller": True, "blockOwnerDeletion": True}]
    assert created["addressType"] == "IPv4"


def many(n, start=0):
    return [pod(f"p{i:03d}", ip=f"10.244.{i // 200}.{i % 200 + 1}") for i in range(start, start + n)]


def as_existing(slices):
    for i, s in enumerate(slices):
        s["metadata"]["name"] = f"web-{i}"
    return slices


def test_at_most_100_endpoints_per_slice():
    creates, updates, deletes = reconcile_slices(
        SERVICE, "IPv4", desired_endpoints(SERVICE, many(250), NODES, "IPv4"), [])
    assert sorted(len(c["endpoints"]) for c in creates) == [50, 100, 100]
    assert not updates and not deletes


def test_unchanged_slices_are_left_alone_and_changes_touch_one_slice():
    groups = desired_endpoints(SERVICE, many(150), NODES, "IPv4")
    existing = as_existing(reconcile_slices(SERVICE, "IPv4", groups, [])[0])
    assert reconcile_slices(SERVICE, "IPv4", groups, existing) == ([], [], [])
    # one pod goes away: only its slice is updated
    groups = desired_endpoints(SERVICE, many(149), NODES, "IPv4")
    creates, updates, deletes = reconcile_slices(SERVICE, "IPv4", groups, existing)
    assert not creates and not deletes and len(updates) == 1
    assert len(updates[0]["endpoints"]) == 49


def test_new_endpoints_fill_updated_slices_first():
    existing = as_existing(reconcile_slices(
        SERVICE, "IPv4", desired_endpoints(SERVICE, many(150), NODES, "IPv4"), [])[0])
    pods = many(150)
    pods[0]["status"]["conditions"][0]["status"] = "False"     # changes the first slice
    pods += many(5, start=150)
    creates, updates, deletes = reconcile_slices(
        SERVICE, "IPv4", desired_endpoints(SERVICE, pods, NODES, "IPv4"), existing)
    assert not creates and not deletes
    # the changed slice is full: the unchanged one takes all five
    assert sorted(len(u["endpoints"]) for u in updates) == [55, 100]


def test_emptied_slice_is_deleted_and_placeholder_when_nothing_left():
    existing = as_existing(reconcile_slices(
        SERVICE, "IPv4", desired_endpoints(SERVICE, many(150), NODES, "IPv4"), [])[0])
    creates, updates, deletes = reconcile_slices(
        SERVICE, "IPv4", desired_endpoints(SERVICE, many(100), NODES, "IPv4"), existing)
    assert len(deletes) == 1 and not creates
    creates, updates, deletes = reconcile_slices(SERVICE, "IPv4", {}, existing)
    assert len(deletes) == 2
    (placeholder,) = creates
    assert placeholder["endpoints"] == [] and placeholder["ports"] == []
    kept = as_existing([placeholder])
    assert reconcile_slices(SERVICE, "IPv4", {}, kept) == ([], [], [])
    # endpoints appear: the placeholder goes
    creates, updates, deletes = reconcile_slices(
        SERVICE, "IPv4", desired_endpoints(SERVICE, many(1), NODES, "IPv4"), kept)
    assert len(creates) == 1 and deletes == kept


def test_port_change_replaces_slices():
    existing = as_existing(reconcile_slices(
        SERVICE, "IPv4", desired_endpoints(SERVICE, many(3), NODES, "IPv4"), [])[0])
    svc = {**SERVICE, "spec": {**SERVICE["spec"], "ports": [
        {"name": "web", "port": 80, "targetPort": 8081, "protocol": "TCP"}]}}
    creates, updates, deletes = reconcile_slices(
        svc, "IPv4", desired_endpoints(svc, many(3), NODES, "IPv4"), existing)
    assert deletes == existing
    assert creates[0]["ports"] == [{"name": "web", "port": 8081, "protocol": "TCP"}]
