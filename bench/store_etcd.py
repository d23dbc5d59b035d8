"""etcd store benchmark (issue 8): creates/s and watch latency through the API server on etcd
against SQLite, in the same run, measured as bench/api_server.py does (its create_all and
watch_latency), plus each store alone in-process, and three API servers on one etcd.

Run: .venv/bin/python bench/store_etcd.py [--services 3000] [--concurrency 32]
Everything runs on this machine on 127.0.0.1: a throwaway one-member etcd (Debian's etcd-server)
with its data dir in a temp folder, and the API servers; all are ended by pid at the end.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(ROOT / "bench"))

from api_server import create_all, pct, service, watch_latency  # noqa: E402
from harness import ApiServerProcess  # noqa: E402
from nanokube.client import Client  # noqa: E402
from nanokube.store.etcd import EtcdStore  # noqa: E402
from nanokube.store.etcd_cluster import EtcdCluster  # noqa: E402
from nanokube.store.sqlite import SQLiteStore  # noqa: E402


async def through_api(server: ApiServerProcess, n: int, concurrency: int, samples: int):
    async with Client.from_kubeconfig(server.kubeconfig) as client:
        took = await create_all(client, n, concurrency)
        w_send, _ = await watch_latency(client, samples)
    return n / took, w_send


async def store_alone(store, n: int, concurrency: int) -> float:
    """The same creates straight on the store, `concurrency` at a time (SQLite: sequential
    in effect, one event loop)."""
    await store.open()
    payload = [json.dumps(service(i)).encode() for i in range(n)]
    queue = iter(range(n))

    async def worker():
        for i in queue:
            await store.create(f"/bench-alone/services/default/bench-{i:05d}", payload[i])
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    took = time.perf_counter() - t0
    await store.close()
    return n / took


async def three_servers(data: Path, url: str, n: int, concurrency: int) -> float:
    """n creates spread over three API servers on the same etcd."""
    store = ["--store", url]
    servers = [ApiServerProcess(data, extra=store).start()]
    servers += [ApiServerProcess(data, extra=store).start() for _ in range(2)]
    try:
        clients = []
        for s in servers:
            c = Client.from_kubeconfig(s.kubeconfig)
            c.server = c.servers[0] = s.url
            clients.append(c)
        queue = iter(range(n))

        async def worker(c):
            for i in queue:
                await c.create("/api/v1/namespaces/default/services",
                               {**service(i), "metadata": {"name": f"multi-{i:05d}"}})
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(clients[k % 3]) for k in range(concurrency)))
        took = time.perf_counter() - t0
        for c in clients:
            await c.close()
        return n / took
    finally:
        for s in servers:
            s.stop()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--watch-samples", type=int, default=300)
    args = ap.parse_args()
    n, conc = args.services, args.concurrency
    tmp = Path(tempfile.mkdtemp(prefix="nanokube-bench-etcd-"))
    results = {}
    try:
        with EtcdCluster(tmp / "etcd", heartbeat_ms=100, election_ms=1000) as etcd:
            for name, extra in (("SQLite", []), ("etcd", ["--store", etcd.url])):
                server = ApiServerProcess(tmp / f"data-{name}", extra=extra).start()
                try:
                    results[name] = await through_api(server, n, conc, args.watch_samples)
                finally:
                    server.stop()
            alone_etcd = await store_alone(EtcdStore(etcd.endpoints, compact_interval=0),
                                           n, conc)
            multi = await three_servers(tmp / "data-multi", etcd.url, n, conc)
        alone_sqlite = await store_alone(SQLiteStore(str(tmp / "alone.db"), compact_interval=0),
                                         n, conc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nnanokube stores, {n:,} Services, concurrency {conc}, {os.cpu_count()} cores\n")
    rows = [("", "SQLite", "etcd")]
    rows.append(("creates/s through one API server", f"{results['SQLite'][0]:,.0f}",
                 f"{results['etcd'][0]:,.0f}"))
    rows.append(("creates/s, the store alone in-process", f"{alone_sqlite:,.0f}",
                 f"{alone_etcd:,.0f}"))
    rows.append(("creates/s over three API servers", "—", f"{multi:,.0f}"))
    for p in (50, 99):
        rows.append((f"watch latency p{p} (from send)", f"{pct(results['SQLite'][1], p):.2f} ms",
                     f"{pct(results['etcd'][1], p):.2f} ms"))
    width = max(len(r[0]) for r in rows)
    for name, a, b in rows:
        print(f"{name:<{width}}  {a:>10}  {b:>10}")


if __name__ == "__main__":
    asyncio.run(main())
