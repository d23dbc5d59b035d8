"""`nanokube controller-manager`: every controller in one asyncio process.

The manager builds the shared informers, starts them, waits until their caches are filled, then
runs each controller's workers. A Controller subclass has one idempotent `reconcile(key)`; it
may return a delay in seconds after which the key is looked at again (time-based conditions such
as minReadySeconds or a node's lease running out).
"""
from __future__ import annotations

import asyncio
import logging
import os
import time

from nanokube.api.errors import StatusError
from nanokube.apitime import parse_time
from nanokube.client import APIConnectionError, Client
from nanokube.controllers.informer import InformerFactory
from nanokube.controllers.workqueue import WorkQueue

log = logging.getLogger("nanokube.controller-manager")


class Controller:
    name = "controller"
    workers = 1

    def __init__(self, client: Client, informers: InformerFactory):
        self.client = client
        self.informers = informers
        self.queue = WorkQueue()

    async def reconcile(self, key: str) -> float | None:
        raise NotImplementedError

    def enqueue(self, key: str | None) -> None:
        if key:
            self.queue.add(key)

    async def start(self) -> None:
        """Called once the caches are synced, before the workers run."""

    async def run(self) -> None:
        await self.start()
        await asyncio.gather(*(self._worker() for _ in range(self.workers)))

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                delay = await self.reconcile(key)
                self.queue.forget(key)
                if delay is not None:
                    self.queue.add_after(key, delay)
            except asyncio.CancelledError:
                raise
            except StatusError as e:
                # 409: our cache was stale; 404: the object went meanwhile. Both resolve by
                # looking again once the cache has caught up.
                if e.code not in (404, 409):
                    log.warning("%s: reconcile %s: %s", self.name, key, e)
                self.queue.add_rate_limited(key)
            except APIConnectionError as e:
                log.warning("%s: reconcile %s: %s", self.name, key, e)
                self.queue.add_rate_limited(key)
            except Exception:
                log.exception("%s: reconcile %s failed", self.name, key)
                self.queue.add_rate_limited(key)
            finally:
                self.queue.done(key)


# ---- helpers shared by controllers (controller_utils.go) -----------------------------------------

def controller_ref(obj: dict) -> dict | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def owner_key(obj: dict, kind: str) -> str | None:
    """The queue key of the `kind` that controls `obj` (its controller ownerReference)."""
    ref = controller_ref(obj)
    if ref and ref.get("kind") == kind:
        return f"{obj['metadata']['namespace']}/{ref.get('name')}"
    return None


def controlled_by(objs: list[dict], owner: dict) -> list[dict]:
    """The objects whose controller ownerReference is `owner` (by uid)."""
    uid = owner["metadata"]["uid"]
    return [o for o in objs if (controller_ref(o) or {}).get("uid") == uid]


def owner_reference(owner: dict, api_version: str, kind: str) -> dict:
    return {"apiVersion": api_version, "kind": kind, "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def get_condition(obj: dict, kind: str) -> dict | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return cond
    return None


def is_pod_ready(pod: dict) -> bool:
    cond = get_condition(pod, "Ready")
    return bool(cond and cond.get("status") == "True")


def is_pod_terminal(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def is_pod_active(pod: dict) -> bool:
    """FilterActivePods: neither finished nor being deleted."""
    return not is_pod_terminal(pod) and not pod["metadata"].get("deletionTimestamp")


def is_pod_available(pod: dict, min_ready_seconds: int, now: float) -> bool:
    """Ready for at least minReadySeconds."""
    cond = get_condition(pod, "Ready")
    if not cond or cond.get("status") != "True":
        return False
    if not min_ready_seconds:
        return True
    since = parse_time(cond.get("lastTransitionTime"))
    return since is None or since + min_ready_seconds <= now


def build_controllers(client: Client, informers: InformerFactory, args) -> list[Controller]:
    from nanokube.controllers.daemonset import DaemonSetController
    from nanokube.controllers.cronjob import CronJobController
    from nanokube.controllers.deployment import DeploymentController
    from nanokube.controllers.endpoints import EndpointsController
    from nanokube.controllers.endpointslice import EndpointSliceController
    from nanokube.controllers.endpointslicemirroring import EndpointSliceMirroringController
    from nanokube.controllers.job import JobController
    from nanokube.controllers.loadbalancer import LoadBalancerController
    from nanokube.controllers.nodeipam import NodeIpamController
    from nanokube.controllers.nodelifecycle import NodeLifecycleController
    from nanokube.controllers.replicaset import ReplicaSetController
    from nanokube.controllers.scheduler import Scheduler
    from nanokube.controllers.statefulset import StatefulSetController
    from nanokube.controllers.ttlafterfinished import TTLAfterFinishedController

    return [
        NodeIpamController(client, informers, getattr(args, "cluster_cidr", None) or
                           "10.244.0.0/16", getattr(args, "node_cidr_mask_size", None) or 24),
        NodeLifecycleController(client, informers,
                                getattr(args, "node_monitor_grace_period", None) or 8.0),
        Scheduler(client, informers),
        DeploymentController(client, informers),
        ReplicaSetController(client, informers),
        StatefulSetController(client, informers),
        DaemonSetController(client, informers),
        JobController(client, informers),
        TTLAfterFinishedController(client, informers),
        CronJobController(client, informers),
        EndpointSliceController(client, informers),
        EndpointSliceMirroringController(client, informers),
        EndpointsController(client, informers),
        LoadBalancerController(client, informers),
    ]


def kubeconfig_path(args) -> str:
    path = getattr(args, "kubeconfig", None) or os.environ.get("KUBECONFIG")
    if path:
        return path.split(os.pathsep)[0]
    home = os.environ.get("NANOKUBE_HOME", "/var/lib/nanokube")
    return os.path.join(home, getattr(args, "cluster_name", None) or "default", "kubeconfig")


async def run(args, stop: asyncio.Event | None = None) -> None:
    from nanokube import daemon
    stop = daemon.stop_event(stop)
    client = Client.from_kubeconfig(kubeconfig_path(args), getattr(args, "context", None))
    try:
        if getattr(args, "leader_elect", False):
            from nanokube.controllers.leaderelection import ClientLeases, LeaderElector
            config = election_config(args)
            elector = LeaderElector(ClientLeases(client, config.namespace, config.name), config,
                                    leader_identity())
            await elector.run(lambda: run_controllers(client, args, asyncio.Event()), stop)
        else:
            await run_controllers(client, args, stop)
    finally:
        await client.close()


def election_config(args):
    from nanokube.controllers.leaderelection import ElectionConfig
    namespace, _, name = (getattr(args, "leader_elect_resource", None)
                          or "kube-system/kube-controller-manager").rpartition("/")
    return ElectionConfig(namespace or "kube-system", name,
                          getattr(args, "leader_elect_lease_duration", None) or 15.0,
                          getattr(args, "leader_elect_renew_deadline", None) or 10.0,
                          getattr(args, "leader_elect_retry_period", None) or 2.0)


def leader_identity() -> str:
    """client-go's: the host name and a unique suffix."""
    import socket
    import uuid
    return f"{socket.gethostname()}_{uuid.uuid4()}"


async def run_controllers(client: Client, args, stop: asyncio.Event,
                          build=build_controllers) -> None:
    """Informers, then every controller `build` makes, until `stop` (or cancellation:
    leadership lost). cert-manager's addon runs its own controllers through this too."""
    started = time.monotonic()
    informers = InformerFactory(client)
    controllers = build(client, informers, args)
    tasks = [asyncio.create_task(i.run(), name=f"informer-{i.plural}") for i in informers.all()]
    try:
        synced = asyncio.create_task(informers.wait_synced())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({synced, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not stop.is_set():
            log.info("caches synced in %.0f ms; starting %d controllers",
                     (time.monotonic() - started) * 1000, len(controllers))
            tasks += [asyncio.create_task(c.run(), name=c.name) for c in controllers]
            await stop.wait()
        for t in (synced, stopping):
            t.cancel()
    finally:
        log.info("stopping controllers")
        for c in controllers:
            c.queue.shutdown()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def main(args) -> int:
    from nanokube import daemon
    daemon.run(run(args))
    return 0
