"""`nanokube migrate`: copy a cluster's SQLite store into etcd.

Every live key is copied with its value as stored (the object JSON: names, UIDs, spec, status,
allocated ClusterIPs and NodePorts all travel inside it); history is not. etcd assigns new
revisions, so every resourceVersion changes: clients re-list (informers do so by themselves on
their next watch error). Then the allocation claims the API servers keep in etcd are created from
the copied Services, so the first API server on etcd starts with every IP and port held.

Stop the API server first (the SQLite file must not change during the copy); the etcd keyspace
under /registry/ must be empty, so that a migration is never mixed into another cluster.
"""
from __future__ import annotations

import asyncio
import os
import sys

from nanokube.store import KeyExistsError
from nanokube.store.etcd import EtcdStore
from nanokube.store.sqlite import SQLiteStore

BATCH = 64


async def migrate(sqlite_path: str, etcd_url: str, out=sys.stdout) -> int:
    """Copy every key; returns how many. ValueError if etcd already holds a cluster."""
    from nanokube.allocators.claims import SharedAllocations
    from nanokube.allocators.service import ServiceAllocators
    source = SQLiteStore(sqlite_path, compact_interval=0)
    target = EtcdStore(etcd_url, compact_interval=0)
    await source.open()
    try:
        await target.open()
        try:
            if await target.count("/registry/"):
                raise ValueError(f"etcd at {etcd_url} already holds objects under /registry/")
            kvs, rev, _ = await source.list("")
            for i in range(0, len(kvs), BATCH):
                await asyncio.gather(*(target.create(kv.key, kv.value) for kv in kvs[i:i + BATCH]))
            claims = SharedAllocations(target, ServiceAllocators("10.96.0.0/12", "30000-32767"))
            created, _ = await claims.repair(delete_leaked=False)
            print(f"copied {len(kvs)} keys (SQLite revision {rev}) to etcd (revision "
                  f"{target.current_revision()}); {created} allocation claims created", file=out)
            return len(kvs)
        finally:
            await target.close()
    finally:
        await source.close()


def main(args) -> int:
    path = os.path.join(args.data_dir, "state.db")
    if not os.path.exists(path):
        print(f"error: no SQLite store at {path}", file=sys.stderr)
        return 1
    if not (args.store or "").startswith("etcd://"):
        print("error: --store must be etcd://HOST:PORT[,HOST:PORT...]", file=sys.stderr)
        return 1
    try:
        asyncio.run(migrate(path, args.store))
    except (ValueError, KeyExistsError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
