"""Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection (LeaseLock).

Candidates try every retryPeriod to acquire the Lease: it is free when nobody holds it, or when
its record has not changed for leaseDuration as *this candidate observed it* (its own clock, not
the renewTime written by another machine). The holder renews every retryPeriod; when it has not
renewed for renewDeadline it stops leading, before anyone else may take over (renewDeadline <
leaseDuration). Writes are compare-and-swap on resourceVersion, so two candidates never both
win one round. On a clean stop the holder releases the Lease (ReleaseOnCancel) so the next one
takes over at once.

The Lease is reached through a `LeaseAccess` (get/create/update of one Lease, StatusError on
failure): over the API with a Client (the controller-manager), or directly on the API server's
storage (the controllers inside the API server).
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Awaitable, Callable

from nanokube.api.errors import StatusError

log = logging.getLogger("nanokube.leaderelection")


def micro_time() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class ElectionConfig:
    namespace: str = "kube-system"
    name: str = "kube-controller-manager"
    lease_duration: float = 15.0    # kube-controller-manager's --leader-elect-lease-duration
    renew_deadline: float = 10.0    # --leader-elect-renew-deadline
    retry_period: float = 2.0       # --leader-elect-retry-period

    def validate(self) -> None:
        if not self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError("leader election needs retryPeriod < renewDeadline < leaseDuration")


class LeaseAccess:
    async def get(self) -> dict: ...
    async def create(self, lease: dict) -> dict: ...
    async def update(self, lease: dict) -> dict: ...


class ClientLeases(LeaseAccess):
    def __init__(self, client, namespace: str, name: str):
        from nanokube.client import Client
        self.client = client
        self.collection = Client.resource_path("coordination.k8s.io", "v1", "leases", namespace)
        self.path = f"{self.collection}/{name}"

    async def get(self) -> dict:
        return await self.client.get(self.path)

    async def create(self, lease: dict) -> dict:
        return await self.client.create(self.collection, lease)

    async def update(self, lease: dict) -> dict:
        return await self.client.update(self.path, lease)


class StorageLeases(LeaseAccess):
    def __init__(self, storage, namespace: str, name: str):
        self.storage, self.namespace, self.name = storage, namespace, name

    async def get(self) -> dict:
        return await self.storage.get(self.namespace, self.name)

    async def create(self, lease: dict) -> dict:
        return await self.storage.create(self.namespace, lease)

    async def update(self, lease: dict) -> dict:
        return await self.storage.update(self.namespace, self.name, lease)


class LeaderElector:
    def __init__(self, leases: LeaseAccess, config: ElectionConfig, identity: str):
        config.validate()
        self.leases = leases
        self.config = config
        self.identity = identity
        self._observed: tuple | None = None     # (holder, renewTime, transitions) last seen
        self._observed_at = 0.0                 # when it last changed, on our clock
        self._lease: dict | None = None

    # ---- one round (tryAcquireOrRenew) ---------------------------------------------------------
    def _spec(self, acquire: str, transitions: int) -> dict:
        return {"holderIdentity": self.identity,
                "leaseDurationSeconds": max(1, round(self.config.lease_duration)),
                "acquireTime": acquire, "renewTime": micro_time(),
                "leaseTransitions": transitions}

    async def try_acquire_or_renew(self) -> bool:
        now = time.monotonic()
        try:
            lease = await self.leases.get()
        except StatusError as e:
            if e.code != 404:
                raise
            lease = await self.leases.create({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.config.name, "namespace": self.config.namespace},
                "spec": self._spec(micro_time(), 0)})
            self._remember(lease, now)
            return True
        spec = lease.get("spec") or {}
        self._remember(lease, now)
        holder = spec.get("holderIdentity") or ""
        if holder and holder != self.identity and \
                now < self._observed_at + self.config.lease_duration:
            return False   # somebody else holds it and is renewing
        transitions = int(spec.get("leaseTransitions") or 0)
        if holder == self.identity:
            lease["spec"] = {**spec, **self._spec(spec.get("acquireTime") or micro_time(),
                                                  transitions)}
        else:
            lease["spec"] = {**spec, **self._spec(micro_time(), transitions + 1)}
        lease = await self.leases.update(lease)   # 409 if another candidate was faster
        self._remember(lease, now)
        return True

    def _remember(self, lease: dict, now: float) -> None:
        spec = lease.get("spec") or {}
        record = (spec.get("holderIdentity"), spec.get("renewTime"), spec.get("leaseTransitions"))
        if record != self._observed:
            self._observed, self._observed_at = record, now
        self._lease = lease

    async def _try(self) -> bool:
        try:
            return await self.try_acquire_or_renew()
        except StatusError as e:
            if e.code != 409:
                log.warning("lease %s/%s: %s", self.config.namespace, self.config.name, e)
            return False
        except (OSError, asyncio.TimeoutError) as e:
            log.warning("lease %s/%s: %s", self.config.namespace, self.config.name, e)
            return False
        except Exception as e:   # the API could not be reached (APIConnectionError)...
            log.warning("lease %s/%s: %s", self.config.namespace, self.config.name, e)
            return False

    # ---- the loop ----------------------------------------------------------------------------
    async def run(self, lead: Callable[[], Awaitable[None]], stop: asyncio.Event) -> None:
        """Until `stop`: acquire, run `lead()` while the Lease is renewed, cancel it when it is
        lost (and stand again), release the Lease when stopping."""
        while not stop.is_set():
            if not await self._acquire(stop):
                break
            log.info("%s became leader of %s/%s", self.identity, self.config.namespace,
                     self.config.name)
            leading = asyncio.create_task(lead())
            try:
                await self._renew(stop, leading)
            finally:
                leading.cancel()
                await asyncio.gather(leading, return_exceptions=True)
            if stop.is_set():
                await self._release()
            else:
                log.warning("%s lost the lease %s/%s", self.identity, self.config.namespace,
                            self.config.name)

    async def _acquire(self, stop: asyncio.Event) -> bool:
        while not stop.is_set():
            if await self._try():
                return True
            await _wait(stop, self.config.retry_period)
        return False

    async def _renew(self, stop: asyncio.Event, leading: asyncio.Task) -> None:
        last = time.monotonic()
        while not stop.is_set() and not leading.done():
            await _wait(stop, self.config.retry_period, leading)
            if stop.is_set() or leading.done():
                return
            # a renewal may not outlast the deadline: a stalled API must not keep us leading
            left = last + self.config.renew_deadline - time.monotonic()
            try:
                ok = left > 0 and await asyncio.wait_for(self._try(), left)
            except asyncio.TimeoutError:
                ok = False
            if ok and self._held():
                last = time.monotonic()
            elif time.monotonic() - last >= self.config.renew_deadline:
                return

    def _held(self) -> bool:
        return ((self._lease or {}).get("spec") or {}).get("holderIdentity") == self.identity

    async def _release(self) -> None:
        if not self._held():
            return
        lease = self._lease
        lease["spec"] = {**lease["spec"], "holderIdentity": "", "renewTime": micro_time(),
                         "leaseDurationSeconds": 1}
        try:
            await asyncio.wait_for(self.leases.update(lease), 2)
        except Exception as e:   # best effort: the others take over after leaseDuration
            log.info("releasing the lease: %s", e)


async def _wait(stop: asyncio.Event, seconds: float, task: asyncio.Task | None = None) -> None:
    waits = [asyncio.ensure_future(stop.wait())] + ([task] if task else [])
    done, pending = await asyncio.wait(waits, timeout=seconds,
                                       return_when=asyncio.FIRST_COMPLETED)
    waits[0].cancel()
