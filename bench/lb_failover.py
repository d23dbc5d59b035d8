"""LoadBalancer announcement benchmark (issue 5): failover time and create-to-first-answer time.

On one 2-node cluster with examples/apps/my-app.yaml:

1. time from Service create to the first answered request from the outside host, over N
   LoadBalancer Services created one after the other (p50/p99). Each Service asks for its
   address with spec.loadBalancerIP; if no LoadBalancer controller writes status within a second
   for the first (warm-up) Service, the bench writes status itself right after each create, as a
   controller would (that PATCH is inside the measured time). The outside host polls
   http://<ip>/hostname from one long-lived process (0.1 s connect timeout), so no process
   start-up is measured.
2. failover: SIGTERM the agent of the node announcing one address; time until the outside host's
   ARP entry for the address names the other node's MAC (moved by gratuitous ARP, without the
   client asking), and the longest gap between answered requests of a client polling every
   20 ms meanwhile; then the agent is started again and the address comes back. p50 over runs.

    .venv/bin/python bench/lb_failover.py [--services 50] [--runs 5]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from harness import alive                                # noqa: E402
from nanokube.client import Client                      # noqa: E402
from nanokube.node.announcer import elect               # noqa: E402

NODES = ("node-1", "node-2")

# In the outside host: reads one IP per line, polls it until answered, prints the wall time.
POLLER = r"""
import socket, sys, time
for line in sys.stdin:
    ip = line.strip()
    give_up = time.time() + 30
    while time.time() < give_up:
        s = socket.socket(); s.settimeout(0.1)
        try:
            s.connect((ip, 80))
            s.sendall(b"GET /hostname HTTP/1.0\r\n\r\n")
            s.settimeout(2)
            if s.recv(100).startswith(b"HTTP/1.1 200"):
                break
        except OSError:
            time.sleep(0.01)
        finally:
            s.close()
    else:
        print(-1, flush=True)
        continue
    print(time.time(), flush=True)
"""

# In the outside host: requests every 20 ms for SECONDS, prints the longest gap between answers.
LOOPER = r"""
import socket, sys, time
ip, seconds = sys.argv[1], float(sys.argv[2])
end = time.time() + seconds
last, gap, fails = time.time(), 0.0, 0
while time.time() < end:
    s = socket.socket(); s.settimeout(0.3)
    try:
        s.connect((ip, 80)); s.sendall(b"GET /hostname HTTP/1.0\r\n\r\n")
        if s.recv(100).startswith(b"HTTP/1.1 200"):
            now = time.time(); gap = max(gap, now - last); last = now
    except OSError:
        fails += 1
    finally:
        s.close()
    time.sleep(0.02)
print(gap, fails)
"""


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


class Bench:
    def __init__(self, home: Path):
        self.name = f"blb{os.getpid() % 10000}"
        self.home = home
        self.dir = home / self.name
        self.env = dict(os.environ, NANOKUBE_HOME=str(home),
                        KUBECONFIG=str(self.dir / "kubeconfig"))
        self.started: list[subprocess.Popen] = []

    def nk(self, *args: str) -> str:
        return subprocess.run([sys.executable, "-m", "nanokube", "--name", self.name, *args],
                              check=True, capture_output=True, text=True, env=self.env,
                              cwd=ROOT).stdout

    def kubectl(self, *args: str) -> str:
        return subprocess.run(["kubectl", *args], check=True, capture_output=True, text=True,
                              env=self.env).stdout

    def state(self) -> dict:
        return json.loads((self.dir / "cluster.json").read_text())

    def ip(self, last: int) -> str:
        k = self.state()["network"]["host_ip"].split(".")[2]
        return f"10.123.{k}.{last}"

    def netns(self, where: str) -> list[str]:
        return ["nsenter", f"--net=/run/netns/nk-{self.name}-{where}", "--"]

    def neigh_mac(self, ip: str) -> str | None:
        out = subprocess.run([*self.netns("outside"), "ip", "neigh", "show", ip],
                             capture_output=True, text=True).stdout.split()
        return out[out.index("lladdr") + 1] if "lladdr" in out else None

    def node_mac(self, node: str) -> str:
        out = subprocess.run([*self.netns(node), "ip", "-o", "link", "show", "eth0"],
                             capture_output=True, text=True).stdout.split()
        return out[out.index("link/ether") + 1]

    # ---- agents ------------------------------------------------------------------------
    def stop_agent(self, node: str) -> tuple[list[str], dict, float]:
        pid = self.state()["pids"][f"agent-{node}"]
        argv = open(f"/proc/{pid}/cmdline", "rb").read().decode().split("\0")[:-1]
        env = dict(kv.split("=", 1) for kv in
                   open(f"/proc/{pid}/environ", "rb").read().decode().split("\0") if "=" in kv)
        t0 = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        while alive(pid):
            time.sleep(0.01)
        return argv, env, t0

    def start_agent(self, node: str, argv: list[str], env: dict) -> None:
        with open(self.dir / "logs" / f"agent-{node}.log", "ab") as log:
            proc = subprocess.Popen([*self.netns(node), *argv], stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, env=env, cwd="/")
        self.started.append(proc)
        state = self.state()
        state["pids"][f"agent-{node}"] = proc.pid
        tmp = self.dir / "cluster.json.tmp"
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(self.dir / "cluster.json")


def lb_service(name: str, ip: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"type": "LoadBalancer", "selector": {"app": "my-app"}, "loadBalancerIP": ip,
                     "ports": [{"name": "http", "port": 80, "targetPort": 80}]}}


def svc_path(name: str | None = None, sub: str | None = None) -> str:
    return Client.resource_path("", "v1", "services", "default", name, sub)


async def has_status(client: Client, name: str) -> bool:
    svc = await client.get(svc_path(name))
    return bool(((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress"))


async def create_to_answer(b: Bench, count: int) -> list[float]:
    client = Client.from_kubeconfig(str(b.dir / "kubeconfig"))
    poller = subprocess.Popen([*b.netns("outside"), sys.executable, "-c", POLLER],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        # warm-up, not measured: is there a LoadBalancer controller writing status?
        await client.create(svc_path(), lb_service("lb-warmup", b.ip(250)))
        deadline = time.monotonic() + 3.0
        controller = False
        while time.monotonic() < deadline and not controller:
            controller = await has_status(client, "lb-warmup")
            await asyncio.sleep(0.05)
        print(f"  status written by: {'the LoadBalancer controller' if controller else 'bench'}")
        times = []
        for i in range(count):
            name, ip = f"lb-{i}", b.ip(200 + i)
            t0 = time.time()
            await client.create(svc_path(), lb_service(name, ip))
            if not controller:
                await client.patch(svc_path(name, "status"), {"status": {"loadBalancer": {
                    "ingress": [{"ip": ip, "ipMode": "VIP"}]}}})
            poller.stdin.write(ip + "\n")
            poller.stdin.flush()
            answered = float(await asyncio.to_thread(poller.stdout.readline))
            if answered < 0:
                raise RuntimeError(f"{name} ({ip}) not answered within 30 s")
            times.append(answered - t0)
        return times
    finally:
        poller.stdin.close()
        poller.wait(timeout=30)
        await client.close()


def failover(b: Bench, runs: int) -> tuple[list[float], list[float]]:
    ip = b.ip(200)
    owner = elect(NODES, ip)
    other = next(n for n in NODES if n != owner)
    moves, gaps = [], []
    for _ in range(runs):
        deadline = time.monotonic() + 30
        while b.neigh_mac(ip) != b.node_mac(owner):       # the address is back home
            subprocess.run([*b.netns("outside"), sys.executable, "-c", POLLER],
                           input=ip + "\n", capture_output=True, text=True, timeout=30)
            if time.monotonic() > deadline:
                raise RuntimeError(f"{ip} not announced by {owner}")
            time.sleep(0.2)
        looper = subprocess.Popen([*b.netns("outside"), sys.executable, "-c", LOOPER, ip, "12"],
                                  stdout=subprocess.PIPE, text=True)
        time.sleep(1)
        argv, env, t0 = b.stop_agent(owner)
        target = b.node_mac(other)
        while b.neigh_mac(ip) != target:
            if time.monotonic() - t0 > 30:
                raise RuntimeError("the address did not move")
            time.sleep(0.02)
        moves.append(time.monotonic() - t0)
        gap, fails = looper.communicate(timeout=60)[0].split()
        gaps.append(float(gap))
        print(f"  run: moved in {moves[-1]:.2f} s; longest gap between answers {gaps[-1]:.2f} s,"
              f" {fails} failed request(s)")
        b.start_agent(owner, argv, env)
    return moves, gaps


def main() -> int:
    # a SIGTERM (timeout, kill) unwinds like Ctrl-C: the finally blocks take the cluster down
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--services", type=int, default=50)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    if os.geteuid() != 0 or not shutil.which("nft"):
        print("needs root and nft", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="nk-bench-lb-") as tmp:
        b = Bench(Path(tmp))
        try:
            b.nk("up", "--nodes", "2")
            b.kubectl("apply", "-f", str(ROOT / "examples/apps/my-app.yaml"))
            b.kubectl("rollout", "status", "deployment/my-app", "--timeout=60s")
            print(f"create -> first answer from the outside host, {args.services} Services:")
            times = asyncio.run(create_to_answer(b, args.services))
            print(f"  p50 {statistics.median(times) * 1000:.0f} ms, "
                  f"p99 {pct(times, 99) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms")
            print(f"failover after the announcing node's agent gets SIGTERM, {args.runs} runs:")
            moves, gaps = failover(b, args.runs)
            print(f"  ARP entry moved: p50 {statistics.median(moves):.2f} s, "
                  f"max {max(moves):.2f} s; longest gap between answers: p50 "
                  f"{statistics.median(gaps):.2f} s")
            return 0
        finally:
            subprocess.run([sys.executable, "-m", "nanokube", "--name", b.name, "down"],
                           env=b.env, cwd=ROOT, capture_output=True)
            for p in b.started:
                p.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
