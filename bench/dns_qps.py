"""Cluster DNS benchmark (issue 4): queries/s of `nanokube dns` measured with dnsperf.

Run: .venv/bin/python bench/dns_qps.py [--names 1000] [--clients 4] [--seconds 10]
Needs dnsperf (Debian package `dnsperf`). Starts a `nanokube server`, creates names/2 ClusterIP
Services with a named port (an A and an SRV name each) through the API, starts the DNS server as
in a pod (`python -m nanokube.addons.dns`, one process) and runs dnsperf against it on loopback,
the server pinned to one core and dnsperf to the other when there are two. In the same run, side
by side: the same names with EDNS (as dig and glibc with `options edns0` send them), NXDOMAIN
names (what search-path expansion produces), and the ceiling of a Python UDP server on the same
event loop that answers with the query itself (no lookup at all). Printed next to CoreDNS's
published 33,669 queries/s on 2 vCPUs (coredns/deployment Scaling_CoreDNS.md). Traffic goes to
127.0.0.1 only.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

import dns.message  # noqa: E402
import dns.query  # noqa: E402

from harness import ApiServerProcess, free_port  # noqa: E402
from nanokube.client import Client  # noqa: E402

COREDNS_QPS = 33_669
SVC_PATH = Client.resource_path("", "v1", "services", "default")

# A UDP server with no DNS work at all: it sets QR and sends the query back. What the event
# loop and the socket cost per query, i.e. the best any Python answer path could do.
ECHO_SERVER = """
import asyncio, socket, sys
try:
    import uvloop
    run = uvloop.run
except ImportError:
    run = asyncio.run
class Echo(asyncio.DatagramProtocol):
    def connection_made(self, t): self.t = t
    def datagram_received(self, d, a): self.t.sendto(d[:2] + bytes([d[2] | 0x80]) + d[3:], a)
async def main():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind(("127.0.0.1", int(sys.argv[1])))
    await asyncio.get_running_loop().create_datagram_endpoint(Echo, sock=s)
    await asyncio.Event().wait()
run(main())
"""


def service(i: int) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": f"bench-{i:05d}"},
            "spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}


async def create_services(kubeconfig: str, n: int, concurrency: int = 16) -> float:
    client = Client.from_kubeconfig(kubeconfig)
    todo = iter(range(n))

    async def worker() -> None:
        for i in todo:
            await client.create(SVC_PATH, service(i))
    t0 = time.perf_counter()
    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        await client.close()
    return time.perf_counter() - t0


def pinned(cmd: list[str], cpu: int) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", str(cpu), *cmd]
    return cmd


def wait_for_answer(port: int, name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            r = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=port,
                              timeout=0.5)
            if r.answer:
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{name} never resolved")


def dnsperf(port: int, datafile: Path, clients: int, seconds: int, edns: bool) -> dict:
    cmd = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(datafile),
           "-c", str(clients), "-l", str(seconds), "-q", "200", "-t", "2"]
    if edns:
        cmd.append("-e")
    out = subprocess.run(pinned(cmd, 1), capture_output=True, text=True,
                         timeout=seconds + 60).stdout

    def number(label: str) -> float:
        m = re.search(rf"{label}:\s+([\d.]+)", out)
        return float(m.group(1)) if m else float("nan")
    return {"qps": number("Queries per second"), "sent": number("Queries sent"),
            "lost": number("Queries lost"), "latency": number("Average Latency \\(s\\)")}


def line(label: str, result: dict) -> str:
    lost = result["lost"] / result["sent"] * 100 if result["sent"] else float("nan")
    return (f"  {label:<38} {result['qps']:>10,.0f} q/s   lost {lost:5.2f}%   "
            f"avg latency {result['latency'] * 1000:6.2f} ms   "
            f"x{result['qps'] / COREDNS_QPS:.2f} CoreDNS")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--names", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seconds", type=int, default=10)
    args = ap.parse_args()
    if not shutil.which("dnsperf"):
        print("dnsperf is not installed (apt-get install dnsperf)", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="nanokube-dns-bench-"))
    api = ApiServerProcess(tmp / "data")
    procs: list[subprocess.Popen] = []
    try:
        api.start()
        n_services = max(1, args.names // 2)
        took = asyncio.run(create_services(api.kubeconfig, n_services))
        print(f"created {n_services} Services in {took:.1f} s")
        port = free_port()
        dns_cmd = [sys.executable, "-m", "nanokube.addons.dns", "--kubeconfig", api.kubeconfig,
                   "--listen", f"127.0.0.1:{port}"]
        procs.append(subprocess.Popen(pinned(dns_cmd, 0), stdout=subprocess.DEVNULL,
                                      stderr=open(tmp / "dns.log", "wb"), cwd=ROOT))
        wait_for_answer(port, f"bench-{n_services - 1:05d}.default.svc.cluster.local.")

        names = tmp / "names.txt"
        with open(names, "w") as f:
            for i in range(n_services):
                base = f"bench-{i:05d}.default.svc.cluster.local"
                f.write(f"{base} A\n_http._tcp.{base} SRV\n")
        missing = tmp / "missing.txt"
        with open(missing, "w") as f:
            for i in range(args.names):    # what `options ndots:5` search expansion asks
                f.write(f"bench-{i:05d}.default.svc.cluster.local.default.svc.cluster.local A\n")

        echo_port = free_port()
        procs.append(subprocess.Popen(pinned([sys.executable, "-c", ECHO_SERVER,
                                              str(echo_port)], 0), cwd=ROOT))
        time.sleep(0.5)

        print(f"dnsperf: {args.names} names, {args.clients} clients, {args.seconds} s each, "
              f"loopback, server on cpu 0, dnsperf on cpu 1 ({os.cpu_count()} cpus)")
        results = {
            "nanokube dns, A+SRV": dnsperf(port, names, args.clients, args.seconds, False),
            "nanokube dns, A+SRV with EDNS": dnsperf(port, names, args.clients, args.seconds,
                                                     True),
            "nanokube dns, NXDOMAIN (search path)": dnsperf(port, missing, args.clients,
                                                            args.seconds, False),
            "python UDP echo (ceiling, no DNS)": dnsperf(echo_port, names, args.clients,
                                                         args.seconds, False),
        }
        for label, result in results.items():
            print(line(label, result))
        ours = results["nanokube dns, A+SRV"]["qps"]
        ceiling = results["python UDP echo (ceiling, no DNS)"]["qps"]
        print(f"CoreDNS published: {COREDNS_QPS:,} q/s on 2 vCPUs (Scaling_CoreDNS.md)")
        print(f"nanokube dns: {ours:,.0f} q/s = {ours / COREDNS_QPS:.2f}x CoreDNS, "
              f"{ours / ceiling:.0%} of the Python UDP ceiling measured in this run")
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        api.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
