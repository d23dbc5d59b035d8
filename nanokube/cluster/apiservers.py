"""Several API servers for `nanokube up --store etcd://... --api-servers N` (docs/etcd.md).

Server j (1-based) listens on the cluster's LAN at 10.123.<k>.<j> (the first is the usual host
address .1; .2 and .3 are added to the LAN bridge nk<k>) and on 127.0.0.1:<6443 + k + 256(j-1)>.
All share the cluster's data dir, so one CA, one serving certificate (naming every server's
address) and one set of service-account keys serve them all. Each has its own controller-manager
with --leader-elect, so exactly one of each controller runs; every kubeconfig names all servers
in the `nanokube.io/servers` extension for failover (the controller-manager's own server first).
"""
from __future__ import annotations

from dataclasses import dataclass

MAX_API_SERVERS = 3
PORT_STRIDE = 256          # more clusters than this never share a machine (indexes < 250)
API_PORT = 6443


@dataclass(frozen=True)
class ApiServerPlan:
    number: int            # 1-based
    lan_ip: str            # 10.123.<k>.<number>
    local_port: int

    @property
    def key(self) -> str:
        """Its name in cluster.json's pids and logs/: apiserver, apiserver-2, ..."""
        return "apiserver" if self.number == 1 else f"apiserver-{self.number}"

    @property
    def manager_key(self) -> str:
        return "controller-manager" if self.number == 1 else f"controller-manager-{self.number}"

    @property
    def lan_url(self) -> str:
        return f"https://{self.lan_ip}:{API_PORT}"

    @property
    def local_url(self) -> str:
        return f"https://127.0.0.1:{self.local_port}"

    def to_dict(self) -> dict:
        return {"name": self.key, "lan": self.lan_url, "local": self.local_url}


def check(count: int, store: str | None) -> str | None:
    """The error for a bad --api-servers, in the words of a flag check; None when fine."""
    if not 1 <= count <= MAX_API_SERVERS:
        return f"invalid argument {count} for --api-servers: must be between 1 and " \
               f"{MAX_API_SERVERS}"
    if count > 1 and not (store or "").startswith("etcd://"):
        return f"--api-servers={count} needs --store etcd://HOST:PORT[,...]: several API " \
               "servers share one etcd (SQLite is one server's own file)"
    return None


def plan(net, count: int) -> list[ApiServerPlan]:
    base = net.host_ip.rpartition(".")[0]
    return [ApiServerPlan(j, f"{base}.{j}", API_PORT + net.index + PORT_STRIDE * (j - 1))
            for j in range(1, count + 1)]


def rotated(urls: list[str], j: int) -> list[str]:
    """Server j's own URL first, then the others in order."""
    return urls[j - 1:] + urls[:j - 1]


def server_args(servers: list[ApiServerPlan], me: ApiServerPlan, store_args: list[str],
                lease_duration: float | None) -> list[str]:
    args = ["--listen", f"{me.lan_ip}:{API_PORT}", "--listen", f"127.0.0.1:{me.local_port}",
            "--advertise-address", me.lan_ip, *store_args]
    for s in servers:   # one certificate for all: no server reissues it for its own address
        args += ["--tls-san", s.lan_ip]
    if lease_duration:
        args += ["--endpoint-reconciler-lease-duration", str(lease_duration)]
    return args


def manager_args(args) -> list[str]:
    """--leader-elect and the timings `up` was given."""
    out = ["--leader-elect"]
    for flag in ("lease_duration", "renew_deadline", "retry_period"):
        value = getattr(args, f"leader_elect_{flag}", None)
        if value:
            out += [f"--leader-elect-{flag.replace('_', '-')}", str(value)]
    return out
