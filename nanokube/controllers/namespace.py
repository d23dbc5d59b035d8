"""Namespace lifecycle: a namespace being deleted is emptied, then its `kubernetes` finalizer
is removed so that it goes (kube-controller-manager's namespace controller)."""
from __future__ import annotations

import asyncio
import logging

from nanokube.api import errors as E

log = logging.getLogger("nanokube.namespace")


class NamespaceController:
    def __init__(self, server):
        self.server = server
        self.storage = server.storages[("", "namespaces")]

    async def run(self) -> None:
        while True:
            try:
                objs, rev, _, _ = await self.storage.list(None)
                for ns in objs:
                    if ns["metadata"].get("deletionTimestamp"):
                        await self._finalize(ns["metadata"]["name"])
                async for typ, ns, _ in self.storage.watch(None, rev):
                    if typ != "DELETED" and ns["metadata"].get("deletionTimestamp"):
                        await self._finalize(ns["metadata"]["name"])
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("namespace controller: resyncing")
                await asyncio.sleep(1)

    async def _finalize(self, name: str) -> None:
        """Delete everything in the namespace, then drop the `kubernetes` finalizer."""
        while True:
            remaining = 0
            for s in self.server.registry.strategies:
                if not s.namespaced:
                    continue
                storage = self.server.storages[(s.group, s.plural)]
                objs, _, _, _ = await storage.list(name)
                for obj in objs:
                    remaining += 1
                    if obj["metadata"].get("deletionTimestamp"):
                        continue
                    try:
                        await storage.delete(name, obj["metadata"]["name"],
                                             {"propagationPolicy": "Background"})
                    except E.StatusError as e:
                        if e.code != 404:
                            log.warning("deleting %s in %s: %s", obj["metadata"]["name"], name, e)
            if not remaining:
                break
            await asyncio.sleep(0.2)

        def drop(ns: dict) -> dict:
            fins = [f for f in (ns.get("spec") or {}).get("finalizers") or []
                    if f != "kubernetes"]
            ns.setdefault("spec", {})["finalizers"] = fins
            return ns
        try:
            await self.storage.guaranteed_update(None, name, drop, subresource="finalize")
        except E.StatusError as e:
            if e.code != 404:
                raise
