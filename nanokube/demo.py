"""`make demo`: the seed walkthrough on a real nanokube cluster, with the real kubectl.

Brings a 2-node cluster up, runs echo servers behind the seed's Services, shows what kubectl
shows, shows the clear errors the seed's text gets as written, and takes the cluster down."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAME = "demo"


def _run(argv: list[str], env: dict, title: str = "") -> int:
    shown = " ".join(argv).replace(sys.executable + " -m nanokube", "nanokube")
    print(f"\n\033[1m$ {shown}\033[0m" + (f"   # {title}" if title else ""), flush=True)
    return subprocess.run(argv, env=env, cwd=ROOT).returncode


def _ingress(nk: list[str], kubectl: list[str], env: dict) -> None:
    """The seed's v1beta1 Ingress through the ingress-nginx addon's EXTERNAL-IP. Names are
    pinned to that address with curl --resolve: nothing is looked up or sent elsewhere."""
    subprocess.run(kubectl + ["wait", "-n", "ingress-nginx", "--for=condition=Ready", "pod",
                              "--all", "--timeout=30s"], env=env, capture_output=True)
    ip = ""
    for _ in range(50):
        ip = subprocess.run(kubectl + ["get", "ingress", "my-ingress", "-o",
                                       "jsonpath={.status.loadBalancer.ingress[0].ip}"],
                            env=env, capture_output=True, text=True).stdout.strip()
        if ip:
            break
        time.sleep(0.1)
    _run(kubectl + ["get", "ingress"], env, "the seed's Ingress, with the controller's address")
    if not ip:
        return
    # The tls entry has no secretName: the default CA issuer's certificate, trusted through
    # `nanokube ca` (no -k). Issuing takes a fraction of a second; wait for it quietly.
    ca = Path(env["NANOKUBE_HOME"]) / "ca.pem"
    ca.write_text(subprocess.run(nk + ["ca"], env=env, capture_output=True, text=True).stdout)
    verify = nk + ["exec", "--outside", "--", "curl", "-s", "--cacert", str(ca), "-m", "3"]
    for _ in range(100):
        if subprocess.run(verify + ["-o", "/dev/null", "--resolve", f"example.com:443:{ip}",
                                    "https://example.com/hostname"],
                          env=env, capture_output=True).returncode == 0:
            break
        time.sleep(0.1)
    _run(kubectl + ["get", "certificate"], env, "issued by the cluster's default CA issuer")
    for host, path in (("example.com", "/hostname"), ("another-example.com", "/")):
        _run(verify + ["--resolve", f"{host}:443:{ip}", f"https://{host}{path}"], env,
             f"HTTPS to {host}, verified against `nanokube ca`")
        print()
    _run(nk + ["exec", "--outside", "--", "curl", "-s", "-o", "/dev/null", "-w",
               "%{http_code} -> %{redirect_url}\n", "-m", "3", "--resolve",
               f"example.com:80:{ip}", "http://example.com/hostname"], env,
         "plain HTTP to a TLS host is redirected")


def _lan(work: Path) -> str:
    """The first three octets of the demo cluster's LAN (10.123.<k>)."""
    import json
    state = json.loads((work / NAME / "cluster.json").read_text())
    return state["network"]["host_ip"].rsplit(".", 1)[0]


def main() -> int:
    if shutil.which("kubectl") is None:
        print("kubectl is not installed; use `nanokube get` etc. instead", file=sys.stderr)
        return 1
    if os.geteuid() != 0:
        print("make demo needs root: it creates network namespaces", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="nanokube-demo-"))
    env = dict(os.environ, NANOKUBE_HOME=str(work), HOME=str(work),
               KUBECONFIG=str(work / NAME / "kubeconfig"))
    nk = [sys.executable, "-m", "nanokube", "--name", NAME]
    kubectl = ["kubectl"]
    try:
        if _run(nk + ["up"], env, "a 2-node cluster in network namespaces") != 0:
            return 1
        _run(kubectl + ["get", "nodes", "-o", "wide"], env)
        _run(kubectl + ["apply", "-f", "examples/apps/my-app.yaml"], env, "echo servers")
        lan = _lan(work)
        if lan != "10.123.0":   # another cluster holds 10.123.0.0/24: ask for our pool's address
            subprocess.run(["sh", "-c", "sed 's/10.123.0.240/" + lan + ".240/' "
                            "examples/seed/loadbalancer-service.yaml | kubectl apply -f -"],
                           env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
        _run(kubectl + ["apply", "-f", "examples/seed/"], env, "the seed's manifests, completed")
        _run(kubectl + ["rollout", "status", "deployment/my-app", "--timeout=60s"], env)
        _run(kubectl + ["get", "pods", "-o", "wide"], env, "pods are processes with own IPs")
        _run(kubectl + ["get", "endpointslices"], env, "the Services' ready endpoints")
        _run(kubectl + ["get", "ipaddresspools,l2advertisements", "-n", "metallb-system"], env,
             "the default address pool, made by `up`")
        _run(kubectl + ["get", "services"], env,
             "cluster IPs from 10.96.0.0/12, node ports from 30000-32767")
        _run(kubectl + ["apply", "-f", "examples/seed/"], env, "applying again changes nothing")
        for f in sorted((ROOT / "examples" / "seed-verbatim").glob("clusterip-*.yaml")):
            _run(kubectl + ["create", "-f", str(f.relative_to(ROOT))], env,
                 f"the seed's text as written: {f.name}")
        _run(kubectl + ["describe", "service", "my-service"], env)
        pod = subprocess.run(kubectl + ["get", "pods", "-l", "app=my-app", "-o",
                                        "jsonpath={.items[0].metadata.name}"],
                             env=env, capture_output=True, text=True).stdout.strip()
        _run(nk + ["exec", pod, "--", "sh", "-c",
                   "for i in 1 2 3 4 5 6; do curl -s http://my-service/hostname; echo; done"],
             env, "inside a pod: the Service by name, balanced over the pods (nftables)")
        for node_ip in (f"{lan}.11", f"{lan}.12"):
            _run(nk + ["exec", "--outside", "--", "curl", "-s", "-m", "2",
                       f"http://{node_ip}:32000/hostname"], env,
                 f"from the outside host: NodePort 32000 on {node_ip}")
            print()
        code = _run(nk + ["exec", "--outside", "--", "curl", "-s", "-m", "2",
                          "http://10.96.0.100/hostname"], env,
                    "from the outside host the ClusterIP does not answer")
        print(f"(curl exit status {code}: no route to the service CIDR outside the cluster)")
        _run(kubectl + ["get", "service", "my-loadbalancer-service"], env,
             "LoadBalancer: an EXTERNAL-IP from the cluster's address pool (MetalLB's kinds)")
        lb_ip = subprocess.run(kubectl + ["get", "service", "my-loadbalancer-service", "-o",
                                          "jsonpath={.status.loadBalancer.ingress[0].ip}"],
                               env=env, capture_output=True, text=True).stdout.strip()
        if lb_ip:
            _run(nk + ["exec", "--outside", "--", "curl", "-s", "-m", "2",
                       f"http://{lb_ip}/hostname"], env,
                 "from the outside host, through the address one node announces (ARP)")
            print()
        else:
            _run(kubectl + ["describe", "service", "my-loadbalancer-service"], env)
        _ingress(nk, kubectl, env)
        rules = " ".join(nk + ["rules", "--node", "node-1"])
        _run(["sh", "-c", f"{rules} | sed -n '/map service-ips/,/}}/p;/map backends /,/}}/p'"],
             env, "node-1's nftables: one lookup map for every Service, one map of endpoints")
    finally:
        _run(nk + ["down"], env, "leaves nothing behind")
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
