"""Cluster benchmark (issue 3): `nanokube up` to a Ready cluster and to the first Ready pod,
100 pods created and Ready, resident memory of the control plane and one node agent.

Run as root: .venv/bin/python bench/cluster.py [--pods 100]
       .venv/bin/python bench/cluster.py --ha-up 3   (only `up`: 1 API server on SQLite vs 3 on
                                                     a throwaway 3-member etcd, alternately)
Peers' published figures are printed beside ours (kind ≈ 33 s and k3d ≈ 20 s to a usable
cluster; k3s idles above 500 MB), and ours against the targets (< 2 s; < 150 MB).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.47"


def rss_mb(pid: int) -> float:
    """Resident memory of one process (MB), shared library pages counted in full."""
    return _proc_kb(f"/proc/{pid}/status", "VmRSS:") / 1024


def pss_mb(pid: int) -> float:
    """Proportional set size (MB): pages shared between processes (the same Python and
    libraries in every nanokube process) are split between them, so PSS adds up honestly."""
    return _proc_kb(f"/proc/{pid}/smaps_rollup", "Pss:") / 1024


def _proc_kb(path: str, key: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def main() -> None:
    # a SIGTERM (timeout, kill) unwinds like Ctrl-C: the finally blocks take the cluster down
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=100)
    ap.add_argument("--ha-up", type=int, default=0, metavar="RUNS",
                    help="only time `up`: 1 API server on SQLite vs 3 on etcd, RUNS times each")
    args = ap.parse_args()
    if args.ha_up:
        return ha_up(args.ha_up)
    tmp = Path(tempfile.mkdtemp(prefix="nanokube-bench-"))
    name = f"b{os.getpid() % 100000}"
    env = dict(os.environ, NANOKUBE_HOME=str(tmp), HOME=str(tmp))
    kubeconfig = tmp / name / "kubeconfig"
    kenv = dict(env, KUBECONFIG=str(kubeconfig))

    def kubectl(*a, input=None):
        proc = subprocess.run(["kubectl", *a], env=kenv, input=input, capture_output=True,
                              text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"kubectl {a}: {proc.stderr}")
        return proc

    def pod_manifest(i: int) -> dict:
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p{i}",
                                                                "labels": {"b": "1"}},
                "spec": {"containers": [{"name": "c", "image": AGNHOST, "args": ["pause"]}],
                         "terminationGracePeriodSeconds": 1}}

    def ready_count() -> int:
        pods = json.loads(kubectl("get", "pods", "-l", "b=1", "-o", "json").stdout)["items"]
        return sum(any(c["type"] == "Ready" and c["status"] == "True"
                       for c in p["status"].get("conditions", [])) for p in pods)
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "nanokube", "up", "--name", name], env=env, check=True,
                   cwd=ROOT)
    t_up = time.monotonic() - t0
    try:
        kubectl("apply", "-f", "-", input=json.dumps(pod_manifest(0)))
        while ready_count() < 1:
            time.sleep(0.02)
        t_first = time.monotonic() - t0
        state = json.loads((tmp / name / "cluster.json").read_text())
        pids = state["pids"]
        time.sleep(2)
        idle = {k: rss_mb(v) for k, v in pids.items()}
        idle_pss = {k: pss_mb(v) for k, v in pids.items()}
        t1 = time.monotonic()
        items = [pod_manifest(i) for i in range(1, args.pods + 1)]
        kubectl("create", "-f", "-", input="---\n".join(yaml.safe_dump(i) for i in items))
        while ready_count() < args.pods + 1:
            time.sleep(0.1)
        t_pods = time.monotonic() - t1
        time.sleep(2)
        loaded = {k: rss_mb(v) for k, v in pids.items()}
        loaded_pss = {k: pss_mb(v) for k, v in pids.items()}
    finally:
        subprocess.run([sys.executable, "-m", "nanokube", "down", "--name", name], env=env,
                       cwd=ROOT)
        shutil.rmtree(tmp, ignore_errors=True)      # kubectl's cache in HOME
    parts = ["apiserver", "controller-manager", "agent-node-1"]

    def total(d: dict) -> float:
        return sum(d[k] for k in parts)
    print(f"\nnanokube cluster benchmark ({os.cpu_count()} cores)\n")
    print(f"up to a Ready 2-node cluster       {t_up:6.2f} s   target < 2 s "
          f"(kind ≈ 33 s: {33 / t_up:.0f}× faster; k3d ≈ 20 s: {20 / t_up:.0f}× faster)")
    print(f"up to the first Ready pod          {t_first:6.2f} s")
    print(f"{args.pods} pods created and Ready         {t_pods:6.2f} s")
    print(f"control plane + 1 agent, idle      RSS {total(idle):6.1f} MB, PSS "
          f"{total(idle_pss):6.1f} MB   target < 150 MB (k3s idles > 500 MB)")
    print(f"  ... with {args.pods + 1} pods running      RSS {total(loaded):6.1f} MB, PSS "
          f"{total(loaded_pss):6.1f} MB")
    print("  per process, idle RSS:", {k: round(v, 1) for k, v in idle.items()})
    print("  per process, with the pods:", {k: round(v, 1) for k, v in loaded.items()})


def _time_up(extra: list[str]) -> float:
    """Seconds `nanokube up` takes to return (a Ready cluster with its addons applied)."""
    tmp = Path(tempfile.mkdtemp(prefix="nanokube-bench-"))
    name = f"b{os.getpid() % 100000}"
    env = dict(os.environ, NANOKUBE_HOME=str(tmp), HOME=str(tmp))
    t0 = time.monotonic()
    try:
        subprocess.run([sys.executable, "-m", "nanokube", "up", "--name", name, *extra], env=env,
                       check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        return time.monotonic() - t0
    finally:
        subprocess.run([sys.executable, "-m", "nanokube", "down", "--name", name], env=env,
                       cwd=ROOT, stdout=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)


def ha_up(runs: int) -> None:
    sys.path.insert(0, str(ROOT))
    from nanokube.store.etcd_cluster import EtcdCluster
    sqlite, ha = [], []
    for _ in range(runs):
        sqlite.append(_time_up([]))
        with tempfile.TemporaryDirectory(prefix="nanokube-bench-etcd-") as d:
            with EtcdCluster(Path(d), members=3) as etcd:   # a fresh etcd for each cluster
                ha.append(_time_up(["--store", etcd.url, "--api-servers", "3"]))
    print(f"\nnanokube up to a Ready 2-node cluster ({os.cpu_count()} cores, {runs} runs each)\n")
    for label, times in (("1 API server, SQLite", sqlite), ("3 API servers, 3-member etcd", ha)):
        times.sort()
        print(f"{label:<30} min {times[0]:5.2f} s   median {times[len(times) // 2]:5.2f} s")


if __name__ == "__main__":
    main()
