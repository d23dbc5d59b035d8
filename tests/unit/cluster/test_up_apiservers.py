"""`nanokube up --api-servers N`: the flag's checks, each server's addresses and arguments,
and the kubeconfigs that name every server for failover (no root: nothing is started)."""
import yaml

from nanokube.cli.main import build_parser
from nanokube.client import load_kubeconfig
from nanokube.cluster import apiservers, lifecycle, network

ETCD = "etcd://127.0.0.1:2379"


def test_more_than_one_server_needs_etcd_and_at_most_three():
    assert apiservers.check(1, None) is None
    assert apiservers.check(3, ETCD) is None
    assert "needs --store etcd://" in apiservers.check(2, None)
    assert "between 1 and 3" in apiservers.check(4, ETCD)
    assert "between 1 and 3" in apiservers.check(0, ETCD)


def test_up_refuses_before_touching_anything(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("NANOKUBE_HOME", str(tmp_path))
    args = build_parser().parse_args(["--name", "x", "up", "--api-servers", "2"])
    assert lifecycle.up(args) == 1
    assert "--api-servers=2 needs --store etcd://" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_up_flags_default_to_one_server_and_no_timings():
    args = build_parser().parse_args(["up"])
    assert args.api_servers == 1
    assert args.leader_elect_lease_duration is None
    assert args.endpoint_reconciler_lease_duration is None


def test_servers_take_lan_addresses_one_to_three_and_spaced_loopback_ports():
    net = network.plan("c", 4, 2)
    servers = apiservers.plan(net, 3)
    assert [s.lan_ip for s in servers] == ["10.123.4.1", "10.123.4.2", "10.123.4.3"]
    assert [s.local_port for s in servers] == [6447, 6703, 6959]
    assert [s.key for s in servers] == ["apiserver", "apiserver-2", "apiserver-3"]
    assert servers[2].manager_key == "controller-manager-3"
    assert servers[1].to_dict() == {"name": "apiserver-2", "lan": "https://10.123.4.2:6443",
                                    "local": "https://127.0.0.1:6703"}
    args = apiservers.server_args(servers, servers[1], ["--store", ETCD], 3.0)
    assert args[:6] == ["--listen", "10.123.4.2:6443", "--listen", "127.0.0.1:6703",
                        "--advertise-address", "10.123.4.2"]
    assert args.count("--tls-san") == 3 and "10.123.4.3" in args
    assert args[-2:] == ["--endpoint-reconciler-lease-duration", "3.0"]
    assert "--endpoint-reconciler-lease-duration" not in apiservers.server_args(
        servers, servers[0], [], None)


def test_controller_managers_are_elected_with_the_given_timings():
    args = build_parser().parse_args(["up", "--leader-elect-lease-duration", "3",
                                      "--leader-elect-retry-period", "0.5"])
    assert apiservers.manager_args(args) == ["--leader-elect", "--leader-elect-lease-duration",
                                             "3.0", "--leader-elect-retry-period", "0.5"]


def _base_kubeconfig(cdir):
    (cdir / "data").mkdir(parents=True)
    (cdir / "data" / "kubeconfig").write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "x",
        "clusters": [{"name": "x", "cluster": {"server": "https://10.123.4.1:6443"}}],
        "users": [{"name": "x", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "x", "user": "x"}}]}))


def test_every_kubeconfig_names_all_servers_own_first(tmp_path):
    net = network.plan("c", 4, 2)
    servers = apiservers.plan(net, 3)
    _base_kubeconfig(tmp_path)
    lifecycle._write_kubeconfigs(tmp_path, "c", net, servers)
    user = load_kubeconfig(str(tmp_path / "kubeconfig"))
    assert user.server == "https://127.0.0.1:6447"
    assert user.servers == ("https://127.0.0.1:6447", "https://127.0.0.1:6703",
                            "https://127.0.0.1:6959")
    agent = load_kubeconfig(str(tmp_path / "agent-kubeconfig"))
    assert agent.servers == ("https://10.123.4.1:6443", "https://10.123.4.2:6443",
                             "https://10.123.4.3:6443")
    third = load_kubeconfig(str(tmp_path / "controller-manager-3.kubeconfig"))
    assert third.servers == ("https://127.0.0.1:6959", "https://127.0.0.1:6447",
                             "https://127.0.0.1:6703")


def test_one_server_kubeconfigs_have_no_extension(tmp_path):
    net = network.plan("c", 4, 2)
    _base_kubeconfig(tmp_path)
    lifecycle._write_kubeconfigs(tmp_path, "c", net)
    cfg = yaml.safe_load((tmp_path / "kubeconfig").read_text())
    assert "extensions" not in cfg["clusters"][0]["cluster"]
    assert cfg["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:6447"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["agent-kubeconfig", "data",
                                                           "kubeconfig"]
