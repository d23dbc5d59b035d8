import subprocess
import sys

from nanokube.cli.main import SUBCOMMANDS, build_parser, register


def test_global_options_before_or_after_the_verb():
    p = build_parser()
    a = p.parse_args(["-n", "kube-system", "get", "svc"])
    assert (a.namespace, a.kind, a.name, a.cluster_name) == ("kube-system", "svc", None,
                                                              "default")
    b = p.parse_args(["get", "svc", "web", "-n", "x", "--name", "lab", "-o", "wide"])
    assert (b.namespace, b.name, b.cluster_name, b.output) == ("x", "web", "lab", "wide")


def test_server_options_and_defaults():
    p = build_parser()
    a = p.parse_args(["server", "--data-dir", "/d"])
    assert a.listen == ["127.0.0.1:6443"]
    assert (a.service_cluster_ip_range, a.service_node_port_range, a.advertise_address) == \
        ("10.96.0.0/12", "30000-32767", None)
    b = p.parse_args(["server", "--data-dir", "/d", "--listen", "0.0.0.0:1",
                      "--listen", "[::1]:2"])
    assert b.listen == ["0.0.0.0:1", "[::1]:2"]
    assert SUBCOMMANDS["server"].target == "nanokube.api.server:main"


def test_delete_wait_flag():
    p = build_parser()
    assert p.parse_args(["delete", "svc", "a", "b"]).names == ["a", "b"]
    assert p.parse_args(["delete", "svc", "a", "--wait=false"]).wait is False
    assert p.parse_args(["delete", "-f", "x.yaml"]).wait is True


def test_register_adds_a_subcommand(monkeypatch):
    monkeypatch.setitem(SUBCOMMANDS, "noop", SUBCOMMANDS["kubeconfig"])
    monkeypatch.setitem(SUBCOMMANDS, "up", SUBCOMMANDS["up"])   # the real one comes back after
    register("up", "start a cluster", "nanokube.up:main",
             lambda p: p.add_argument("--nodes", type=int, default=1))
    assert build_parser().parse_args(["up", "--nodes", "2"]).nodes == 2
    assert SUBCOMMANDS["up"].target == "nanokube.up:main"


def test_help_imports_nothing_heavy():
    code = ("import sys\nfrom nanokube.cli.main import build_parser\nbuild_parser().format_help()\n"
            "print(sorted(m for m in ('aiohttp', 'yaml', 'nanokube.client', 'uvloop') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_python_dash_m_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "nanokube", "--help"], capture_output=True,
                         text=True, check=True)
    assert "usage: nanokube" in out.stdout and "apply" in out.stdout
