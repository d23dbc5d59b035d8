"""Cluster DNS from a pod (issue 4): dnsperf inside a pod against the kube-dns ClusterIP.

Run as root: .venv/bin/python bench/dns_from_pod.py [--services 500] [--seconds 10]
Brings a 2-node cluster up, creates Services with a named port (an A and an SRV name each),
and runs dnsperf (Debian package) inside a pod on the node that does NOT run the DNS pod, so
every query crosses the ClusterIP DNAT and the LAN, as a real lookup does. Printed beside
CoreDNS's published 33,669 queries/s on 2 vCPUs. Traffic stays inside the cluster's namespaces.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
COREDNS_QPS = 33_669


def main() -> None:
    # a SIGTERM (timeout, kill) unwinds like Ctrl-C: the finally blocks take the cluster down
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", type=int, default=500)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--clients", type=int, default=4)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="nanokube-dnsbench-"))
    name = f"d{os.getpid() % 100000}"
    env = dict(os.environ, NANOKUBE_HOME=str(tmp), HOME=str(tmp),
               KUBECONFIG=str(tmp / name / "kubeconfig"))
    nk = [sys.executable, "-m", "nanokube", "--name", name]

    def kubectl(*a, input=None) -> str:
        return subprocess.run(["kubectl", *a], env=env, input=input, capture_output=True,
                              text=True, check=True).stdout

    subprocess.run(nk + ["up"], env=env, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    try:
        docs = [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"s{i}"},
                 "spec": {"ports": [{"name": "http", "port": 80}]}}
                for i in range(args.services)]
        kubectl("create", "-f", "-", input="---\n".join(yaml.safe_dump(d) for d in docs))
        dns_node = json.loads(kubectl("get", "pods", "-n", "kube-system", "-l",
                                      "k8s-app=kube-dns", "-o", "json"))["items"][0]
        other = "node-2" if dns_node["spec"]["nodeName"] == "node-1" else "node-1"
        client = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "dnsperf"},
                  "spec": {"nodeName": other, "containers": [
                      {"name": "c", "image": "busybox", "command": ["sleep", "3600"]}],
                      "terminationGracePeriodSeconds": 0}}
        kubectl("create", "-f", "-", input=json.dumps(client))
        kubectl("wait", "--for=condition=Ready", "pod/dnsperf", "--timeout=30s")
        names = tmp / "names.txt"
        lines = []
        for i in range(args.services):
            lines.append(f"s{i}.default.svc.cluster.local A")
            lines.append(f"_http._tcp.s{i}.default.svc.cluster.local SRV")
        names.write_text("\n".join(lines) + "\n")
        time.sleep(1)
        out = subprocess.run(nk + ["exec", "dnsperf", "--", "dnsperf", "-s", "10.96.0.10",
                                   "-d", str(names), "-c", str(args.clients), "-l",
                                   str(args.seconds), "-Q", "500000"],
                             env=env, capture_output=True, text=True, cwd=ROOT).stdout
    finally:
        subprocess.run(nk + ["down"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)
    qps = float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1))
    lost = re.search(r"Queries lost:\s+(\d+)", out).group(1)
    print(f"\ncluster DNS from a pod on the other node, {2 * args.services} names, "
          f"{args.clients} clients, {args.seconds} s")
    print(f"  {qps:,.0f} queries/s, {lost} lost; CoreDNS published {COREDNS_QPS:,}/s on "
          f"2 vCPUs: {qps / COREDNS_QPS:.2f}x")


if __name__ == "__main__":
    main()
