"""Keeps the DNS records in step with Services and EndpointSlices.

Two informers (list+watch) feed the index: every event on a Service, or on an EndpointSlice
labelled with its Service's name, recomputes that one Service's records and rebuilds only the
answers whose RRsets changed. Handlers run synchronously on the watch event, so an answer changes
as soon as the event arrives (no resync period, no batching).
"""
from __future__ import annotations

import asyncio
import logging
import time

from nanokube.addons.dns.answers import Answers
from nanokube.addons.dns.records import (REVERSE_ZONES, SERVICE_NAME_LABEL, RecordIndex,
                                         absolute, service_records, zone_records)
from nanokube.client import Client
from nanokube.controllers.informer import Informer, object_key

log = logging.getLogger("nanokube.dns")


class ClusterDNS:
    """The records and prepared answers of one cluster zone (plus the reverse zones)."""

    def __init__(self, cluster_domain: str = "cluster.local", ttl: int = 5):
        self.zone = absolute(cluster_domain)
        self.index = RecordIndex([self.zone, *REVERSE_ZONES])
        self.answers = Answers(self.index, ttl)
        self.services: dict[str, dict] = {}                 # "ns/name" -> Service
        self.slices: dict[str, dict] = {}                   # "ns/name" -> EndpointSlice
        self._slices_of: dict[str, set[str]] = {}           # "ns/service" -> slice keys
        serial = int(time.time())
        for zone in self.index.zones:
            self.index.set_source(f"zone/{zone}", zone_records(zone, ttl, serial))
        self.answers.rebuild()

    # ---- events --------------------------------------------------------------------------------
    def on_service(self, old: dict | None, new: dict | None) -> None:
        obj = new if new is not None else old
        key = object_key(obj)
        if new is None:
            self.services.pop(key, None)
        else:
            self.services[key] = new
        self.sync_service(key)

    def on_endpointslice(self, old: dict | None, new: dict | None) -> None:
        touched = set()
        for obj in (old, new):
            if obj is not None and (svc := _owning_service(obj)):
                touched.add(svc)
        key = object_key(new if new is not None else old)
        if old is not None and (svc := _owning_service(old)):
            self._slices_of.get(svc, set()).discard(key)
        if new is None:
            self.slices.pop(key, None)
        else:
            self.slices[key] = new
            if svc := _owning_service(new):
                self._slices_of.setdefault(svc, set()).add(key)
        for svc in touched:
            self.sync_service(svc)

    def sync_service(self, key: str) -> None:
        """Recompute one Service's records; rebuild the answers that changed."""
        service = self.services.get(key)
        records = []
        if service is not None:
            slices = [self.slices[k] for k in sorted(self._slices_of.get(key, ()))
                      if k in self.slices]
            records = service_records(service, slices, self.zone)
        changed = self.index.set_source(f"svc/{key}", records)
        if changed:
            self.answers.update(changed)


def _owning_service(eps: dict) -> str | None:
    meta = eps.get("metadata") or {}
    name = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    return f"{meta.get('namespace', '')}/{name}" if name else None


async def watch_cluster(client: Client, dns: ClusterDNS, ready: asyncio.Event) -> None:
    """Run the Service and EndpointSlice informers into `dns`; set `ready` once both listed."""
    services = Informer(client, "", "v1", "services")
    slices = Informer(client, "discovery.k8s.io", "v1", "endpointslices")
    services.add_handler(dns.on_service)
    slices.add_handler(dns.on_endpointslice)
    tasks = [asyncio.create_task(i.run()) for i in (services, slices)]
    try:
        await asyncio.gather(services.synced.wait(), slices.synced.wait())
        ready.set()
        log.info("synced: %d services, %d endpointslices", len(dns.services), len(dns.slices))
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
