"""`nanokube up | down | status`: a whole cluster's life on this machine (docs/cluster.md).

`up` lays the network (nanokube.cluster.network), then starts the API server, the controller
manager and one node agent per node at once (the latter two wait for the server by
themselves), and returns when every node is Ready. `down` ends exactly the processes that `up`
and the agents recorded, by pid, then removes every namespace, link, route and file.
"""
from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from nanokube.cluster import apiservers, network

API_PORT = 6443
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,18}[a-z0-9])?$")


def home() -> Path:
    return Path(os.environ.get("NANOKUBE_HOME", "/var/lib/nanokube"))


def cluster_dir(name: str) -> Path:
    return home() / name


def local_port(index: int) -> int:
    return API_PORT + index


class Progress:
    """Prints what `up` does, with the time each step took."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def step(self, text: str) -> None:
        print(f" ✓ {text} ({time.monotonic() - self.t0:.2f}s)", flush=True)


# ---- processes ---------------------------------------------------------------------------------

def _spawn(argv: list[str], log: Path, env: dict | None = None) -> int:
    """A detached process (own session, so a Ctrl-C of `up` does not reach it)."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, env=env)
    return proc.pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie of ours is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _reap() -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


def _end(pids: list[int], grace: float = 3.0) -> None:
    """SIGTERM, then SIGKILL whatever still runs after `grace` seconds."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap()
        if not any(_alive(p) for p in pids):
            return
        time.sleep(0.05)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _reap()


def _end_containers(pids: list[int], grace: float = 3.0) -> None:
    """Containers as the agent ends them: SIGTERM to the process, then SIGKILL to its whole
    process group (each container leads one), so that what a shell started goes too even
    when the shell itself went at the SIGTERM."""
    _end(pids, grace)
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    _reap()


def _pod_pids(cdir: Path) -> list[int]:
    """Container processes the agents recorded (nodes/<node>/pods/<uid>/pids: `name pid`)."""
    pids = []
    for f in cdir.glob("nodes/*/pods/*/pids"):
        for line in f.read_text().splitlines():
            parts = line.split()
            if parts and parts[-1].isdigit():
                pids.append(int(parts[-1]))
    return pids


# ---- kubeconfigs -------------------------------------------------------------------------------

def _write_kubeconfigs(cdir: Path, name: str, net, servers: list | None = None) -> None:
    """The server wrote data/kubeconfig; make the user's (loopback) and the agents' (LAN).
    With several API servers each names them all (`nanokube.io/servers`, for failover), and
    controller-manager j gets one with its own server j first."""
    base = yaml.safe_load((cdir / "data" / "kubeconfig").read_text())
    ctx = f"nanokube-{name}"
    files = [(cdir / "kubeconfig", f"https://127.0.0.1:{local_port(net.index)}", None),
             (cdir / "agent-kubeconfig", f"https://{net.host_ip}:{API_PORT}", None)]
    if servers and len(servers) > 1:
        local, lan = [s.local_url for s in servers], [s.lan_url for s in servers]
        files = [(cdir / "kubeconfig", local[0], local), (cdir / "agent-kubeconfig", lan[0], lan)]
        files += [(_manager_kubeconfig(cdir, s), s.local_url, apiservers.rotated(local, s.number))
                  for s in servers[1:]]
    for path, server, failover in files:
        cfg = json.loads(json.dumps(base))
        cfg["clusters"][0]["name"] = ctx
        cfg["clusters"][0]["cluster"]["server"] = server
        if failover:
            from nanokube.client import SERVERS_EXTENSION
            cfg["clusters"][0]["cluster"]["extensions"] = [
                {"name": SERVERS_EXTENSION, "extension": {"servers": failover}}]
        cfg["users"][0]["name"] = ctx
        cfg["contexts"] = [{"name": ctx, "context": {"cluster": ctx, "user": ctx}}]
        cfg["current-context"] = ctx
        tmp = path.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(cfg, sort_keys=False))
        os.chmod(tmp, 0o600)
        tmp.replace(path)


def _manager_kubeconfig(cdir: Path, server) -> Path:
    """controller-manager j's kubeconfig: the user's for the first, its own for the others."""
    return cdir / ("kubeconfig" if server.number == 1 else f"{server.manager_key}.kubeconfig")


def _wait_server(url: str, pids: list[int], log: Path, timeout: float = 20) -> None:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pids[0]):
            raise RuntimeError(f"the API server exited; see {log}")
        try:
            with urllib.request.urlopen(url + "/readyz", context=ctx, timeout=1):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"the API server did not become ready; see {log}")


async def _wait_nodes_ready(kubeconfig: Path, count: int, timeout: float) -> None:
    from nanokube.client import Client
    deadline = time.monotonic() + timeout
    async with Client.from_kubeconfig(str(kubeconfig)) as client:
        while time.monotonic() < deadline:
            nodes = (await client.list("/api/v1/nodes"))["items"]
            ready = [n for n in nodes if any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in n.get("status", {}).get("conditions", []))
                and n.get("spec", {}).get("podCIDR")]
            if len(ready) >= count:
                return
            await asyncio.sleep(0.05)
    raise RuntimeError("the nodes did not become Ready in time; see the agents' logs")


# ---- up / down / status ------------------------------------------------------------------------

def _pick_index() -> int:
    taken = set(network.used_indexes())
    for d in home().glob("*/cluster.json"):
        try:
            taken.add(json.loads(d.read_text())["network"]["index"])
        except (OSError, ValueError, KeyError):
            continue
    for k in range(0, 250):
        if k not in taken:
            return k
    raise RuntimeError("no free cluster index: too many clusters on this machine")


@contextlib.contextmanager
def _machine_lock():
    """One lock for the whole machine (clusters of every NANOKUBE_HOME share its bridges)."""
    with open("/run/nanokube.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def up(args) -> int:
    name = args.cluster_name
    count = getattr(args, "api_servers", 1) or 1
    problem = apiservers.check(count, getattr(args, "store", None))
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    if os.geteuid() != 0:
        print("error: nanokube up needs root (it makes network namespaces)", file=sys.stderr)
        return 1
    if not _NAME.match(name):
        print(f'error: invalid cluster name "{name}": lower case letters, digits and "-", '
              "at most 20 characters", file=sys.stderr)
        return 1
    cdir = cluster_dir(name)
    if (cdir / "cluster.json").exists():
        print(f'error: cluster "{name}" is already up (nanokube down --name {name} first)',
              file=sys.stderr)
        return 1
    progress = Progress()
    print(f'Creating cluster "{name}" with {args.nodes} node(s) ...', flush=True)
    cdir.mkdir(parents=True, exist_ok=True)
    (cdir / "logs").mkdir(exist_ok=True)
    state: dict = {"name": name, "pids": {}}
    if getattr(args, "store", None):
        state["store"] = args.store
    try:
        with _machine_lock():   # two `up`s at once must not pick the same LAN
            net = network.plan(name, _pick_index(), args.nodes)
            state["network"] = net.to_dict()
            network.create(net)
            servers = apiservers.plan(net, count)
            if count > 1:   # the other servers' LAN addresses, on the cluster's own bridge
                network.add_host_addresses(net, [s.lan_ip for s in servers[1:]])
                state["apiservers"] = [s.to_dict() for s in servers]
        _save(cdir, state)
        progress.step(f"network: LAN {net.lan_cidr} on bridge {net.bridge}, "
                      f"{len(net.nodes)} node namespace(s), outside host {net.outside_ip}")
        _start_control_plane(cdir, net, state, args)
        _wait_server(f"https://127.0.0.1:{local_port(net.index)}", [state["pids"]["apiserver"]],
                     cdir / "logs" / "apiserver.log")
        if count > 1:   # now the shared PKI is complete
            _start_more_servers(cdir, state, servers, args)
        progress.step(f"API server on https://{net.host_ip}:{API_PORT} and "
                      f"https://127.0.0.1:{local_port(net.index)}")
        asyncio.run(_wait_nodes_ready(cdir / "kubeconfig", len(net.nodes), 30))
        progress.step(f"{len(net.nodes)} node(s) Ready")
        if count > 1:
            for s in servers[1:]:
                _wait_server(s.local_url, [state["pids"][s.key]], cdir / "logs" / f"{s.key}.log")
            progress.step(f"{count} API servers: " + ", ".join(s.lan_url for s in servers))
        addons = asyncio.run(_apply_addons(cdir / "kubeconfig", net.lb_pool))
        progress.step(f"addons: {', '.join(addons)}")
    except BaseException as exc:
        print(f"error: {exc}; cleaning up", file=sys.stderr)
        _teardown(cdir, state)
        return 1
    kubeconfig = cdir / "kubeconfig"
    print(f'\nCluster "{name}" is ready in {time.monotonic() - progress.t0:.2f}s. Next:\n'
          f"  export KUBECONFIG={kubeconfig}\n"
          f"  kubectl get nodes -o wide\n"
          f"  nanokube exec --name {name} --outside -- curl http://<node-ip>:<nodePort>\n"
          f"  nanokube down --name {name}")
    return 0


def _start_control_plane(cdir: Path, net, state: dict, args=None) -> None:
    py = [sys.executable, "-m", "nanokube"]
    logs = cdir / "logs"
    servers = apiservers.plan(net, len(state.get("apiservers") or [None]))
    if len(servers) > 1:
        serve = _server_args(state, servers, servers[0], args)
    else:
        serve = ["--listen", f"{net.host_ip}:{API_PORT}",
                 "--listen", f"127.0.0.1:{local_port(net.index)}",
                 "--advertise-address", net.host_ip, *_store_args(state)]
    state["pids"]["apiserver"] = _spawn(
        py + ["server", "--data-dir", str(cdir / "data"), *serve], logs / "apiserver.log")
    _save(cdir, state)
    _wait_file(cdir / "data" / "kubeconfig", state["pids"]["apiserver"])
    _write_kubeconfigs(cdir, state["name"], net, servers)
    if len(servers) > 1:   # one per server, elected: each starts on its own server
        for s in servers:
            state["pids"][s.manager_key] = _spawn(
                py + ["controller-manager", "--kubeconfig", str(_manager_kubeconfig(cdir, s)),
                      *apiservers.manager_args(args)], logs / f"{s.manager_key}.log")
    else:
        state["pids"]["controller-manager"] = _spawn(
            py + ["controller-manager", "--kubeconfig", str(cdir / "kubeconfig")],
            logs / "controller-manager.log")
    for node in net.nodes:
        argv = network.netns_exec_argv(node.netns, py + [
            "agent", "--kubeconfig", str(cdir / "agent-kubeconfig"), "--node", node.name,
            "--node-ip", node.ip, "--state-dir", str(cdir / "nodes" / node.name),
            "--cluster", state["name"]])
        state["pids"][f"agent-{node.name}"] = _spawn(argv, logs / f"agent-{node.name}.log")
    _save(cdir, state)


def _server_args(state: dict, servers: list, me, args) -> list[str]:
    return apiservers.server_args(servers, me, _store_args(state),
                                  getattr(args, "endpoint_reconciler_lease_duration", None))


def _start_more_servers(cdir: Path, state: dict, servers: list, args) -> None:
    """API servers 2..N, on the data dir (PKI) the first one completed."""
    py = [sys.executable, "-m", "nanokube"]
    for s in servers[1:]:
        state["pids"][s.key] = _spawn(
            py + ["server", "--data-dir", str(cdir / "data"),
                  *_server_args(state, servers, s, args)], cdir / "logs" / f"{s.key}.log")
    _save(cdir, state)


def _store_args(state: dict) -> list[str]:
    """--store for the API server: the etcd cluster `up --store etcd://...` was given."""
    return ["--store", state["store"]] if state.get("store") else []


def _wait_file(path: Path, pid: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline or not _alive(pid):
            raise RuntimeError(f"the API server did not start; see {path.parent.parent}/logs")
        time.sleep(0.01)


ADDONS = Path(__file__).resolve().parents[1] / "addons" / "manifests"
_PATHS = {"Namespace": ("", "v1", "namespaces"),
          "IPAddressPool": ("metallb.io", "v1beta1", "ipaddresspools"),
          "L2Advertisement": ("metallb.io", "v1beta1", "l2advertisements"),
          "ServiceAccount": ("", "v1", "serviceaccounts"), "Service": ("", "v1", "services"),
          "Deployment": ("apps", "v1", "deployments"), "ConfigMap": ("", "v1", "configmaps"),
          "IngressClass": ("networking.k8s.io", "v1", "ingressclasses"),
          "Secret": ("", "v1", "secrets"),
          "ClusterIssuer": ("cert-manager.io", "v1", "clusterissuers")}


def default_pool(lb_pool: str) -> list[dict]:
    """The cluster's default LoadBalancer addresses, as a MetalLB configuration: a pool inside
    the LAN's subnet and its L2 advertisement (edit or replace them like MetalLB's)."""
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "metallb-system"}},
            {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
             "metadata": {"name": "default", "namespace": "metallb-system"},
             "spec": {"addresses": [lb_pool]}},
            {"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
             "metadata": {"name": "default", "namespace": "metallb-system"},
             "spec": {"ipAddressPools": ["default"]}}]


async def _apply_addons(kubeconfig: Path, lb_pool: str) -> list[str]:
    """Create the addons' objects (the default address pool, cluster DNS, ...) as `kubectl
    create` would; the addons run as ordinary pods, started while `up` returns."""
    from nanokube.api.errors import StatusError
    from nanokube.client import Client
    from nanokube.certmanager import defaultissuer
    sets = [("address-pool", default_pool(lb_pool)),
            ("default-issuer", defaultissuer.objects(kubeconfig.parent.name))]
    for manifest in sorted(ADDONS.glob("*.yaml")):
        sets.append((manifest.stem, [o for o in yaml.safe_load_all(manifest.read_text()) if o]))
    async with Client.from_kubeconfig(str(kubeconfig)) as client:
        for _, objects in sets:
            for obj in objects:
                group, version, plural = _PATHS[obj["kind"]]
                ns = obj["metadata"].get("namespace")
                try:
                    await client.create(Client.resource_path(group, version, plural, ns), obj)
                except StatusError as e:
                    if e.code != 409:
                        raise
    return [name for name, _ in sets]


def _save(cdir: Path, state: dict) -> None:
    tmp = cdir / "cluster.json.tmp"
    tmp.write_text(json.dumps(state, indent=1))
    tmp.replace(cdir / "cluster.json")


def _teardown(cdir: Path, state: dict) -> None:
    pids = list(state.get("pids", {}).values())
    agents = [p for k, p in state.get("pids", {}).items() if k.startswith("agent-")]
    _end(agents)                       # agents first: they stop recording new pods
    _end_containers(_pod_pids(cdir))
    _end([p for p in pids if p not in agents])
    if state.get("network"):
        network.destroy(network.ClusterNet.from_dict(state["network"]))
    shutil.rmtree(cdir, ignore_errors=True)


def down(args) -> int:
    if os.geteuid() != 0:
        print("error: nanokube down needs root", file=sys.stderr)
        return 1
    names = [d.parent.name for d in home().glob("*/cluster.json")] if args.all \
        else [args.cluster_name]
    for name in names:
        cdir = cluster_dir(name)
        try:
            state = json.loads((cdir / "cluster.json").read_text())
        except (OSError, ValueError):
            print(f'cluster "{name}" is not up', file=sys.stderr)
            continue
        t0 = time.monotonic()
        _teardown(cdir, state)
        print(f'Deleted cluster "{name}" ({time.monotonic() - t0:.2f}s)')
    return 0


def status(args) -> int:
    name = args.cluster_name
    cdir = cluster_dir(name)
    try:
        state = json.loads((cdir / "cluster.json").read_text())
    except (OSError, ValueError):
        print(f'cluster "{name}" is not up')
        return 1
    net = state["network"]
    print(f"cluster:    {name}\nkubeconfig: {cdir / 'kubeconfig'}\nLAN:        "
          f"{net['lan_cidr']} (bridge {net['bridge']}, outside host {net['outside_ip']})")
    ok = True
    for proc, pid in state["pids"].items():
        alive = _alive(pid)
        ok &= alive
        print(f"  {proc:<24} pid {pid:<8} {'running' if alive else 'NOT RUNNING'}")
    for server in state.get("apiservers") or []:
        print(f"  {server['name']:<24} {server['lan']} and {server['local']}")
    return 0 if ok else 1
