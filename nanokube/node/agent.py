"""`nanokube agent`: the node agent, kubelet and kube-proxy in one process.

It runs inside its node's network namespace. It registers the Node, renews the node's Lease in
kube-node-lease, waits for node IPAM to give the Node a podCIDR, sets the node's pod network up
and keeps routes to the other nodes' pod CIDRs, runs the pods bound to the node (one
PodWorker each) and serves their logs on <node-ip>:10250. Its service proxy (serviceproxy.py)
programs the node's Services into nftables and serves :10249/metrics and :10256/healthz.

Stopping the agent leaves the pods running and the Service rules in place: the next agent adopts
the pods from their state files (`nanokube down` ends them through the pids files) and replaces
the rules with one atomic full sync.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
from pathlib import Path
from typing import Any, Callable

from nanokube.api.errors import StatusError
from nanokube.apitime import now_rfc3339
from nanokube.client import Client
from nanokube.controllers.events import NORMAL, EventRecorder, node_reference
from nanokube.controllers.informer import Informer
from nanokube.node import runtime
from nanokube.node import kubeletevents
from nanokube.node.announcer import Announcer
from nanokube.node.execserver import api_server_addresses
from nanokube.node.logserver import ContainerLog, LogServer
from nanokube.node.metrics import DEFAULT_RESOLUTION, ContainerRef, Sampler
from nanokube.node.nodeinfo import (micro_time, node_labels, node_ready, node_status,
                                    read_text, routes_to_others)
from nanokube.node.podworker import NodeContext, PodWorker
from nanokube.node.portforward import PodSandbox, PortForwardServer
from nanokube.node.tunnel import TunnelServer
from nanokube.node.serviceproxy import ServiceProxy


log = logging.getLogger("nanokube.node.agent")

LEASE_NAMESPACE = "kube-node-lease"
STATUS_REPORT_EVERY = 300.0       # nodeStatusReportFrequency: the Lease is the heartbeat


class NodeAgent:
    def __init__(self, client: Client, node_name: str, node_ip: str, state_dir: str,
                 network: Any, container_argv: Callable, cluster_dns: str = "10.96.0.10",
                 cluster_domain: str = "cluster.local", lease_duration: float = 10.0,
                 log_port: int = 10250, cluster_cidr: str = "10.244.0.0/16",
                 service_cidr: str = "10.96.0.0/12", proxy: bool = True,
                 nodeport_addresses: str = "primary",
                 metric_resolution: float = DEFAULT_RESOLUTION):
        self.client = client
        self.node_name = node_name
        self.node_ip = node_ip
        self.state_dir = Path(state_dir)
        self.network = network
        self.lease_duration = lease_duration
        self.node_uid = ""
        self.nodes = Informer(client, "", "v1", "nodes")
        self.services = Informer(client, "", "v1", "services")
        self.pods = Informer(client, "", "v1", "pods")
        # the watch of this node's pods only: the query rides on the path
        self.pods.path += f"?fieldSelector=spec.nodeName%3D{node_name}"
        self.ctx = NodeContext(client, node_name, node_ip, self.state_dir, cluster_dns,
                               cluster_domain, network, self.services.list, container_argv,
                               read_text("/etc/resolv.conf"))
        self.recorder = EventRecorder(client, kubeletevents.COMPONENT, host=node_name)
        self.ctx.recorder = self.recorder
        self.workers: dict[str, PodWorker] = {}
        self.sandboxes: dict[str, str] = {}
        self.network_ready = asyncio.Event()
        port_forward = PortForwardServer(self.find_sandbox, api_server_addresses(node_ip))
        tunnel = TunnelServer(self.pod_addresses, api_server_addresses(node_ip))
        # resource usage for metrics.k8s.io (kubectl top)
        self.sampler = Sampler(node_name, self.running_containers,
                               api_server_addresses(node_ip), metric_resolution)

        def more_routes(router) -> None:
            port_forward.add_routes(router)
            tunnel.add_routes(router)           # services/proxy and pods/proxy
            self.sampler.add_routes(router)     # /stats/summary
        self.log_server = LogServer(self.find_log, node_ip, log_port, more_routes=more_routes)
        self.proxy = ServiceProxy(client, node_name, node_ip, self.services,
                                  cluster_cidr=cluster_cidr, service_cidr=service_cidr,
                                  node_eligible=self._node_eligible,
                                  nodeport_addresses=nodeport_addresses) if proxy else None
        # LoadBalancer addresses are announced (ARP) only where the proxier can DNAT them
        self.announcer = Announcer(client, node_name, self.nodes, self.services,
                                   self.proxy.slices) if proxy else None
        self._routes: dict[str, str] | None = None
        self._pod_cidr: str | None = None
        self._routes_changed = asyncio.Event()
        self._node_status_now = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    # ---- the whole agent ---------------------------------------------------------------------
    async def run(self) -> None:
        (self.state_dir / "pods").mkdir(parents=True, exist_ok=True)
        self.recorder.record(node_reference(self.node_name), NORMAL, "Starting",
                             "Starting kubelet.")
        await self.register_node()
        self.nodes.add_handler(self._on_node)
        self.pods.add_handler(self._on_pod)
        await self.log_server.start()
        spawn = lambda coro: self._tasks.append(asyncio.create_task(coro))
        spawn(self.lease_loop())
        spawn(self.node_status_loop())
        spawn(self.nodes.run())
        spawn(self.services.run())
        spawn(self.routes_loop())
        spawn(self.pods_loop())
        spawn(self.sampler.run())
        if self.proxy is not None:
            spawn(self.proxy.run())
            spawn(self.service_route())
            spawn(self.announcer.run())
        try:
            await asyncio.gather(*self._tasks)
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self.log_server.stop()

    # ---- Node and Lease --------------------------------------------------------------------------
    def _node_path(self, subresource: str | None = None) -> str:
        return Client.resource_path("", "v1", "nodes", None, self.node_name, subresource)

    async def register_node(self) -> None:
        now = now_rfc3339()
        body = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": self.node_name, "labels": node_labels(self.node_name)},
                "status": node_status(self.node_ip, self.node_name, now)}
        while True:
            try:
                try:
                    node = await self.client.create(
                        Client.resource_path("", "v1", "nodes"), body)
                    self._record_node_status(None, body["status"]["conditions"])
                except StatusError as e:
                    if e.code != 409:
                        raise
                    # registered before (an agent restart): bring labels and status up to date
                    node = await self.client.patch(self._node_path(),
                                                   {"metadata": {"labels": body["metadata"]["labels"]}})
                    await self.patch_node_status(node)
                self.node_uid = node["metadata"]["uid"]
                log.info("node %s registered", self.node_name)
                return
            except Exception as e:       # the API server is not there yet
                log.warning("registering node %s: %s", self.node_name, e)
                await asyncio.sleep(1)

    async def patch_node_status(self, node: dict | None = None) -> None:
        previous = ((node or self.nodes.get(self.node_name) or {}).get("status") or {}) \
            .get("conditions")
        status = node_status(self.node_ip, self.node_name, now_rfc3339(), previous)
        await self.client.patch(self._node_path("status"), {"status": status})
        self._record_node_status(previous, status["conditions"])

    def _record_node_status(self, previous: list[dict] | None, current: list[dict]) -> None:
        for type_, reason, message in kubeletevents.node_status_events(self.node_name,
                                                                       previous, current):
            self.recorder.record(node_reference(self.node_name), type_, reason, message)

    async def node_status_loop(self) -> None:
        """Report the Node's status every 5 minutes, and at once when someone else (the node
        lifecycle controller) marked it not Ready while this agent is alive."""
        while True:
            try:
                await asyncio.wait_for(self._node_status_now.wait(), STATUS_REPORT_EVERY)
            except asyncio.TimeoutError:
                pass
            self._node_status_now.clear()
            try:
                await self.patch_node_status()
            except Exception as e:
                log.warning("node status: %s", e)
                await asyncio.sleep(1)

    def lease_body(self) -> dict:
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.node_name, "namespace": LEASE_NAMESPACE,
                             "ownerReferences": [{"apiVersion": "v1", "kind": "Node",
                                                  "name": self.node_name,
                                                  "uid": self.node_uid}]},
                "spec": {"holderIdentity": self.node_name,
                         "leaseDurationSeconds": max(1, int(self.lease_duration)),
                         "renewTime": micro_time()}}

    async def renew_lease(self) -> None:
        path = Client.resource_path("coordination.k8s.io", "v1", "leases", LEASE_NAMESPACE,
                                    self.node_name)
        body = self.lease_body()
        try:
            await self.client.patch(path, {"spec": body["spec"]})
        except StatusError as e:
            if e.code != 404:
                raise
            await self.client.create(Client.resource_path(
                "coordination.k8s.io", "v1", "leases", LEASE_NAMESPACE), body)

    async def lease_loop(self) -> None:
        interval = self.lease_duration / 4
        while True:
            try:
                await self.renew_lease()
            except Exception as e:
                log.warning("lease: %s", e)
                await asyncio.sleep(min(1.0, interval))
                continue
            await asyncio.sleep(interval)

    # ---- nodes: our podCIDR, routes to the others ----------------------------------------------
    def _on_node(self, old: dict | None, new: dict | None) -> None:
        if new is not None and new["metadata"]["name"] == self.node_name:
            cidr = (new.get("spec") or {}).get("podCIDR")
            if cidr and self._pod_cidr is None:
                self._pod_cidr = cidr
                self._tasks.append(asyncio.create_task(self.setup_network(cidr)))
            if not node_ready(new) and (new.get("status") or {}).get("conditions"):
                self._node_status_now.set()
        self._routes_changed.set()

    async def setup_network(self, cidr: str) -> None:
        while True:
            try:
                await self.network.setup_node(cidr)
                self.sandboxes = await self.network.pod_ips()
                break
            except Exception as e:
                log.warning("pod network %s: %s", cidr, e)
                await asyncio.sleep(1)
        log.info("pod network %s ready", cidr)
        self.network_ready.set()
        self._routes_changed.set()

    async def routes_loop(self) -> None:
        while True:
            await self._routes_changed.wait()
            self._routes_changed.clear()
            if not self.network_ready.is_set():
                continue
            routes = routes_to_others(self.nodes.list(), self.node_name)
            if routes == self._routes:
                continue
            try:
                await self.network.sync_routes(routes)
                self._routes = routes
            except Exception as e:
                log.warning("routes: %s", e)
                await asyncio.sleep(1)
                self._routes_changed.set()

    # ---- service proxy --------------------------------------------------------------------------
    async def service_route(self) -> None:
        await self.network_ready.wait()        # the route goes through cni0
        await self.proxy.add_service_route()

    def _node_eligible(self) -> bool:
        """kube-proxy's /healthz fails on a node being deleted, so load balancers drain it."""
        node = self.nodes.get(self.node_name) or {}
        return not (node.get("metadata") or {}).get("deletionTimestamp")

    # ---- pods -----------------------------------------------------------------------------------
    async def pods_loop(self) -> None:
        await self.network_ready.wait()
        await self.services.synced.wait()      # service links are part of the environment
        task = asyncio.create_task(self.pods.run())
        await self.pods.synced.wait()
        await self.cleanup_orphans()
        await task

    def _on_pod(self, old: dict | None, new: dict | None) -> None:
        if old is not None and (new is None or old["metadata"]["uid"] != new["metadata"]["uid"]):
            worker = self.workers.get(old["metadata"]["uid"])
            if worker is not None:
                worker.terminate(delete_from_api=False)
        if new is None:
            return
        uid = new["metadata"]["uid"]
        worker = self.workers.get(uid)
        if worker is None:
            worker = PodWorker(self.ctx, new, self.sandboxes.pop(uid, None), self._worker_done)
            self.workers[uid] = worker
            worker.start()
        worker.update(new)

    def _worker_done(self, uid: str) -> None:
        self.workers.pop(uid, None)

    async def cleanup_orphans(self) -> None:
        """Sandboxes and processes of pods the API no longer has (they ended while no agent
        was running)."""
        known = set(self.workers)
        pods_dir = self.state_dir / "pods"
        for directory in pods_dir.iterdir() if pods_dir.exists() else []:
            if directory.name not in known:
                kill_recorded(directory)
                shutil.rmtree(directory, ignore_errors=True)
        for uid in list(self.sandboxes):
            if uid not in known:
                self.sandboxes.pop(uid)
                try:
                    await self.network.remove_pod(uid)
                except Exception as e:
                    log.warning("removing sandbox %s: %s", uid, e)

    # ---- logs -------------------------------------------------------------------------------------
    def find_log(self, namespace: str, pod: str, container: str) -> ContainerLog | str:
        for worker in list(self.workers.values()):
            if worker.namespace == namespace and worker.name == pod:
                state = worker.container_state(container)
                if state is None:
                    return f"container {container} is not valid for pod {pod}"
                pid = state.pid
                return ContainerLog(worker.log_path(container),
                                    worker.log_path(container, previous=True),
                                    lambda: pid is not None and state.pid == pid)
        return f'pod "{pod}" not found on node {self.node_name}'

    # ---- port-forward -------------------------------------------------------------------------
    def find_sandbox(self, namespace: str, pod: str) -> PodSandbox | str:
        """The pod's network namespace, for port-forward (the kubelet's "pod does not exist"
        when the pod is not one of this node's)."""
        for worker in list(self.workers.values()):
            if worker.namespace == namespace and worker.name == pod:
                netns = None if worker.host_network else \
                    f"/run/netns/{self.network.netns_name(worker.uid)}"
                return PodSandbox(worker.uid, netns)
        return "pod does not exist"

    def running_containers(self) -> list[ContainerRef]:
        """This node's container instances, for the resource usage sampler."""
        out = []
        for w in list(self.workers.values()):
            for name, runner in list(w.runners.items()):
                p = runner.proc
                if p is not None:
                    out.append(ContainerRef(w.namespace, w.name, w.uid, name, p.pid,
                                            p.start_ticks, p.started_at))
        return out

    def pod_addresses(self) -> set[str]:
        """The addresses of this node's pods, which the API server's proxy may reach."""
        return {w.pod_ip for w in list(self.workers.values()) if w.pod_ip}


def kill_recorded(directory: Path) -> None:
    """End the processes a pod's state file names, if they are still the same processes."""
    try:
        data = json.loads((directory / "state.json").read_text())
    except (OSError, ValueError):
        return
    for c in data.get("containers") or []:
        pid = int(c.get("pid") or 0)
        if pid and runtime.is_alive(pid, c.get("startTicks")):
            runtime.signal_process(pid, signal.SIGKILL, group=True)
            runtime.signal_process(pid, signal.SIGKILL)


# ---- the command ------------------------------------------------------------------------------------

def default_network(cluster: str, state_dir: str) -> Any:
    from nanokube.node.cni import PodNetwork
    return PodNetwork(cluster, state_dir)


def default_container_argv() -> Callable:
    from nanokube.images import container_argv
    return container_argv


async def _run(args) -> None:
    if not args.kubeconfig:
        raise SystemExit("error: --kubeconfig or $KUBECONFIG is required")
    client = Client.from_kubeconfig(args.kubeconfig)
    agent = NodeAgent(client, args.node, args.node_ip, args.state_dir,
                      default_network(args.cluster, args.state_dir), default_container_argv(),
                      cluster_dns=args.cluster_dns, cluster_domain=args.cluster_domain,
                      lease_duration=args.lease_duration,
                      cluster_cidr=args.cluster_cidr, service_cidr=args.service_cluster_ip_range,
                      nodeport_addresses=args.nodeport_addresses,
                      metric_resolution=args.metric_resolution)
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, main_task.cancel)
    try:
        await agent.run()
    except asyncio.CancelledError:
        log.info("agent stopping; pods keep running")
    finally:
        await client.close()


def main(args) -> int:
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args.state_dir = os.path.abspath(args.state_dir)
    kubeconfig = args.kubeconfig or os.environ.get("KUBECONFIG")
    args.kubeconfig = os.path.abspath(kubeconfig) if kubeconfig else None
    os.chdir("/")       # containers inherit the working directory
    asyncio.run(_run(args))
    return 0
