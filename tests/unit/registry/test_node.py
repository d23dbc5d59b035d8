import datetime as dt

from nanokube.registry.node import NodeStrategy

THREE_DAYS_AGO = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=3)).strftime(
    "%Y-%m-%dT%H:%M:%SZ")


def node(**spec):
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "node-1", "creationTimestamp": THREE_DAYS_AGO,
                         "labels": {"node-role.kubernetes.io/control-plane": "",
                                    "kubernetes.io/role": "worker"}},
            "spec": spec,
            "status": {"conditions": [{"type": "MemoryPressure", "status": "False"},
                                      {"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "InternalIP", "address": "192.168.50.2"},
                                     {"type": "Hostname", "address": "node-1"}],
                       "capacity": {"cpu": "4", "pods": "110"},
                       "nodeInfo": {"kubeletVersion": "v1.32.0", "osImage": "nanokube",
                                    "kernelVersion": "6.8.0", "containerRuntimeVersion": ""}}}


def test_discovery_facts():
    s = NodeStrategy()
    assert (s.plural, s.short_names, s.namespaced, s.has_status) == ("nodes", ("no",), False,
                                                                       True)


def test_create_keeps_status_and_defaults_allocatable():
    s = NodeStrategy()
    obj = node(podCIDR="10.244.1.0/24", podCIDRs=["10.244.1.0/24"])
    s.default(obj)
    s.prepare_create(obj)
    assert obj["status"]["allocatable"] == {"cpu": "4", "pods": "110"}
    assert s.validate(obj) == []


def test_validation():
    s = NodeStrategy()
    obj = node(podCIDRs=["10.244.1.0"], taints=[{"key": "k", "effect": "Sometimes"}])
    assert [str(e) for e in s.validate(obj)] == [
        'spec.podCIDRs[0]: Invalid value: "10.244.1.0": must be a valid CIDR value, (e.g. '
        "10.9.8.0/24 or 2001:db8::/64)",
        'spec.taints[0].effect: Unsupported value: "Sometimes": supported values: "NoExecute", '
        '"NoSchedule", "PreferNoSchedule"']


def test_table():
    s = NodeStrategy()
    assert [c.name for c in s.columns if c.priority == 0] == ["Name", "Status", "Roles", "Age",
                                                              "Version"]
    assert s.table_row(node()) == ["node-1", "Ready", "control-plane,worker", "3d", "v1.32.0",
                                   "192.168.50.2", "<none>", "nanokube", "6.8.0", "<unknown>"]
    obj = node(unschedulable=True)
    obj["status"]["conditions"][1]["status"] = "Unknown"
    obj["metadata"]["labels"] = {}
    assert s.table_row(obj)[1:3] == ["NotReady,SchedulingDisabled", "<none>"]
    obj["status"]["conditions"] = []
    assert s.table_row(obj)[1] == "Unknown,SchedulingDisabled"
    assert s.field_labels(obj) == {"spec.unschedulable": "true"}
    assert s.field_labels(node()) == {"spec.unschedulable": "false"}
