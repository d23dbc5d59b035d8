"""Several API servers on one etcd cluster: the acceptance scenarios of the etcd store.

- `nanokube migrate` moves a SQLite cluster into etcd with its objects, UIDs and allocations;
- a 3-member etcd on loopback, three API servers (one data dir: shared CA and keys) and three
  controller-managers with --leader-elect: exactly one leads; killing the API server and the
  controller-manager that lead moves the controllers within seconds, and no acknowledged write
  is lost;
- 1,000 concurrent Service creates spread over the three servers get 1,000 distinct ClusterIPs.
Every process is ended by its pid, also when a test fails."""
from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time

import pytest
import yaml

from harness import ROOT, ApiServerProcess
from nanokube.client import SERVERS_EXTENSION, Client
from nanokube.store.etcd_cluster import EtcdCluster, etcd_binary

pytestmark = pytest.mark.skipif(etcd_binary() is None, reason="etcd is not installed")

SVC = "/api/v1/namespaces/default/services"
CM = "/api/v1/namespaces/default/configmaps"
LEASE = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-controller-manager"


def service(name: str, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80}], **spec}}


def kubeconfig_for(base: str, path, server: str, servers: list[str]) -> str:
    """The first server's kubeconfig, pointed at `server`, naming every server for failover."""
    cfg = yaml.safe_load(open(base))
    cluster = cfg["clusters"][0]["cluster"]
    cluster["server"] = server
    cluster["extensions"] = [{"name": SERVERS_EXTENSION, "extension": {"servers": servers}}]
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


async def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = await check()
            if result:
                return result
        except Exception:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def test_migrate_keeps_objects_uids_and_allocations(tmp_path):
    data = tmp_path / "data"
    sqlite_server = ApiServerProcess(data).start()
    try:
        async def make():
            async with Client.from_kubeconfig(sqlite_server.kubeconfig) as c:
                return [await c.create(SVC, service(f"s{i}", type="NodePort")) for i in range(3)]
        before = asyncio.run(make())
    finally:
        sqlite_server.stop()
    with EtcdCluster(tmp_path / "etcd") as etcd:
        out = subprocess.run([sys.executable, "-m", "nanokube", "migrate", "--data-dir", str(data),
                              "--store", etcd.url], capture_output=True, text=True, cwd=ROOT)
        assert out.returncode == 0, out.stderr
        assert "allocation claims created" in out.stdout
        again = subprocess.run([sys.executable, "-m", "nanokube", "migrate", "--data-dir",
                                str(data), "--store", etcd.url], capture_output=True, text=True,
                               cwd=ROOT)
        assert again.returncode == 1 and "already holds objects" in again.stderr
        server = ApiServerProcess(data, sqlite_server.port, ["--store", etcd.url]).start()
        try:
            async def check():
                async with Client.from_kubeconfig(server.kubeconfig) as c:
                    for svc in before:
                        now = await c.get(f"{SVC}/{svc['metadata']['name']}")
                        assert now["metadata"]["uid"] == svc["metadata"]["uid"]
                        assert now["spec"] == svc["spec"]
                    fresh = await c.create(SVC, service("fresh", type="NodePort"))
                    taken = {s["spec"]["clusterIP"] for s in before}
                    ports = {s["spec"]["ports"][0]["nodePort"] for s in before}
                    assert fresh["spec"]["clusterIP"] not in taken
                    assert fresh["spec"]["ports"][0]["nodePort"] not in ports
                    clash = service("clash", clusterIP=before[0]["spec"]["clusterIP"])
                    with pytest.raises(Exception, match="provided IP is already allocated"):
                        await c.create(SVC, clash)
            asyncio.run(check())
        finally:
            server.stop()


@pytest.fixture(scope="module")
def ha_cluster(tmp_path_factory):
    """3 etcd members, 3 API servers, 3 controller-managers with short leader election."""
    tmp = tmp_path_factory.mktemp("ha")
    etcd = EtcdCluster(tmp / "etcd", members=3).start()
    servers, managers = [], []
    try:
        data = tmp / "data"
        store = ["--store", etcd.url, "--service-cluster-ip-range", "10.96.0.0/21"]
        servers.append(ApiServerProcess(data, extra=store).start())   # makes the shared PKI
        servers += [ApiServerProcess(data, extra=store).start() for _ in range(2)]
        urls = [s.url for s in servers]
        for i, s in enumerate(servers):
            cfg = kubeconfig_for(s.kubeconfig, tmp / f"kubeconfig-{i}", urls[i],
                                 urls[i:] + urls[:i])
            log = tmp / f"cm-{i}.log"
            proc = subprocess.Popen(
                [sys.executable, "-m", "nanokube", "controller-manager", "--kubeconfig", cfg,
                 "--leader-elect", "--leader-elect-lease-duration", "3",
                 "--leader-elect-renew-deadline", "2", "--leader-elect-retry-period", "0.5"],
                stdout=open(log, "ab"), stderr=subprocess.STDOUT, cwd=ROOT)
            managers.append((proc, log))
        client_cfg = kubeconfig_for(servers[0].kubeconfig, tmp / "kubeconfig", urls[0], urls)
        yield {"etcd": etcd, "servers": servers, "managers": managers, "kubeconfig": client_cfg,
               "tmp": tmp}
    finally:
        for proc, _ in managers:
            if proc.poll() is None:
                proc.terminate()
        for proc, _ in managers:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for s in servers:
            s.stop()
        etcd.stop()


def leader_index(managers) -> list[int]:
    return [i for i, (proc, log) in enumerate(managers)
            if proc.poll() is None and "became leader" in log.read_text()]


def test_thousand_concurrent_creates_get_distinct_cluster_ips(ha_cluster):
    servers = ha_cluster["servers"]

    async def run():
        clients = [Client.from_kubeconfig(s.kubeconfig, servers=[]) for s in servers]
        for c, s in zip(clients, servers):
            c.server = c.servers[0] = s.url
        sem = asyncio.Semaphore(48)

        async def one(i: int):
            async with sem:
                return await clients[i % 3].create(SVC, service(f"many-{i:04d}"))
        try:
            made = await asyncio.gather(*(one(i) for i in range(1000)))
            listed = (await clients[1].list(SVC, labelSelector=""))["items"]
        finally:
            for c in clients:
                await c.close()
        return made, listed

    made, listed = asyncio.run(run())
    ips = [svc["spec"]["clusterIP"] for svc in made]
    assert len(set(ips)) == 1000
    stored = {s["metadata"]["name"]: s["spec"]["clusterIP"] for s in listed}
    assert len(set(stored.values())) == len(stored) >= 1000


def test_killing_the_leading_server_moves_the_controllers_and_loses_no_write(ha_cluster):
    managers, servers = ha_cluster["managers"], ha_cluster["servers"]

    async def run():
        async with Client.from_kubeconfig(ha_cluster["kubeconfig"]) as c:
            await wait_for(lambda: asyncio.sleep(0, len(leader_index(managers)) == 1), 30,
                           "one leading controller-manager")
            holder = (await c.get(LEASE))["spec"]["holderIdentity"]
            # the controllers run: a Service gets its EndpointSlice
            await c.create(SVC, service("before"))
            await wait_for(lambda: c.list("/apis/discovery.k8s.io/v1/namespaces/default/"
                                          "endpointslices",
                                          labelSelector="kubernetes.io/service-name=before"),
                           30, "an EndpointSlice")
            acked: dict[str, str] = {}
            writing = True

            async def writer():
                i = 0
                while writing:
                    name = f"w-{i}"
                    try:
                        await c.create(CM, {"apiVersion": "v1", "kind": "ConfigMap",
                                            "metadata": {"name": name}, "data": {"i": str(i)}})
                        acked[name] = str(i)
                    except Exception:
                        pass   # not acknowledged: may or may not be there
                    i += 1
                    await asyncio.sleep(0.01)
            task = asyncio.create_task(writer())
            await asyncio.sleep(1)
            lead = leader_index(managers)[0]
            managers[lead][0].send_signal(signal.SIGKILL)   # the leader's whole control plane
            managers[lead][0].wait(10)
            servers[lead].stop(signal.SIGKILL)
            t0 = time.monotonic()

            async def new_holder():
                spec = (await c.get(LEASE))["spec"]
                return spec["holderIdentity"] not in ("", holder)
            await wait_for(new_holder, 20, "another controller-manager to take the Lease")
            moved = time.monotonic() - t0
            await c.create(SVC, service("after"))
            await wait_for(lambda: c.list("/apis/discovery.k8s.io/v1/namespaces/default/"
                                          "endpointslices",
                                          labelSelector="kubernetes.io/service-name=after"),
                           30, "an EndpointSlice from the new leader")
            await asyncio.sleep(1)
            writing = False
            await task
            stored = {cm["metadata"]["name"]: cm["data"]["i"]
                      for cm in (await c.list(CM))["items"] if cm["metadata"]["name"].startswith("w-")}
            return moved, acked, stored

    moved, acked, stored = asyncio.run(run())
    assert moved < 10, f"the controllers took {moved:.1f}s to move"
    assert len(acked) > 20
    missing = {k: v for k, v in acked.items() if stored.get(k) != v}
    assert not missing, f"acknowledged writes lost: {sorted(missing)[:10]}"
