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
                    await self._sync(ns)
                async for typ, ns, _ in self.storage.watch(None, rev):
                    if typ != "DELETED":
                        await self._sync(ns)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("namespace controller: resyncing")
                await asyncio.sleep(1)

    async def _sync(self, ns: dict) -> None:
        name = ns["metadata"]["name"]
        if ns["metadata"].get("deletionTimestamp"):
            await self._finalize(name)
        else:
            await self._ensure_default_service_account(name)

    async def _ensure_default_service_account(self, namespace: str) -> None:
        """Every namespace has a `default` ServiceAccount (the serviceaccount controller)."""
        accounts = self.server.storages[("", "serviceaccounts")]
        try:
            await accounts.get(namespace, "default")
        except E.StatusError:
            try:
                await accounts.create(namespace, {"apiVersion": "v1", "kind": "ServiceAccount",
                                                  "metadata": {"name": "default"}})
            except E.StatusError as e:
                if e.code not in (403, 404, 409):
                    raise

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
