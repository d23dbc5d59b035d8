"""LoadBalancer Services against a real `nanokube server` and `nanokube controller-manager`.

No root and no network: the pool provider only allocates addresses and writes status; MetalLB
IPAddressPools are applied with kubectl exactly as one applies them to MetalLB.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

import harness
from harness import ROOT, require_kubectl, stop_process

kubernetes = pytest.importorskip("kubernetes")

POOL = """
apiVersion: v1
kind: Namespace
metadata: {{name: metallb-system}}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: default, namespace: metallb-system}}
spec:
  addresses: [{addresses}]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {{name: default, namespace: metallb-system}}
"""


def service(name, ports=(80,), ip=None, annotations=None, type_="LoadBalancer", cls=None):
    spec = {"type": type_, "selector": {"app": name},
            "ports": [{"name": f"p{p}", "port": p} for p in ports]}
    if ip:
        spec["loadBalancerIP"] = ip
    if cls:
        spec["loadBalancerClass"] = cls
    return json.dumps({"apiVersion": "v1", "kind": "Service",
                       "metadata": {"name": name, "annotations": annotations or {}},
                       "spec": spec})


class ControllerManager:
    def __init__(self, kubeconfig, log_path):
        self.env = dict(os.environ, KUBECONFIG=kubeconfig)
        self.log_path = log_path
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([sys.executable, "-m", "nanokube", "controller-manager"],
                                     stdout=open(self.log_path, "ab"),
                                     stderr=subprocess.STDOUT, cwd=ROOT, env=self.env)
        return self

    def stop(self):
        stop_process(self.proc)


@pytest.fixture
def manager(apiserver, tmp_path):
    cm = ControllerManager(apiserver.kubeconfig, tmp_path / "controller-manager.log")
    try:
        yield cm.start()
    finally:
        cm.stop()
        print(cm.log_path.read_text()[-5000:])


def wait_for(what, check, timeout=10.0):
    return harness.wait_for(what, check, timeout, interval=0.02)


def test_load_balancer_services(apiserver, manager, kubectl, k8s_client):
    require_kubectl()
    core = kubernetes.client.CoreV1Api(k8s_client)

    def ingress(name):
        try:
            svc = core.read_namespaced_service(name, "default")
        except kubernetes.client.ApiException:
            return None
        lb = svc.status.load_balancer
        return [(i.ip, i.ip_mode) for i in (lb.ingress or [])] if lb else []

    def ip_of(name, timeout=10.0):
        return wait_for(f"an address for {name}", lambda: ingress(name), timeout)[0][0]

    def events(name, reason):
        items = core.list_namespaced_event(
            "default", field_selector=f"involvedObject.name={name},reason={reason}").items
        return [(e.type, e.message, e.source.component) for e in items]

    def apply(text):
        kubectl("apply", "-f", "-", input=text)

    apply(POOL.format(addresses="10.123.7.200-10.123.7.202"))
    out = kubectl("get", "ipaddresspools", "-n", "metallb-system").stdout
    assert out.split("\n")[0].split() == ["NAME", "AUTO", "ASSIGN", "AVOID", "BUGGY", "IPS",
                                          "ADDRESSES", "AGE"]
    assert '["10.123.7.200-10.123.7.202"]' in out and "true" in out

    # the lowest address, within a second, shown by kubectl; an IPAllocated Event
    shared = {"metallb.io/allow-shared-ip": "web"}
    t0 = time.monotonic()
    apply(service("a", ports=(80,), annotations=shared))
    assert wait_for("a's address", lambda: ingress("a"), 1.0) == [("10.123.7.200", "VIP")]
    assert time.monotonic() - t0 < 1.0
    row = kubectl("get", "svc", "a").stdout.split("\n")[1].split()
    assert row[3] == "10.123.7.200", row
    assert wait_for("IPAllocated", lambda: events("a", "IPAllocated")) == [
        ("Normal", 'Assigned IP ["10.123.7.200"]', "service-controller")]
    a = core.read_namespaced_service("a", "default")
    assert a.metadata.annotations["metallb.io/ip-allocated-from-pool"] == "default"

    # sharing: same key, other ports -> the same address
    apply(service("f", ports=(443,), annotations=shared))
    assert ip_of("f") == "10.123.7.200"
    # a requested address is honoured
    apply(service("b", ip="10.123.7.202"))
    assert ip_of("b") == "10.123.7.202"
    # an address outside every pool stays <pending>, with an Event saying why
    apply(service("c", ip="192.168.99.9"))
    assert wait_for("AllocationFailed", lambda: events("c", "AllocationFailed")) == [
        ("Warning", 'Failed to allocate IP for "default/c": requested IP 192.168.99.9 is '
         "outside every IPAddressPool", "service-controller")]
    assert ingress("c") == []
    assert "<pending>" in kubectl("get", "svc", "c").stdout
    described = kubectl("describe", "svc", "c").stdout
    assert "AllocationFailed" in described and "outside every IPAddressPool" in described
    # an address in use, without a sharing key
    apply(service("t", ip="10.123.7.202"))
    assert wait_for("taken", lambda: events("t", "AllocationFailed"))[0][1].endswith(
        "address 10.123.7.202 is already in use by default/b")
    kubectl("delete", "svc", "t")
    # the last free address, then the pool is exhausted
    apply(service("d"))
    assert ip_of("d") == "10.123.7.201"
    apply(service("e"))
    assert wait_for("exhausted", lambda: events("e", "AllocationFailed"))[0][1].endswith(
        "no available IPs: IPAddressPool default exhausted")
    assert ingress("e") == []
    # another implementation's class is left alone
    apply(service("other", cls="example.com/lb"))

    # deleting a Service frees its address for a waiting one
    kubectl("delete", "svc", "d")
    assert ip_of("e") == "10.123.7.201"
    # a type change releases the address (and clears the status)
    kubectl("patch", "svc", "b", "-p", '{"spec": {"type": "ClusterIP"}}')
    wait_for("b released", lambda: ingress("b") == [])
    apply(service("g"))
    assert ip_of("g") == "10.123.7.202"
    # a bigger pool serves a waiting Service
    apply(service("h"))
    wait_for("h pending", lambda: events("h", "AllocationFailed"))
    apply(POOL.format(addresses="10.123.7.200-10.123.7.203"))
    assert ip_of("h") == "10.123.7.203"
    assert ingress("other") == []

    # a restart of the controller manager keeps every allocation
    before = {n: ingress(n) for n in ("a", "f", "c", "e", "g", "h")}
    manager.stop()
    manager.start()
    apply(service("late"))
    wait_for("late pending", lambda: events("late", "AllocationFailed"), 15)
    assert {n: ingress(n) for n in before} == before
    assert ingress("late") == []
    kubectl("delete", "svc", "g")
    assert ip_of("late") == "10.123.7.202"
