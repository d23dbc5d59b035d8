"""The `kubernetes` Service's endpoints: kube-apiserver's endpoint reconcilers.

One API server (its own store) lists only itself. Several API servers on one store follow
kube-apiserver's lease reconciler (`--endpoint-reconciler-type=lease`): each keeps a record of
its address that it renews every `interval` (10 s of a 15 s lease, as kube-apiserver), and
every server writes the Endpoints and EndpointSlice `default/kubernetes` with the addresses of
the records that have not expired, sorted, so all of them write the same object. A server that
stops cleanly removes its record and its address at once; one that crashed drops out when its
record is older than the lease duration, and the next live server to reconcile deletes the
record.

kube-apiserver keeps these records as etcd keys with a TTL (`/masterleases/<ip>`); here they are
Leases `kube-system/apiserver-<ip>` (labelled `apiserver.kubernetes.io/identity=kube-apiserver`,
the address in an annotation), which every store holds and `kubectl get leases -A` shows.
"""
from __future__ import annotations

import asyncio
import logging
import math
from datetime import datetime, timezone

from nanokube.api import errors as E
from nanokube.apitime import parse_datetime

log = logging.getLogger("nanokube.endpointreconciler")

LEASE_NAMESPACE = "kube-system"
IDENTITY_LABEL = "apiserver.kubernetes.io/identity"
ADDRESS_ANNOTATION = "nanokube.io/endpoint-address"
DEFAULT_LEASE_DURATION = 15.0     # kube-apiserver's DefaultEndpointReconcilerTTL


def lease_name(ip: str) -> str:
    return "apiserver-" + ip.replace(".", "-").replace(":", "-")


def _micro_time(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def expired(lease: dict, now: datetime) -> bool:
    """Whether the record was last renewed longer ago than its duration."""
    spec = lease.get("spec") or {}
    renewed = parse_datetime(spec.get("renewTime"))
    if renewed is None:
        return True
    return (now - renewed).total_seconds() > float(spec.get("leaseDurationSeconds") or 0)


def live_addresses(leases: list[dict], now: datetime) -> list[str]:
    """The addresses of the API servers whose records have not expired, sorted."""
    ips = {(lease["metadata"].get("annotations") or {}).get(ADDRESS_ANNOTATION)
           for lease in leases if not expired(lease, now)}
    return sorted((ip for ip in ips if ip), key=_ip_key)


def _ip_key(ip: str):
    import ipaddress
    return ipaddress.ip_address(ip).packed


# ---- the Endpoints and EndpointSlice default/kubernetes ---------------------------------------

def kubernetes_endpoints(ips: list[str], port: int) -> tuple[dict, dict]:
    """The Endpoints and the EndpointSlice of the `kubernetes` Service for these addresses."""
    ports = [{"name": "https", "port": port, "protocol": "TCP"}]
    ep = {"apiVersion": "v1", "kind": "Endpoints",
          "metadata": {"name": "kubernetes", "namespace": "default",
                       "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
          "subsets": [{"addresses": [{"ip": ip} for ip in ips], "ports": ports}] if ips else []}
    slice_ = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
              "metadata": {"name": "kubernetes", "namespace": "default",
                           "labels": {"kubernetes.io/service-name": "kubernetes",
                                      "endpointslice.kubernetes.io/managed-by":
                                      "endpointslice-controller.k8s.io"}},
              "addressType": "IPv4",
              "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips],
              "ports": ports}
    return ep, slice_


async def write_kubernetes_endpoints(storages: dict, ips: list[str], port: int) -> None:
    """Create or update both objects, writing only when they differ."""
    ep, slice_ = kubernetes_endpoints(ips, port)
    for (group, plural), obj in ((("", "endpoints"), ep),
                                 (("discovery.k8s.io", "endpointslices"), slice_)):
        storage = storages[(group, plural)]
        try:
            cur = await storage.get("default", "kubernetes")
        except E.StatusError:
            await storage.create("default", obj)
            continue
        body = {k: v for k, v in obj.items() if k != "metadata"}
        if any(cur.get(k) != v for k, v in body.items()):
            cur.update(body)
            await storage.update("default", "kubernetes", cur)


# ---- the lease reconciler ------------------------------------------------------------------------

class LeaseEndpointReconciler:
    """One API server's part: renew its record, write the live servers' addresses."""

    def __init__(self, storages: dict, ip: str, port: int, identity: str,
                 lease_duration: float = DEFAULT_LEASE_DURATION):
        self.storages = storages
        self.leases = storages[("coordination.k8s.io", "leases")]
        self.ip, self.port, self.identity = ip, port, identity
        self.lease_duration = lease_duration
        self.interval = lease_duration * 2 / 3

    def _record(self, now: datetime) -> dict:
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": lease_name(self.ip), "namespace": LEASE_NAMESPACE,
                             "labels": {IDENTITY_LABEL: "kube-apiserver"},
                             "annotations": {ADDRESS_ANNOTATION: self.ip}},
                "spec": {"holderIdentity": self.identity,
                         "leaseDurationSeconds": max(1, math.ceil(self.lease_duration)),
                         "renewTime": _micro_time(now)}}

    async def _renew(self, now: datetime) -> None:
        record = self._record(now)
        name = record["metadata"]["name"]
        try:
            cur = await self.leases.get(LEASE_NAMESPACE, name)
        except E.StatusError as e:
            if e.code != 404:
                raise
            await self.leases.create(LEASE_NAMESPACE, record)
            return
        cur["metadata"].setdefault("labels", {}).update(record["metadata"]["labels"])
        cur["metadata"].setdefault("annotations", {}).update(record["metadata"]["annotations"])
        cur["spec"] = {**(cur.get("spec") or {}), **record["spec"]}
        await self.leases.update(LEASE_NAMESPACE, name, cur)

    async def _records(self) -> list[dict]:
        items, _, _, _ = await self.leases.list(LEASE_NAMESPACE)
        return [lease for lease in items
                if (lease["metadata"].get("labels") or {}).get(IDENTITY_LABEL) == "kube-apiserver"
                and (lease["metadata"].get("annotations") or {}).get(ADDRESS_ANNOTATION)]

    async def reconcile(self) -> list[str]:
        """Renew our record, delete expired ones, write the endpoints; returns the addresses."""
        now = datetime.now(timezone.utc)
        await self._renew(now)
        records = await self._records()
        for lease in records:
            if expired(lease, now):
                await self._delete(lease)
        ips = live_addresses(records, now)
        for attempt in range(3):   # another server may write the same objects at this moment
            try:
                await write_kubernetes_endpoints(self.storages, ips, self.port)
                break
            except E.StatusError as e:
                if e.code != 409 or attempt == 2:
                    raise
        return ips

    async def _delete(self, lease: dict) -> None:
        meta = lease["metadata"]
        try:   # only the record as we saw it: its server may renew it meanwhile
            await self.leases.delete(LEASE_NAMESPACE, meta["name"], {"preconditions": {
                "resourceVersion": meta["resourceVersion"]}})
        except E.StatusError:
            pass

    async def remove(self) -> None:
        """A clean stop: delete our record, write the endpoints without us."""
        try:
            await self.leases.delete(LEASE_NAMESPACE, lease_name(self.ip))
        except E.StatusError:
            pass
        now = datetime.now(timezone.utc)
        ips = [ip for ip in live_addresses(await self._records(), now) if ip != self.ip]
        await write_kubernetes_endpoints(self.storages, ips, self.port)

    async def run(self) -> None:
        """Reconcile every `interval` until cancelled; a failed round is retried next time."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception as e:   # a conflict with another server, a store hiccup
                log.warning("reconciling the kubernetes endpoints: %s", e)
