"""Ingress benchmark (issue 6): throughput against plain NGINX, propagation, changes under load.

On one 2-node cluster (`nanokube up` applies the ingress-nginx addon) with
examples/apps/my-app.yaml behind my-service and an Ingress for bench.example.com:

1. throughput: `wrk` (keep-alive) from the outside host to the controller's EXTERNAL-IP:80 with
   `Host: bench.example.com` (-> the controller pod's NGINX -> my-app pods), then the same wrk
   against a hand-written minimal Debian NGINX (one server, `proxy_pass` to an upstream of the
   same pod IPs, upstream keepalive) run inside the controller pod's own network namespace and
   reached the same way, through a LoadBalancer Service of its own (externalTrafficPolicy Local).
   Requests/s and p99 of both (median of alternating rounds), and the ratio ours / plain.
2. propagation: N Ingresses (new hosts) one after the other; from just before `kubectl apply`
   to the first 200 seen by a poller on the outside host (one long-lived process, a new
   connection per attempt, so no process start-up is measured). p50/p99, and how much of
   that is kubectl itself.
3. under a steady load on bench.example.com from the outside host (keep-alive clients and
   new-connection-per-request clients), 100 changes: Ingresses for other hosts added and
   removed, and my-app (the loaded backend) scaled 3 <-> 5, each scale waited for until the
   EndpointSlice shows it. Failed requests: non-200 answers and connection errors, apart.

Names are never resolved: the Host header carries the name, the address is the EXTERNAL-IP.

    .venv/bin/python bench/ingress.py [--ingresses 20] [--changes 100] [--duration 5] [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
import harness  # noqa: E402 - the tests' own helpers (wait_for)
NS = "ingress-nginx"
HOST = "bench.example.com"

# In the outside host: reads "HOST" lines, polls http://IP/hostname with that Host header (a new
# connection per attempt, every 5 ms) until a 200, prints the wall time of that answer.
POLLER = r"""
import socket, sys, time
ip = sys.argv[1]
for line in sys.stdin:
    host = line.strip()
    give_up = time.time() + 30
    answered = -1
    while time.time() < give_up:
        s = socket.socket(); s.settimeout(0.5)
        try:
            s.connect((ip, 80))
            s.sendall(f"GET /hostname HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            if s.recv(100).startswith(b"HTTP/1.1 200"):
                answered = time.time()
                break
        except OSError:
            pass
        finally:
            s.close()
        time.sleep(0.005)
    print(answered, flush=True)
"""

# In the outside host: steady load until stdin closes, then one JSON line of counts.
# KEEPALIVE clients reuse their connection (reconnecting when told `Connection: close`),
# FRESH clients open a new connection per request.
LOADER = r"""
import asyncio, json, sys, time
ip, host, keepalive, fresh = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
counts = {"ok": 0, "non200": {}, "errors": {}, "failures": []}
stop = asyncio.Event()

def error(kind):
    counts["errors"][kind] = counts["errors"].get(kind, 0) + 1
    counts["failures"].append((time.time(), kind))

async def request(reader, writer, close):
    writer.write(f"GET /hostname HTTP/1.1\r\nHost: {host}\r\n"
                 f"{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = head.decode("latin-1").split("\r\n")
    code = int(lines[0].split()[1])
    fields = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:] if l)}
    await asyncio.wait_for(reader.readexactly(int(fields.get("content-length", 0))), 5)
    return code, fields.get("connection", "").lower() == "close"

async def client(reuse):
    reader = writer = None
    while not stop.is_set():
        try:
            if writer is None:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, 80), 5)
            code, closing = await request(reader, writer, not reuse)
            if code == 200:
                counts["ok"] += 1
            else:
                counts["non200"][str(code)] = counts["non200"].get(str(code), 0) + 1
                counts["failures"].append((time.time(), str(code)))
                await asyncio.sleep(0.01)
            if closing or not reuse:
                writer.close(); writer = None
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError,
                IndexError) as e:
            error(("keep-alive " if reuse else "new-conn ") + type(e).__name__)
            if writer is not None:
                writer.close(); writer = None
            await asyncio.sleep(0.01)

async def main():
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    tasks = [asyncio.create_task(client(True)) for _ in range(keepalive)]
    tasks += [asyncio.create_task(client(False)) for _ in range(fresh)]
    t0 = time.time()
    await reader.read()
    stop.set()
    await asyncio.gather(*tasks)
    counts["seconds"] = round(time.time() - t0, 1)
    print(json.dumps(counts), flush=True)

asyncio.run(main())
"""

# The hand-written minimal NGINX: what an operator would write to proxy to these pods.
PLAIN_NGINX = """\
worker_processes auto;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    upstream pods {{
{servers}
        keepalive 64;
    }}
    server {{
        listen {ip}:{port};
        location / {{
            proxy_pass http://pods;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
        }}
    }}
}}
"""


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def median_run(runs: list[dict]) -> dict:
    """The run with the median requests/s (its own p99 and error counts)."""
    return sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]


def ingress(name: str, host: str, service: str = "my-service") -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name},
            "spec": {"ingressClassName": "nginx", "rules": [{"host": host, "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": service, "port": {"number": 80}}}}]}}]}}


class Bench:
    def __init__(self, home: Path):
        self.name = f"bin{os.getpid() % 10000}"
        self.home = home
        self.dir = home / self.name
        self.env = dict(os.environ, NANOKUBE_HOME=str(home),
                        KUBECONFIG=str(self.dir / "kubeconfig"))

    def nk(self, *args: str, check: bool = True) -> str:
        out = subprocess.run([sys.executable, "-m", "nanokube", "--name", self.name, *args],
                             capture_output=True, text=True, env=self.env, cwd=ROOT,
                             timeout=120)
        if check and out.returncode:
            raise RuntimeError(f"nanokube {args}: {out.stdout}{out.stderr}")
        return out.stdout

    def kubectl(self, *args: str, input: str | None = None) -> str:
        out = subprocess.run(["kubectl", *args], capture_output=True, text=True, env=self.env,
                             input=input, timeout=120)
        if out.returncode:
            raise RuntimeError(f"kubectl {args}: {out.stdout}{out.stderr}")
        return out.stdout

    def get(self, *args: str) -> dict:
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def apply(self, obj: dict) -> None:
        self.kubectl("apply", "-f", "-", input=json.dumps(obj))

    def netns(self, where: str) -> list[str]:
        return ["nsenter", f"--net=/run/netns/nk-{self.name}-{where}", "--"]

    def node_ip(self, node: str) -> str:
        state = json.loads((self.dir / "cluster.json").read_text())
        return next(n["ip"] for n in state["network"]["nodes"] if n["name"] == node)

    def external_ip(self) -> str | None:
        svc = self.get("service", "-n", NS, "ingress-nginx-controller")
        entries = (svc.get("status") or {}).get("loadBalancer", {}).get("ingress") or []
        return next((e["ip"] for e in entries if e.get("ip")), None)

    def ready_endpoints(self, service: str) -> list[str]:
        slices = self.get("endpointslices", "-l", f"kubernetes.io/service-name={service}")
        return sorted(a for s in slices["items"] for e in s.get("endpoints") or []
                      if (e.get("conditions") or {}).get("ready", True)
                      for a in e["addresses"])

    def status_code(self, ip: str, host: str, port: int = 80) -> int:
        out = subprocess.run([*self.netns("outside"), "curl", "-s", "-o", "/dev/null",
                              "--max-time", "2", "-w", "%{http_code}", "-H", f"Host: {host}",
                              f"http://{ip}:{port}/hostname"], capture_output=True, text=True)
        return int(out.stdout or 0)

    def wrk(self, url: str, host: str, threads: int, conns: int, seconds: int) -> dict:
        out = subprocess.run([*self.netns("outside"), "wrk", f"-t{threads}", f"-c{conns}",
                              f"-d{seconds}s", "--latency", "-H", f"Host: {host}", url],
                             capture_output=True, text=True, timeout=seconds + 60).stdout
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        errors = re.search(r"Socket errors: (.*)", out)
        return {"rps": rps, "p99_ms": float(p99.group(1)) * scale,
                "non2xx": int(non2xx.group(1)) if non2xx else 0,
                "errors": errors.group(1) if errors else "none"}


def wait_for(what: str, check, timeout: float = 60, interval: float = 0.1):
    return harness.wait_for(what, check, timeout, interval)


def free_port(b: Bench, node: str, ip: str) -> int:
    """A port nothing listens on at `ip` inside the node's namespace (the kernel picks it)."""
    code = f"import socket; s = socket.socket(); s.bind(({ip!r}, 0)); print(s.getsockname()[1])"
    return int(subprocess.run([*b.netns(node), sys.executable, "-c", code], check=True,
                              capture_output=True, text=True).stdout)


CONTROLLER = {"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/instance": "ingress-nginx",
              "app.kubernetes.io/component": "controller"}


def controller_netns(b: Bench) -> str:
    """The ingress controller pod's network namespace (docs/cluster.md: uid's first 12 hex)."""
    selector = ",".join(f"{k}={v}" for k, v in CONTROLLER.items())
    pod = b.get("pods", "-n", NS, "-l", selector)["items"][0]
    return pod["metadata"]["uid"].replace("-", "")[:12]


def plain_service(port: int) -> dict:
    """The plain NGINX's own LoadBalancer Service: the same path as the controller's
    (EXTERNAL-IP -> the node's rules, externalTrafficPolicy Local -> the same pod)."""
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "plain-nginx", "namespace": NS},
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local",
                     "selector": CONTROLLER,
                     "ports": [{"name": "http", "port": 80, "targetPort": port}]}}


def start_plain_nginx(b: Bench, prefix: Path, pod_ips: list[str],
                      started: list) -> tuple[subprocess.Popen, str, int]:
    """A hand-written NGINX in the controller pod's own network namespace, on a free port,
    behind a LoadBalancer Service of its own: only the NGINX configuration differs from the
    path through the Ingress."""
    where = controller_netns(b)
    port = free_port(b, where, "0.0.0.0")
    prefix.mkdir(parents=True, exist_ok=True)
    servers = "\n".join(f"        server {p}:80;" for p in pod_ips)
    (prefix / "nginx.conf").write_text(PLAIN_NGINX.format(prefix=prefix, servers=servers,
                                                          ip="0.0.0.0", port=port))
    # nsenter only enters the network namespace, then execs nginx: the pid is NGINX's master.
    proc = subprocess.Popen([*b.netns(where), "nginx", "-p", str(prefix), "-e",
                             str(prefix / "error.log"), "-c", str(prefix / "nginx.conf"),
                             "-g", "daemon off;"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    started.append(proc)
    b.apply(plain_service(port))

    def address():
        svc = b.get("service", "-n", NS, "plain-nginx")
        entries = (svc.get("status") or {}).get("loadBalancer", {}).get("ingress") or []
        return next((e["ip"] for e in entries if e.get("ip")), None)
    return proc, wait_for("the plain NGINX's EXTERNAL-IP", address), 80


def throughput(b: Bench, ext_ip: str, prefix: Path, args, started: list) -> None:
    """`started` gets the plain NGINX's process at once, for the caller to stop it."""
    pod_ips = b.ready_endpoints("my-service")
    try:
        nginx, ip, port = start_plain_nginx(b, prefix, pod_ips, started)
        wait_for("the plain NGINX", lambda: b.status_code(ip, HOST, port) == 200, timeout=20)
        _throughput(b, ext_ip, ip, port, pod_ips, args)
    finally:
        b.kubectl("delete", "service", "-n", NS, "plain-nginx", "--ignore-not-found")


def _throughput(b: Bench, ext_ip: str, ip: str, port: int, pod_ips: list[str], args) -> None:
    w = (args.threads, args.connections, args.duration)
    b.wrk(f"http://{ext_ip}/hostname", HOST, *w)               # warm-up, not counted
    b.wrk(f"http://{ip}:{port}/hostname", HOST, *w)
    runs: dict[str, list[dict]] = {"ours": [], "plain": []}
    for _ in range(args.rounds):                               # alternate: same conditions
        runs["ours"].append(b.wrk(f"http://{ext_ip}/hostname", HOST, *w))
        runs["plain"].append(b.wrk(f"http://{ip}:{port}/hostname", HOST, *w))
    ours, plain = (median_run(runs[k]) for k in ("ours", "plain"))
    print(f"\n1. throughput, wrk -t{args.threads} -c{args.connections} -d{args.duration}s "
          f"(keep-alive) from the outside host, GET /hostname on {len(pod_ips)} agnhost pods; "
          f"median of {args.rounds} alternating rounds; both NGINX in the controller pod, "
          f"each behind its own LoadBalancer Service")
    for label in ("ours", "plain"):
        print(f"   {label} req/s per round: "
              + ", ".join(f"{r['rps']:.0f}" for r in runs[label]))
    for label, r in (("ingress (EXTERNAL-IP:80)", ours), (f"plain NGINX ({ip}:{port})", plain)):
        print(f"   {label:28s} {r['rps']:9.0f} req/s   p99 {r['p99_ms']:7.2f} ms   "
              f"non-2xx {r['non2xx']}   socket errors: {r['errors']}")
    print(f"   ratio ours/plain: req/s {ours['rps'] / plain['rps']:.2f}, "
          f"p99 {ours['p99_ms'] / plain['p99_ms']:.2f}  (target req/s >= 0.9)")


def propagation(b: Bench, ext_ip: str, count: int) -> None:
    poller = subprocess.Popen([*b.netns("outside"), sys.executable, "-c", POLLER, ext_ip],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    totals, kubectl_times = [], []
    try:
        for i in range(count):
            host = f"prop{i}.example.com"
            t0 = time.time()
            b.apply(ingress(f"prop{i}", host))
            kubectl_times.append(time.time() - t0)
            poller.stdin.write(host + "\n")
            poller.stdin.flush()
            answered = float(poller.stdout.readline())
            if answered < 0:
                raise RuntimeError(f"{host} never answered 200")
            totals.append(answered - t0)
    finally:
        poller.stdin.close()
        poller.wait(timeout=10)
    ms = [t * 1000 for t in totals]
    print(f"\n2. propagation, kubectl apply of a new Ingress -> first 200 from the outside "
          f"host, {count} Ingresses")
    print(f"   p50 {statistics.median(ms):.0f} ms   p99 {pct(ms, 99):.0f} ms   "
          f"max {max(ms):.0f} ms  (target p99 <= 300 ms)")
    print(f"   of which kubectl apply itself: p50 "
          f"{statistics.median(kubectl_times) * 1000:.0f} ms")


def changes_under_load(b: Bench, ext_ip: str, count: int) -> None:
    loader = subprocess.Popen([*b.netns("outside"), sys.executable, "-c", LOADER, ext_ip, HOST,
                               "8", "4"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    live: list[str] = []
    made = {"ingress added": 0, "ingress removed": 0, "scaled up": 0, "scaled down": 0}
    events: list[tuple[float, str]] = []                    # (wall time, kind of change)
    replicas = 3
    t0 = time.monotonic()
    try:
        time.sleep(1.0)                                         # load runs before the first
        for i in range(count):
            kind = i % 10
            if kind in (3, 8):                                  # 20 scales of the backend
                replicas = 5 if replicas == 3 else 3
                change = "scaled up" if replicas == 5 else "scaled down"
                events.append((time.time(), change))
                b.kubectl("scale", "deployment/my-app", f"--replicas={replicas}")
                wait_for(f"{replicas} ready endpoints",
                         lambda: len(b.ready_endpoints("my-service")) == replicas, timeout=60)
            elif kind in (1, 5, 7) and live:                    # remove the oldest
                change = "ingress removed"
                events.append((time.time(), change))
                b.kubectl("delete", "ingress", live.pop(0))
            else:
                change = "ingress added"
                events.append((time.time(), change))
                name = f"churn{i}"
                b.apply(ingress(name, f"{name}.example.com",
                                "second-service" if i % 2 else "my-service"))
                live.append(name)
            made[change] += 1
            time.sleep(0.1)
        time.sleep(2.0)                                         # the last reload settles
    finally:
        loader.stdin.close()
        result = json.loads(loader.stdout.readline() or "{}")
        loader.wait(timeout=30)
    seconds = time.monotonic() - t0
    non200 = sum(result.get("non200", {}).values())
    errors = sum(result.get("errors", {}).values())
    print(f"\n3. {count} changes in {seconds:.0f} s "
          f"({', '.join(f'{v} {k}' for k, v in made.items())}) under load on {HOST}: "
          f"8 keep-alive + 4 new-connection clients")
    print(f"   requests answered 200: {result.get('ok')}   non-200: {non200} "
          f"{result.get('non200') or ''}   connection errors: {errors}  (target 0 failed)")
    for kind, n in sorted(result.get("errors", {}).items()):
        print(f"     {kind}: {n}")
    # Which change preceded each failure: tells reload effects from endpoint-removal effects.
    after: dict[str, int] = {}
    for at, _ in result.get("failures", []):
        before = [c for t, c in events if t <= at]
        key = before[-1] if before else "before any change"
        after[key] = after.get(key, 0) + 1
    if after:
        print("   failures by the latest change before them: "
              + ", ".join(f"{k} {v}" for k, v in sorted(after.items())))
    seconds_in = sorted({round(at - events[0][0]) for at, _ in result.get("failures", [])
                         if events})
    if seconds_in:
        print(f"   seconds (after the first change) with failures: {seconds_in}")


def main() -> None:
    # a SIGTERM (timeout, kill) unwinds like Ctrl-C: the finally blocks take the cluster down
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ingresses", type=int, default=20)
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0 or not shutil.which("wrk") or not shutil.which("nginx"):
        sys.exit("needs root (network namespaces), wrk and nginx (apt-get install wrk nginx-light)")
    tmp = Path(tempfile.mkdtemp(prefix="nk-bench-ingress-"))
    b = Bench(tmp / "home")
    nginx = None
    try:
        b.nk("up", "--nodes", "2")
        b.kubectl("apply", "-f", str(ROOT / "examples/apps/my-app.yaml"),
                  "-f", str(ROOT / "examples/seed/clusterip-service.yaml"),
                  "-f", str(ROOT / "examples/seed/second-service.yaml"))
        for deployment in ("deployment/my-app", "deployment/second-app"):
            b.kubectl("rollout", "status", deployment, "--timeout=90s")
        b.kubectl("rollout", "status", "-n", NS, "deployment/ingress-nginx-controller",
                  "--timeout=90s")
        ext_ip = wait_for("the controller's EXTERNAL-IP", b.external_ip)
        wait_for("3 ready endpoints", lambda: len(b.ready_endpoints("my-service")) == 3)
        b.apply(ingress("bench", HOST))
        wait_for(f"{HOST} to answer", lambda: b.status_code(ext_ip, HOST) == 200,
                 interval=0.05)
        time.sleep(0.5)                       # old workers from that reload are gone
        print(f"cluster {b.name}: 2 nodes, ingress EXTERNAL-IP {ext_ip}")
        started: list[subprocess.Popen] = []
        try:
            throughput(b, ext_ip, tmp / "plain-nginx", args, started)
        finally:
            nginx = started[0] if started else None
        propagation(b, ext_ip, args.ingresses)
        changes_under_load(b, ext_ip, args.changes)
    finally:
        if nginx is not None:
            nginx.send_signal(signal.SIGQUIT)          # graceful: the master ends its workers
            try:
                nginx.wait(timeout=10)
            except subprocess.TimeoutExpired:
                nginx.kill()
                nginx.wait()
        b.nk("down", check=False)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
