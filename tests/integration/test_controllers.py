"""The controller manager against a real API server, the test playing the kubelets.

`nanokube server` and `nanokube controller-manager` run as subprocesses. No agents exist: a
background thread renews the Leases of the "alive" nodes and turns every pod bound to an alive
node Running and Ready with a pod IP, unless the test holds that pod not ready.
"""
from __future__ import annotations

import datetime
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from harness import ROOT, require_kubectl

kubernetes = pytest.importorskip("kubernetes")
client = kubernetes.client

GRACE = 2.0
NODES = ("node-1", "node-2")


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def wait_for(what, check, timeout=20.0, interval=0.05):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except kubernetes.client.ApiException as e:
            last = e
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


class FakeKubelets:
    """Lease heartbeats and pod status for the alive nodes."""

    def __init__(self, kubeconfig: str):
        self.api_client = kubernetes.config.new_client_from_config(config_file=kubeconfig)
        self.core = client.CoreV1Api(self.api_client)
        self.coord = client.CoordinationV1Api(self.api_client)
        self.alive = set(NODES)
        self.not_ready: set[str] = set()      # pod names held not ready
        self.ips: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.errors: list[Exception] = []

    def register_nodes(self) -> None:
        for i, name in enumerate(NODES, 1):
            self.core.create_node({
                "apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {
                    "kubernetes.io/hostname": name}},
                "status": {"conditions": [{
                    "type": "Ready", "status": "True", "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                    "lastHeartbeatTime": now().isoformat(), "lastTransitionTime":
                    now().isoformat()}],
                    "addresses": [{"type": "InternalIP", "address": f"10.123.0.1{i}"}]}})
            self.coord.create_namespaced_lease("kube-node-lease", {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name},
                "spec": {"holderIdentity": name, "leaseDurationSeconds": 40,
                         "renewTime": now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")}})

    def start(self) -> "FakeKubelets":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.api_client.close()

    def _loop(self) -> None:
        last_renew = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() - last_renew > 0.5:
                    last_renew = time.monotonic()
                    for name in list(self.alive):
                        self.coord.patch_namespaced_lease(name, "kube-node-lease", {
                            "spec": {"renewTime": now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")}})
                self._sync_pods()
            except Exception as e:       # noqa: BLE001 - reported by the test
                self.errors.append(e)
            self._stop.wait(0.03)

    def _sync_pods(self) -> None:
        for pod in self.core.list_namespaced_pod("default").items:
            node = pod.spec.node_name
            if not node or node not in self.alive:
                continue
            if pod.metadata.deletion_timestamp:      # "stop" the pod, then let it go (the
                # answer is not read: a Status, which this client cannot parse as a Pod)
                try:
                    self.core.delete_namespaced_pod(pod.metadata.name, "default",
                                                    grace_period_seconds=0,
                                                    _preload_content=False)
                except kubernetes.client.ApiException as e:
                    if e.status != 404:
                        raise
                continue
            want_ready = pod.metadata.name not in self.not_ready
            ip = self.ips.setdefault(pod.metadata.uid, f"10.244.{NODES.index(node) + 1}."
                                                       f"{len(self.ips) + 2}")
            conds = {c.type: c.status for c in pod.status.conditions or []}
            if pod.status.phase == "Running" and pod.status.pod_ip == ip and \
                    conds.get("Ready") == ("True" if want_ready else "False"):
                continue
            ready = "True" if want_ready else "False"
            stamp = now().strftime("%Y-%m-%dT%H:%M:%SZ")
            self.core.patch_namespaced_pod_status(pod.metadata.name, "default", {"status": {
                "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "10.123.0.11",
                "conditions": [
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": stamp},
                    {"type": "Initialized", "status": "True", "lastTransitionTime": stamp},
                    {"type": "ContainersReady", "status": ready, "lastTransitionTime": stamp},
                    {"type": "Ready", "status": ready, "lastTransitionTime": stamp}]}})


@pytest.fixture
def cluster(apiserver, tmp_path):
    """(kubelets, core api, apps api, discovery api) with a running controller manager."""
    log = open(tmp_path / "controller-manager.log", "ab")
    env = dict(os.environ, KUBECONFIG=apiserver.kubeconfig)
    proc = subprocess.Popen([sys.executable, "-m", "nanokube", "controller-manager",
                             "--node-monitor-grace-period", str(GRACE)],
                            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    kubelets = FakeKubelets(apiserver.kubeconfig)
    try:
        kubelets.register_nodes()
        kubelets.start()
        api = kubelets.api_client
        yield kubelets, kubelets.core, client.AppsV1Api(api), client.DiscoveryV1Api(api)
    finally:
        kubelets.stop()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        log.close()
        print((tmp_path / "controller-manager.log").read_text()[-5000:])
    assert proc.returncode == 0, "the controller manager did not stop cleanly on SIGTERM"


DEPLOYMENT = {
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
    "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
             "template": {"metadata": {"labels": {"app": "web"}},
                          "spec": {"containers": [{"name": "web", "image": "web:1",
                                                   "ports": [{"name": "http",
                                                              "containerPort": 8080}]}]}}}}
SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
           "spec": {"selector": {"app": "web"},
                    "ports": [{"port": 80, "targetPort": "http"}]}}


def web_pods(core):
    return [p for p in core.list_namespaced_pod("default", label_selector="app=web").items]


def slice_endpoints(disc, ready_only=True):
    """(pod name, address, ready) of the web Service's slices, and their ports."""
    slices = disc.list_namespaced_endpoint_slice(
        "default", label_selector="kubernetes.io/service-name=web").items
    eps, ports = [], []
    for sl in slices:
        ports += [(p.name, p.port, p.protocol) for p in sl.ports or []]
        for ep in sl.endpoints or []:
            if ready_only and not ep.conditions.ready:
                continue
            eps.append((ep.target_ref.name, ep.addresses[0], ep.node_name))
    return sorted(eps), sorted(set(ports))


def ready_pods_on(core, node=None):
    return sorted(p.metadata.name for p in web_pods(core)
                  if (node is None or p.spec.node_name == node) and
                  any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or []))


def test_deployments_endpointslices_and_nodes(cluster, kubectl):
    require_kubectl()
    kubelets, core, apps, disc = cluster
    # node IPAM: a /24 each, the first one kept free
    def pod_cidrs():
        nodes = core.list_node().items
        if len(nodes) == len(NODES) and all(n.spec and n.spec.pod_cidr for n in nodes):
            return sorted(n.spec.pod_cidr for n in nodes)
        return None    # the fake kubelets may not have registered every Node yet
    cidrs = wait_for("pod CIDRs", pod_cidrs)
    assert cidrs == ["10.244.1.0/24", "10.244.2.0/24"]

    core.create_namespaced_service("default", SERVICE)
    apps.create_namespaced_deployment("default", DEPLOYMENT)

    # a ReplicaSet <deploy>-<hash> and 3 pods spread over both nodes
    rs = wait_for("replicaset", lambda: apps.list_namespaced_replica_set("default").items)[0]
    hash_ = rs.metadata.labels["pod-template-hash"]
    assert rs.metadata.name == f"web-{hash_}"
    assert rs.metadata.owner_references[0].kind == "Deployment"
    assert rs.metadata.annotations["deployment.kubernetes.io/revision"] == "1"
    pods = wait_for("3 ready pods", lambda: len(ready_pods_on(core)) == 3 and web_pods(core))
    assert {p.spec.node_name for p in pods} == set(NODES)
    for p in pods:
        assert p.metadata.name.startswith(f"web-{hash_}-")
        ref = p.metadata.owner_references[0]
        assert (ref.kind, ref.name, ref.controller, ref.block_owner_deletion) == \
            ("ReplicaSet", rs.metadata.name, True, True)

    eps, ports = wait_for("3 endpoints", lambda: len(slice_endpoints(disc)[0]) == 3 and
                          slice_endpoints(disc))
    assert ports == [("", 8080, "TCP")]
    out = kubectl("get", "deploy", "web").stdout
    assert "3/3" in out, out

    # scale to 6 and to 1: the slice follows within a second of the pods being ready
    for replicas in (6, 1):
        apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": replicas}})
        wait_for(f"{replicas} ready pods", lambda: len(ready_pods_on(core)) == replicas and
                 len(web_pods(core)) == replicas)
        t0 = time.monotonic()
        wait_for(f"{replicas} endpoints", lambda: [e[0] for e in slice_endpoints(disc)[0]] ==
                 ready_pods_on(core), timeout=5)
        assert time.monotonic() - t0 < 1.0
    d = apps.read_namespaced_deployment("web", "default")
    assert d.status.replicas == 1 and d.status.observed_generation == d.metadata.generation

    # readiness: a pod that turns not ready leaves the ready endpoints, then comes back
    apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 3}})
    wait_for("3 endpoints", lambda: len(slice_endpoints(disc)[0]) == 3)
    victim = ready_pods_on(core)[0]
    kubelets.not_ready.add(victim)
    wait_for("victim not ready", lambda: victim not in [e[0] for e in slice_endpoints(disc)[0]])
    all_eps, _ = slice_endpoints(disc, ready_only=False)
    assert victim in [e[0] for e in all_eps]             # still listed, with ready=false
    legacy = core.read_namespaced_endpoints("web", "default")
    assert [a.target_ref.name for a in legacy.subsets[0].not_ready_addresses] == [victim]
    assert len(legacy.subsets[0].addresses) == 2
    kubelets.not_ready.discard(victim)
    wait_for("victim ready again", lambda: len(slice_endpoints(disc)[0]) == 3)

    # rolling update
    apps.patch_namespaced_deployment("web", "default", {"spec": {"template": {"spec": {
        "containers": [{"name": "web", "image": "web:2"}]}}}})
    done = kubectl("rollout", "status", "deployment/web", "--timeout=60s", timeout=70)
    assert "successfully rolled out" in done.stdout
    rss = apps.list_namespaced_replica_set("default").items
    assert len(rss) == 2
    new = next(r for r in rss if r.metadata.name != rs.metadata.name)
    assert new.metadata.annotations["deployment.kubernetes.io/revision"] == "2"
    assert new.spec.replicas == 3
    assert apps.read_namespaced_replica_set(rs.metadata.name, "default").spec.replicas == 0
    d = apps.read_namespaced_deployment("web", "default")
    assert d.metadata.annotations["deployment.kubernetes.io/revision"] == "2"
    conds = {c.type: c.reason for c in d.status.conditions}
    assert conds == {"Available": "MinimumReplicasAvailable",
                     "Progressing": "NewReplicaSetAvailable"}
    wait_for("new pods in the slice", lambda: len(slice_endpoints(disc)[0]) == 3 and all(
        e[0].startswith(new.metadata.name) for e in slice_endpoints(disc)[0]))
    wait_for("old pods gone", lambda: len(web_pods(core)) == 3)

    # steady state: controllers write nothing more (no hot loops on their own writes)
    def versions():
        objs = [apps.read_namespaced_deployment("web", "default"),
                *apps.list_namespaced_replica_set("default").items,
                *disc.list_namespaced_endpoint_slice("default").items,
                core.read_namespaced_endpoints("web", "default")]
        return sorted((o.metadata.name, o.metadata.resource_version) for o in objs)
    time.sleep(0.3)
    before = versions()
    time.sleep(1.0)
    assert versions() == before

    # a stale lease: node-2 goes NotReady, tainted, its pods leave the slice
    kubelets.alive.discard("node-2")
    on_2 = ready_pods_on(core, "node-2")
    assert on_2, "spreading should have put a pod on node-2"
    node = wait_for("node-2 NotReady", lambda: (lambda n: n if any(
        c.type == "Ready" and c.status == "Unknown" for c in n.status.conditions) else None)(
        core.read_node("node-2")), timeout=GRACE + 10)
    ready = next(c for c in node.status.conditions if c.type == "Ready")
    assert (ready.reason, ready.message) == ("NodeStatusUnknown",
                                            "Kubelet stopped posting node status.")
    wait_for("unreachable taints", lambda: sorted(
        (t.key, t.effect) for t in core.read_node("node-2").spec.taints or []) == [
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoSchedule")])
    wait_for("node-2 pods out of the slice", lambda: not any(
        e[2] == "node-2" for e in slice_endpoints(disc)[0]) and slice_endpoints(disc)[0])
    # new pods go to node-1 only now
    apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 5}})
    wait_for("5 pods", lambda: len(web_pods(core)) == 5 and all(
        p.spec.node_name for p in web_pods(core)))
    assert len([p for p in web_pods(core) if p.spec.node_name == "node-2"]) == len(on_2)

    # the node comes back: taints go once the agent reports Ready
    kubelets.alive.add("node-2")
    core.patch_node_status("node-2", {"status": {"conditions": [{
        "type": "Ready", "status": "True", "reason": "KubeletReady",
        "message": "kubelet is posting ready status",
        "lastHeartbeatTime": now().isoformat(), "lastTransitionTime": now().isoformat()}]}})
    wait_for("taints removed", lambda: not core.read_node("node-2").spec.taints)

    # deleting the Deployment removes its ReplicaSets and pods (the API server's GC)
    apps.delete_namespaced_deployment("web", "default")
    wait_for("replicasets gone", lambda: not apps.list_namespaced_replica_set("default").items)
    wait_for("pods gone", lambda: not web_pods(core))
    wait_for("placeholder slice", lambda: slice_endpoints(disc) == ([], []))
    assert not kubelets.errors, kubelets.errors[:3]


def test_unschedulable_pod_gets_condition(cluster):
    kubelets, core, apps, disc = cluster
    core.create_namespaced_pod("default", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "picky"},
        "spec": {"nodeSelector": {"disk": "ssd"},
                 "containers": [{"name": "c", "image": "x"}]}})
    cond = wait_for("PodScheduled=False", lambda: next(
        (c for c in core.read_namespaced_pod("picky", "default").status.conditions or []
         if c.type == "PodScheduled" and c.status == "False"), None))
    assert cond.reason == "Unschedulable"
    assert cond.message.startswith("0/2 nodes are available: 2 node(s) didn't match Pod's "
                                   "node affinity/selector.")
    core.patch_node("node-1", {"metadata": {"labels": {"disk": "ssd"}}})
    pod = wait_for("bound after a node change", lambda: (lambda p: p if p.spec.node_name else
                                                         None)(core.read_namespaced_pod(
                                                             "picky", "default")))
    assert pod.spec.node_name == "node-1"


def test_recreate_strategy(cluster, kubectl):
    require_kubectl()
    kubelets, core, apps, disc = cluster
    d = {**DEPLOYMENT, "metadata": {"name": "web"},
         "spec": {**DEPLOYMENT["spec"], "replicas": 2, "strategy": {"type": "Recreate"}}}
    apps.create_namespaced_deployment("default", d)
    wait_for("2 ready pods", lambda: len(ready_pods_on(core)) == 2)
    first = apps.list_namespaced_replica_set("default").items[0].metadata.name
    apps.patch_namespaced_deployment("web", "default", {"spec": {"template": {"spec": {
        "containers": [{"name": "web", "image": "web:2"}]}}}})
    # while the new ReplicaSet has pods, the old one has none left
    seen_both = False
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        owners = {p.metadata.owner_references[0].name for p in web_pods(core)
                  if not p.metadata.deletion_timestamp}
        seen_both = seen_both or len(owners) > 1
        if owners and first not in owners and len(ready_pods_on(core)) == 2:
            break
        time.sleep(0.02)
    assert not seen_both
    kubectl("rollout", "status", "deployment/web", "--timeout=30s", timeout=40)
    assert apps.read_namespaced_replica_set(first, "default").spec.replicas == 0
