"""API server benchmark (issue 2): creates/s, list and `kubectl get` of N Services, watch latency.

Run: .venv/bin/python bench/api_server.py [--services 10000] [--concurrency 32]
Everything runs side by side in one run on this machine: the API figures are printed next to the
floor of the same work done directly on the SQLite store in-process, and next to the targets.
Traffic goes to 127.0.0.1 only.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from harness import ApiServerProcess  # noqa: E402
from nanokube.client import Client  # noqa: E402
from nanokube.store.sqlite import SQLiteStore  # noqa: E402

SVC_PATH = "/api/v1/namespaces/default/services"


def service(i: int) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": f"bench-{i:05d}", "labels": {"bench": "yes"}},
            "spec": {"selector": {"app": f"a{i}"},
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}


async def create_all(client: Client, n: int, concurrency: int) -> float:
    queue = iter(range(n))

    async def worker() -> None:
        for i in queue:
            await client.create(SVC_PATH, service(i))
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - t0


async def store_floor(n: int, tmp: Path) -> tuple[float, float]:
    """The same number of writes and one list straight on the store: the floor."""
    store = SQLiteStore(str(tmp / "floor.db"))
    await store.open()
    payload = [json.dumps(service(i)).encode() for i in range(n)]
    t0 = time.perf_counter()
    for i, body in enumerate(payload):
        await store.create(f"/registry/core/services/default/bench-{i:05d}", body)
    writes = time.perf_counter() - t0
    t0 = time.perf_counter()
    await store.list("/registry/core/services/")
    listed = time.perf_counter() - t0
    await store.close()
    return writes, listed


async def watch_latency(client: Client, samples: int) -> tuple[list[float], list[float]]:
    """Time from sending a write, and from its acknowledgement, to its watch event."""
    lst = await client.list(SVC_PATH, limit=1)
    rv = lst["metadata"]["resourceVersion"]
    arrived: dict[str, float] = {}
    got = asyncio.Event()

    async def consume() -> None:
        async for ev in client.watch(SVC_PATH, resource_version=rv):
            arrived[ev["object"]["metadata"]["labels"].get("mark", "")] = time.perf_counter()
            got.set()
    task = asyncio.create_task(consume())
    await asyncio.sleep(0.3)
    from_send, from_ack = [], []
    for i in range(samples):
        mark = f"m{i}"
        got.clear()
        t_send = time.perf_counter()
        await client.patch(f"{SVC_PATH}/bench-{i % 100:05d}",
                           {"metadata": {"labels": {"mark": mark}}})
        t_ack = time.perf_counter()
        while mark not in arrived:
            await asyncio.wait_for(got.wait(), 5)
            got.clear()
        from_send.append((arrived[mark] - t_send) * 1000)
        from_ack.append(max(0.0, arrived[mark] - t_ack) * 1000)
    task.cancel()
    return from_send, from_ack


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def kubectl_get(kubeconfig: str, home: str) -> float:
    env = dict(os.environ, KUBECONFIG=kubeconfig, HOME=home)
    subprocess.run(["kubectl", "get", "ns"], env=env, capture_output=True, check=True)
    t0 = time.perf_counter()
    out = subprocess.run(["kubectl", "get", "svc"], env=env, capture_output=True, check=True)
    took = time.perf_counter() - t0
    assert out.stdout.count(b"\n") > 1
    return took


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", type=int, default=10000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--watch-samples", type=int, default=500)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="nanokube-bench-"))
    server = ApiServerProcess(tmp / "data").start()
    try:
        async with Client.from_kubeconfig(server.kubeconfig) as client:
            n = args.services
            create_s = await create_all(client, n, args.concurrency)
            lists = []
            for _ in range(3):
                t0 = time.perf_counter()
                body = await client.list(SVC_PATH)
                lists.append(time.perf_counter() - t0)
                assert len(body["items"]) >= n
            get_s = kubectl_get(server.kubeconfig, str(tmp))
            w_send, w_ack = await watch_latency(client, args.watch_samples)
        floor_writes, floor_list = await store_floor(n, tmp)
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    creates = n / create_s
    floor_rate = n / floor_writes
    list_s = statistics.median(lists)
    rows = [
        ("creates/s through the API", f"{creates:,.0f}", "≥ 1,000",
         f"{creates / 1000:.2f}× target; {creates / floor_rate:.2f}× the store alone "
         f"({floor_rate:,.0f}/s)"),
        (f"list of {n:,} Services (JSON)", f"{list_s:.3f} s", "< 1 s",
         f"{1 / list_s:.2f}× target; store alone {floor_list:.3f} s"),
        (f"kubectl get svc on {n:,}", f"{get_s:.3f} s", "", ""),
        ("watch latency p50 / p99 (from send)", f"{pct(w_send, 50):.2f} / {pct(w_send, 99):.2f} ms",
         "p99 < 10 ms", f"{10 / pct(w_send, 99):.2f}× target"),
        ("watch latency p50 / p99 (from ack)", f"{pct(w_ack, 50):.2f} / {pct(w_ack, 99):.2f} ms",
         "", ""),
    ]
    print(f"\nnanokube API server, {n:,} Services, concurrency {args.concurrency}, "
          f"{os.cpu_count()} cores\n")
    width = max(len(r[0]) for r in rows)
    for name, value, target, ratio in rows:
        print(f"{name:<{width}}  {value:>16}  {target:>12}  {ratio}")


if __name__ == "__main__":
    asyncio.run(main())
