"""The service load balancer controller: `type: LoadBalancer` Services get an address.

As Kubernetes' cloud-provider service controller, it drives a LoadBalancer provider (by default
the `pool` provider over MetalLB IPAddressPools) and writes what the provider answers to
status.loadBalancer.ingress ([{ip, ipMode: VIP}]) through the /status subresource. It serves
Services without spec.loadBalancerClass and those of class `nanokube.io/pool`; other classes
belong to other implementations and are left alone.

A Service that cannot be served keeps an empty status (`<pending>` in kubectl) and gets a Warning
Event AllocationFailed saying why; it is tried again whenever the pools change or another
Service lets an address go. At start, the addresses Services already hold (their status) are
recorded before anything is allocated, so a restart moves no Service.
"""
from __future__ import annotations

import logging

from nanokube.cloudprovider import LoadBalancer, LoadBalancerError, is_our_class
from nanokube.cloudprovider.pool import ALLOCATED_FROM_POOL, PREFIXES, PoolProvider
from nanokube.controllers.events import NORMAL, WARNING, EventRecorder
from nanokube.controllers.informer import object_key, split_key
from nanokube.controllers.manager import Controller

log = logging.getLogger("nanokube.loadbalancer")

COMPONENT = "service-controller"
CLUSTER_NAME = "nanokube"


def wants_load_balancer(service: dict | None) -> bool:
    if service is None or service["metadata"].get("deletionTimestamp"):
        return False
    return (service.get("spec") or {}).get("type") == "LoadBalancer" and is_our_class(service)


def ingress_of(service: dict) -> list[dict]:
    return ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []


def _allocation_inputs(service: dict | None) -> tuple:
    """What decides a Service's address; a change may free one for a pending Service."""
    if service is None:
        return ()
    spec = service.get("spec") or {}
    annotations = {k: v for k, v in (service["metadata"].get("annotations") or {}).items()
                   if k.startswith(PREFIXES) and k != ALLOCATED_FROM_POOL}
    return (wants_load_balancer(service), spec.get("loadBalancerIP"), annotations,
            spec.get("ports"),
            spec.get("externalTrafficPolicy"))


class LoadBalancerController(Controller):
    name = "service-lb"
    workers = 1      # one worker: allocation order is the order Services are looked at

    def __init__(self, client, informers, provider: LoadBalancer | None = None):
        super().__init__(client, informers)
        self.services = informers.services()
        self.pools = informers.informer("metallb.io", "v1beta1", "ipaddresspools")
        self.namespaces = informers.informer("", "v1", "namespaces")
        self.provider = provider or PoolProvider(self.pools.list, self._namespace_labels)
        self.recorder = EventRecorder(client, COMPONENT)
        self.services.add_handler(self._on_service)
        self.pools.add_handler(lambda old, new: self._enqueue_all())
        self.namespaces.add_handler(self._on_namespace)

    def _namespace_labels(self, namespace: str) -> dict:
        ns = self.namespaces.get(namespace)
        return ((ns or {}).get("metadata") or {}).get("labels") or {}

    # ---- event handlers ----------------------------------------------------------------------
    def _on_service(self, old: dict | None, new: dict | None) -> None:
        obj = new or old
        if not (wants_load_balancer(old) or wants_load_balancer(new) or
                (obj and ingress_of(obj))):
            return
        self.enqueue(object_key(obj))
        if old is not None and _allocation_inputs(old) != _allocation_inputs(new):
            self._enqueue_pending()

    def _on_namespace(self, old: dict | None, new: dict | None) -> None:
        name = (new or old)["metadata"]["name"]
        for svc in self.services.list(name):
            if wants_load_balancer(svc):
                self.enqueue(object_key(svc))

    def _enqueue_all(self) -> None:
        for svc in self.services.list():
            if wants_load_balancer(svc):
                self.enqueue(object_key(svc))

    def _enqueue_pending(self) -> None:
        """Services still waiting for an address: one may have come free."""
        for svc in self.services.list():
            if wants_load_balancer(svc) and not ingress_of(svc):
                self.enqueue(object_key(svc))

    # ---- start: keep what Services already hold ---------------------------------------------
    async def start(self) -> None:
        if isinstance(self.provider, PoolProvider):
            self.provider.refresh()
            for svc in self.services.list():
                if wants_load_balancer(svc):
                    for ing in ingress_of(svc)[:1]:
                        if ing.get("ip"):
                            self.provider.allocator.restore(svc, ing["ip"])
        for svc in self.services.list():
            if wants_load_balancer(svc) or (ingress_of(svc) and is_our_class(svc)):
                self.enqueue(object_key(svc))

    # ---- reconcile ---------------------------------------------------------------------------
    async def reconcile(self, key: str) -> float | None:
        service = self.services.get(key)
        if service is None:
            ns, name = split_key(key)
            await self.provider.ensure_load_balancer_deleted(
                CLUSTER_NAME, {"metadata": {"namespace": ns, "name": name}})
            return None
        service = {**service, "apiVersion": "v1", "kind": "Service"}
        if not wants_load_balancer(service):
            await self.provider.ensure_load_balancer_deleted(CLUSTER_NAME, service)
            if is_our_class(service) and ingress_of(service):
                await self._write_status(service, None, None)
                self._enqueue_pending()
            return None
        try:
            status = await self.provider.ensure_load_balancer(CLUSTER_NAME, service, [])
        except LoadBalancerError as e:
            if ingress_of(service):
                await self._write_status(service, None, None)
                self._enqueue_pending()
            await self.recorder.event(service, WARNING, "AllocationFailed",
                                      f"Failed to allocate IP for \"{key}\": {e}")
            return None
        if status.get("ingress") != ingress_of(service):
            alloc = getattr(self.provider, "allocation", lambda s: None)(service)
            await self._write_status(service, status, alloc.pool if alloc else None)
            ips = [i["ip"] for i in status.get("ingress") or [] if i.get("ip")]
            await self.recorder.event(service, NORMAL, "IPAllocated", "Assigned IP [" +
                                      ",".join(f'"{ip}"' for ip in ips) + "]")
        return None

    async def _write_status(self, service: dict, status: dict | None, pool: str | None) -> None:
        """status.loadBalancer (None: cleared), and the pool annotation MetalLB writes."""
        meta = service["metadata"]
        path = self.client.resource_path("", "v1", "services", meta["namespace"], meta["name"])
        body = {"status": {"loadBalancer": status if status else {"ingress": None}}}
        updated = await self.client.patch(path + "/status", body)
        annotations = updated["metadata"].get("annotations") or {}
        if annotations.get(ALLOCATED_FROM_POOL) != pool and (pool or
                                                             ALLOCATED_FROM_POOL in annotations):
            updated = await self.client.patch(
                path, {"metadata": {"annotations": {ALLOCATED_FROM_POOL: pool}}})
        self.services.write_through(updated)
        log.info("%s/%s: load balancer %s", meta["namespace"], meta["name"],
                 status.get("ingress") if status else "cleared")
