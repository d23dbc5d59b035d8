"""Programming speed of the nftables proxier at 10,000 Services x 10 endpoints (root; not a test).

    sudo .venv/bin/python bench/proxy_programming.py [--services 10000] [--endpoints 10] [--changes 20]

Runs in a throwaway network namespace. Measures, side by side in one run:
- cold sync: NftProxier.start() (rendering + one `nft -f -`), against feeding the very same
  script to a plain `nft -f` (the floor);
- one Service changed among 10,000 (an endpoint replaced), and one Service added: the partial
  sync, against the same transaction through a plain `nft -f`;
and prints kube-proxy's published figures next to them (reference/kube-proxy.md §2.3).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nanokube.node.proxy import NftProxier  # noqa: E402
from nanokube.node.proxy.proxier import default_nft  # noqa: E402

KUBE_PROXY = {
    "cold": "3 min 14 s - 5 min 33 s (10k Services x 2 endpoints, PR #130119); 13-17 min at 44k Services",
    "change": "141 ms to add one Service to 10,000 (PR #126013)",
}


def service(i: int) -> dict:
    return {"metadata": {"namespace": "bench", "name": f"svc-{i}"},
            "spec": {"type": "ClusterIP", "clusterIP": f"10.{96 + i // 65536}.{i // 256 % 256}.{i % 256}",
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}


def endpoint_slice(i: int, n: int, generation: int = 0) -> dict:
    """Endpoints of Service i; a new `generation` replaces the first pod by another one."""
    ips = [f"10.{200 + i // 65536}.{i // 256 % 256}.{(i % 256 + j * 17) % 250 + 1}" for j in range(n)]
    if generation:
        ips[0] = f"10.{210 + i // 65536}.{i // 256 % 256}.{generation % 250 + 1}"
    eps = [{"addresses": [ip], "nodeName": "node-2", "conditions": {"ready": True}} for ip in ips]
    return {"metadata": {"namespace": "bench", "name": f"svc-{i}-abc",
                         "labels": {"kubernetes.io/service-name": f"svc-{i}"}},
            "addressType": "IPv4", "endpoints": eps,
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}


class RecordingNft:
    """The proxier's own runner (libnftables), keeping the text of the last transaction to
    replay it through a plain `nft -f` as the floor."""

    last_text = ""

    def __init__(self):
        self.inner = default_nft()

    async def run(self, tx) -> None:
        self.last_text = tx.text()
        await self.inner.run(tx)

    def close(self) -> None:
        self.inner.close()


def nft_file(text: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(["nft", "-f", "-"], input=text.encode(), check=True)
    return time.perf_counter() - t0


def ms(seconds: float) -> str:
    return f"{seconds * 1000:9.1f} ms"


async def inner(args) -> None:
    nft = RecordingNft()
    p = NftProxier("node-1", ["10.123.0.11"], "10.244.1.0/24", "10.244.0.0/16", "10.96.0.0/12",
                   nft=nft, health_check_servers=False, coalesce=0)
    t0 = time.perf_counter()
    for i in range(args.services):
        p.on_service("ADDED", service(i))
        p.on_endpointslice("ADDED", endpoint_slice(i, args.endpoints))
    feed = time.perf_counter() - t0

    t0 = time.perf_counter()
    await p.start()
    cold = time.perf_counter() - t0
    cold_text = nft.last_text
    counts = p.object_counts()

    # the floor: the same script through a plain nft -f (it replaces the table the same way)
    floor_cold = nft_file(cold_text)

    async def timed_sync() -> tuple[float, str]:
        t0 = time.perf_counter()
        await p.sync()
        return time.perf_counter() - t0, nft.last_text

    # Each change is made and then undone by the proxier (both timed); the two recorded scripts
    # are then replayed with a plain nft -f on the same kernel state (the floor).
    change, change_floor, add, add_floor = [], [], [], []
    for k in range(args.changes):
        i = (k * 7919) % args.services
        p.on_endpointslice("MODIFIED", endpoint_slice(i, args.endpoints, generation=k + 1))  # pod replaced
        t_fwd, fwd = await timed_sync()
        p.on_endpointslice("MODIFIED", endpoint_slice(i, args.endpoints))
        t_back, back = await timed_sync()
        change += [t_fwd, t_back]
        change_floor += [nft_file(fwd), nft_file(back)]

        j = args.services + k
        p.on_service("ADDED", service(j))
        p.on_endpointslice("ADDED", endpoint_slice(j, args.endpoints))
        t_fwd, fwd = await timed_sync()
        p.on_service("DELETED", service(j))
        p.on_endpointslice("DELETED", endpoint_slice(j, args.endpoints))
        t_back, back = await timed_sync()
        add.append(t_fwd)
        add_floor.append(nft_file(fwd))
        nft_file(back)
    await p.stop()

    med = statistics.median
    print(f"nanokube proxier, {args.services} Services x {args.endpoints} endpoints "
          f"(kernel {os.uname().release}, {subprocess.run(['nft', '--version'], capture_output=True, text=True).stdout.strip()})")
    print(f"  kernel objects: {counts['chains']} chains, {counts['rules']} rules, {counts['maps']} maps/sets, "
          f"{counts['elements']} elements; cold script {len(cold_text) / 1e6:.1f} MB")
    print(f"  (feeding {args.services} Services + slices into the model: {ms(feed)})")
    print(f"{'':34}{'nanokube':>12}{'plain nft -f':>15}   kube-proxy (published)")
    print(f"{'cold sync':34}{ms(cold):>12}{ms(floor_cold):>15}   {KUBE_PROXY['cold']}")
    print(f"{'one endpoint replaced, median':34}{ms(med(change)):>12}{ms(med(change_floor)):>15}")
    print(f"{'one endpoint replaced, max':34}{ms(max(change)):>12}{ms(max(change_floor)):>15}")
    print(f"{'one Service added, median':34}{ms(med(add)):>12}{ms(med(add_floor)):>15}   {KUBE_PROXY['change']}")
    print(f"{'one Service added, max':34}{ms(max(add)):>12}{ms(max(add_floor)):>15}")
    print(f"targets: cold <= 5 s: {'met' if cold <= 5 else 'MISSED'}; "
          f"one change <= 20 ms: {'met' if max(med(change), med(add)) <= 0.020 else 'MISSED'}")


def main() -> None:
    # a SIGTERM (timeout, kill) unwinds like Ctrl-C: the finally blocks take the cluster down
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", type=int, default=10000)
    ap.add_argument("--endpoints", type=int, default=10)
    ap.add_argument("--changes", type=int, default=20)
    ap.add_argument("--inner", action="store_true")
    args = ap.parse_args()
    if args.inner:
        asyncio.run(inner(args))
        return
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark programs nftables in a throwaway network namespace")
    ns = f"nkbench-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", ns, sys.executable, __file__, "--inner",
                        "--services", str(args.services), "--endpoints", str(args.endpoints),
                        "--changes", str(args.changes)], check=True)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


if __name__ == "__main__":
    main()
