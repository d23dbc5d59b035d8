"""What the agent writes about its Node and Lease, and the routes it asks for."""
from nanokube.node.agent import NodeAgent
from nanokube.node.nodeinfo import (micro_time, node_conditions, node_labels, node_status,
                                    routes_to_others)


def test_node_status_shape():
    status = node_status("10.123.0.11", "node-1", "2026-01-01T00:00:00Z")
    assert status["addresses"] == [{"type": "InternalIP", "address": "10.123.0.11"},
                                   {"type": "Hostname", "address": "node-1"}]
    assert status["capacity"]["pods"] == "110" and status["allocatable"]["pods"] == "110"
    assert status["capacity"]["memory"].endswith("Ki") and int(status["capacity"]["cpu"]) >= 1
    info = status["nodeInfo"]
    assert info["kubeletVersion"] == "v1.32.0-nanokube"
    assert info["containerRuntimeVersion"] == "nanokube://0.1"
    assert info["operatingSystem"] == "linux" and info["architecture"]
    assert status["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10250}}
    conds = {c["type"]: c for c in status["conditions"]}
    assert conds["Ready"]["status"] == "True" and conds["Ready"]["reason"] == "KubeletReady"
    for t in ("MemoryPressure", "DiskPressure", "PIDPressure"):
        assert conds[t]["status"] == "False"


def test_node_conditions_keep_transition_times():
    first = node_conditions("T1")
    later = {c["type"]: c for c in node_conditions("T2", first)}
    assert later["Ready"]["lastTransitionTime"] == "T1"
    assert later["Ready"]["lastHeartbeatTime"] == "T2"
    not_ready = [{**c, "status": "Unknown"} if c["type"] == "Ready" else c for c in first]
    again = {c["type"]: c for c in node_conditions("T3", not_ready)}
    assert again["Ready"]["lastTransitionTime"] == "T3"


def test_labels():
    labels = node_labels("node-2")
    assert labels["kubernetes.io/hostname"] == "node-2"
    assert labels["kubernetes.io/os"] == "linux" and labels["kubernetes.io/arch"]


def test_routes_to_the_other_nodes():
    def node(name, cidr, ip):
        return {"metadata": {"name": name}, "spec": {"podCIDR": cidr} if cidr else {},
                "status": {"addresses": [{"type": "InternalIP", "address": ip}]}}
    nodes = [node("node-1", "10.244.1.0/24", "10.123.0.11"),
             node("node-2", "10.244.2.0/24", "10.123.0.12"),
             node("node-3", None, "10.123.0.13")]
    assert routes_to_others(nodes, "node-1") == {"10.244.2.0/24": "10.123.0.12"}


def test_lease_body_and_micro_time():
    agent = NodeAgent.__new__(NodeAgent)
    agent.node_name, agent.node_uid, agent.lease_duration = "node-1", "u1", 10.0
    body = agent.lease_body()
    assert body["metadata"]["namespace"] == "kube-node-lease"
    assert body["metadata"]["ownerReferences"][0] == {"apiVersion": "v1", "kind": "Node",
                                                      "name": "node-1", "uid": "u1"}
    assert body["spec"]["holderIdentity"] == "node-1"
    assert body["spec"]["leaseDurationSeconds"] == 10
    stamp = micro_time()
    assert len(stamp) == len("2026-01-01T00:00:00.000000Z") and stamp.endswith("Z")
