"""Data-path benchmark (issue 4): what the Service rules cost on the wire.

On one cluster, side by side in the same run (rounds interleaved, median of each):
- request rate: `wrk` with `Connection: close` (a new TCP connection, hence a new conntrack
  entry and NAT decision, per request) against agnhost netexec's /hostname;
- throughput: `iperf3` (one TCP stream);
each for pod→pod IP (the baseline), pod→ClusterIP, and outside host→NodePort (on the endpoint's
node and on the other node), printing each path's ratio to the baseline (target ≥ 0.95).

The servers run on node-2, the client pods on node-1, so pod→pod and pod→ClusterIP both cross
the LAN. A NodePort on the other node crosses it twice (outside → node-1 → node-2, and back), so
a second reference runs that same wire path without Service rules: the outside host reaches a
server pod's IP routed through node-1, whose answers node-2 routes back through node-1 (routes
for a second address of the outside host alone, in the cluster's own namespaces); the NodePort's
ratio to it is what the Service rules cost. Needs root and the Debian packages `wrk` and `iperf3`:

    apt-get install wrk iperf3
    .venv/bin/python bench/dataplane.py [--seconds 2] [--rounds 3]

Why one server and one client per path for the request rate: closing connections leave
TIME_WAIT sockets for 60 s on both ends. A later connection that reuses a 4-tuple still in
TIME_WAIT on the server is accepted only if its TCP timestamp is newer (PAWS); a different path
to the same server (direct vs. through DNAT, or through masquerade with random source ports)
reuses tuples with unrelated timestamps, so its SYNs are refused and retried after 1 s. That
would measure how paths disturb each other, not what each costs; so each path gets its own
server pod and client. The clients (the client pods and the outside host, all the benchmark's
own) reuse TIME_WAIT ports for new connections (`tcp_tw_reuse=1`, timestamps keep that safe)
out of a wider port range: without it the clients' own TIME_WAIT sockets (60 s) use up the 28k
ephemeral ports within a few seconds and later rounds measure failed connects.
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
AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.47"
WEB_NODEPORT, IPERF_NODEPORT = 32080, 32201


def deployment(name: str, node: str, container: dict) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {
                         "nodeSelector": {"kubernetes.io/hostname": node},
                         "terminationGracePeriodSeconds": 1,
                         "containers": [{"name": name, **container}]}}}}


def service(name: str, port: int, node_port: int) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"type": "NodePort", "selector": {"app": name},
                     "ports": [{"port": port, "targetPort": port, "nodePort": node_port}]}}


class Bench:
    def __init__(self, home: Path, seconds: float):
        self.name = f"bdp{os.getpid() % 10000}"
        self.env = dict(os.environ, NANOKUBE_HOME=str(home),
                        KUBECONFIG=str(home / self.name / "kubeconfig"))
        self.home = home
        self.seconds = seconds

    def nk(self, *args: str) -> str:
        return subprocess.run([sys.executable, "-m", "nanokube", "--name", self.name, *args],
                              check=True, capture_output=True, text=True, env=self.env,
                              cwd=ROOT).stdout

    def kubectl(self, *args: str, input: str | None = None) -> str:
        return subprocess.run(["kubectl", *args], check=True, capture_output=True, text=True,
                              env=self.env, input=input).stdout

    def get(self, *args: str) -> dict:
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def run_in(self, where: str, argv: list[str]) -> str:
        """`where`: a pod name, or "outside" for the outside host."""
        if where == "outside":
            full = ["nsenter", f"--net=/run/netns/nk-{self.name}-outside", "--", *argv]
        else:
            full = [sys.executable, "-m", "nanokube", "--name", self.name, "exec", where, "--",
                    *argv]
        return subprocess.run(full, check=True, capture_output=True, text=True, env=self.env,
                              cwd=ROOT, timeout=self.seconds + 60).stdout

    # ---- the two measurements ---------------------------------------------------------------
    def request_rate(self, where: str, url: str) -> float:
        out = self.run_in(where, ["wrk", "-t2", "-c32", f"-d{self.seconds:g}s",
                                  "-H", "Connection: close", url])
        errors = re.search(r"Socket errors: (.*)", out)
        if errors or "Non-2xx" in out:
            print(f"    ({where} -> {url}: {errors.group(0) if errors else 'non-2xx answers'})")
        return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def throughput(self, where: str, host: str, port: int) -> float:
        out = self.run_in(where, ["iperf3", "-J", "-c", host, "-p", str(port),
                                  "-t", f"{self.seconds:g}"])
        return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e9


def median_rounds(rounds: int, cases: dict[str, callable]) -> dict[str, float]:
    """Each round runs every case once, in turn, so drifts hit all cases alike."""
    values: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(rounds):
        for label, run in cases.items():
            values[label].append(run())
    return {k: statistics.median(v) for k, v in values.items()}


def report(title: str, unit: str, results: dict[str, float], baseline: str) -> None:
    print(f"\n{title}")
    base = results[baseline]
    for label, value in results.items():
        ratio = value / base
        mark = "" if label in (baseline, ROUTED) else (
            "  ok" if ratio >= 0.95 else "  BELOW 0.95")
        print(f"  {label:<38} {value:>10.2f} {unit:<6} ratio {ratio:5.3f}{mark}")
    print(f"  {OTHER} / {ROUTED} (the same wire path, what the Service rules cost): "
          f"{results[OTHER] / results[ROUTED]:.3f}")


def main() -> int:
    # a SIGTERM (timeout, kill) unwinds like Ctrl-C: the finally blocks take the cluster down
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="length of each measurement")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root", file=sys.stderr)
        return 1
    missing = [t for t in ("wrk", "iperf3", "nft") if not shutil.which(t)]
    if missing:
        print(f"missing: {', '.join(missing)} (apt-get install wrk iperf3 nftables)",
              file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="nk-bench-dp-") as tmp:
        b = Bench(Path(tmp), args.seconds)
        try:
            b.nk("up", "--nodes", "2")
            return run(b, args.rounds)
        finally:
            subprocess.run([sys.executable, "-m", "nanokube", "--name", b.name, "down"],
                           env=b.env, cwd=ROOT, capture_output=True)


PATHS = ("direct", "vip", "np-local", "np-other")     # one web server (and port) per path
ROUTED = "outside -> pod IP through node-1"
OTHER = "outside -> NodePort (other node)"


def route_through(cluster: str, pod_ips: list[str], node_1: str, outside_ip: str) -> None:
    """The outside host reaches `pod_ips` (on node-2) through node-1 from a second address of
    its own (.253: no node, API server or pool address), which node-2 routes back through
    node-1: the other-node NodePort's wire path without Service rules. Plain routes, no policy
    rules (those would slow every route lookup in node-2, the other paths' too)."""
    ns = f"nk-{cluster}-"
    second = outside_ip.rsplit(".", 1)[0] + ".253"
    steps = [["-n", f"{ns}outside", "addr", "replace", f"{second}/24", "dev", "eth0"],
             ["-n", f"{ns}node-2", "route", "replace", f"{second}/32", "via", node_1]]
    steps += [["-n", f"{ns}outside", "route", "replace", f"{pod_ip}/32", "via", node_1,
               "src", second] for pod_ip in pod_ips]
    for argv in steps:
        subprocess.run(["ip", *argv], check=True)


def run(b: Bench, rounds: int) -> int:
    web = {"image": AGNHOST, "args": ["netexec", "--http-port=80", "--udp-port=-1"]}
    objs = [deployment(f"web-{p}", "node-2", web) for p in PATHS]
    objs += [service(f"web-{p}", 80, WEB_NODEPORT + i) for i, p in enumerate(PATHS)]
    objs += [deployment("iperf", "node-2", {"image": "busybox", "command": ["iperf3", "-s"]}),
             service("iperf", 5201, IPERF_NODEPORT)]
    objs += [deployment("web-routed", "node-2", web),
             deployment("iperf-routed", "node-2",
                        {"image": "busybox", "command": ["iperf3", "-s"]})]
    objs += [deployment(f"client-{p}", "node-1",
                        {"image": "busybox", "command": ["sleep", "infinity"]})
             for p in ("direct", "vip")]
    for obj in objs:
        b.kubectl("apply", "-f", "-", input=json.dumps(obj))
    for obj in objs:
        if obj["kind"] == "Deployment":
            b.kubectl("rollout", "status", f"deployment/{obj['metadata']['name']}",
                      "--timeout=60s")
    pods = {p["metadata"]["labels"]["app"]: p for p in b.get("pods")["items"]}
    client = {p: pods[f"client-{p}"]["metadata"]["name"] for p in ("direct", "vip")}
    ip = {app: pod["status"]["podIP"] for app, pod in pods.items()}
    vip = {s["metadata"]["name"]: s["spec"]["clusterIP"] for s in b.get("services")["items"]}
    network = json.loads((b.home / b.name / "cluster.json").read_text())["network"]
    nodes = {n["name"]: n["ip"] for n in network["nodes"]}
    route_through(b.name, [ip["web-routed"], ip["iperf-routed"]], nodes["node-1"],
                  network["outside_ip"])
    # wait until both nodes' rules carry every endpoint, then let the servers settle
    wanted = [f"{ip[f'web-{p}']} . 80" for p in PATHS] + [f"{ip['iperf']} . 5201"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not all(
            all(w in rules for w in wanted) for rules in (b.nk("rules", "--node", n)
                                                          for n in nodes)):
        time.sleep(0.2)
    for where in (*client.values(), "outside"):
        b.run_in(where, ["sysctl", "-q", "-w", "net.ipv4.tcp_tw_reuse=1",
                         "net.ipv4.ip_local_port_range=1024 65000"])
    time.sleep(1)
    print(f"cluster {b.name}: servers on node-2, client pods on node-1, the outside host on "
          f"the LAN; {rounds} round(s) of {b.seconds:g} s (iperf3: {max(rounds, 3)}), medians")

    rate = median_rounds(rounds, {
        "pod -> pod IP": lambda: b.request_rate(
            client["direct"], f"http://{ip['web-direct']}/hostname"),
        "pod -> ClusterIP": lambda: b.request_rate(
            client["vip"], f"http://{vip['web-vip']}/hostname"),
        "outside -> NodePort (endpoint's node)": lambda: b.request_rate(
            "outside", f"http://{nodes['node-2']}:{WEB_NODEPORT + 2}/hostname"),
        "outside -> NodePort (other node)": lambda: b.request_rate(
            "outside", f"http://{nodes['node-1']}:{WEB_NODEPORT + 3}/hostname"),
        ROUTED: lambda: b.request_rate("outside", f"http://{ip['web-routed']}/hostname"),
    })
    report("Request rate (wrk -t2 -c32, Connection: close, agnhost netexec /hostname)",
           "req/s", rate, "pod -> pod IP")
    tput = median_rounds(max(rounds, 3), {
        "pod -> pod IP": lambda: b.throughput(client["direct"], ip["iperf"], 5201),
        "pod -> ClusterIP": lambda: b.throughput(client["vip"], vip["iperf"], 5201),
        "outside -> NodePort (endpoint's node)": lambda: b.throughput(
            "outside", nodes["node-2"], IPERF_NODEPORT),
        "outside -> NodePort (other node)": lambda: b.throughput(
            "outside", nodes["node-1"], IPERF_NODEPORT),
        ROUTED: lambda: b.throughput("outside", ip["iperf-routed"], 5201),
    })
    report("Throughput (iperf3, one TCP stream)", "Gbit/s", tput, "pod -> pod IP")
    return 0


if __name__ == "__main__":
    sys.exit(main())
