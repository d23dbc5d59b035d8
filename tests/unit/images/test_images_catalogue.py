"""container_argv: Kubernetes' command/args rules over the built-in image catalogue."""
from __future__ import annotations

import shutil
import sys

import pytest

from nanokube.images import CommandNotFound, UnknownImage, container_argv, lookup, parse_image

AGNHOST = [sys.executable, "-m", "nanokube.images.agnhost"]
ECHOSERVER = [sys.executable, "-m", "nanokube.images.echoserver"]
NGINX = [sys.executable, "-m", "nanokube.images.nginx"]
SH = shutil.which("sh")


@pytest.mark.parametrize("image,expected", [
    ("nginx", ("docker.io", "library/nginx")),
    ("nginx:1.25", ("docker.io", "library/nginx")),
    ("docker.io/library/nginx:latest", ("docker.io", "library/nginx")),
    ("registry.k8s.io/e2e-test-images/agnhost:2.47", ("registry.k8s.io", "e2e-test-images/agnhost")),
    ("k8s.gcr.io/e2e-test-images/agnhost:2.20@sha256:" + "a" * 64,
     ("k8s.gcr.io", "e2e-test-images/agnhost")),
    ("localhost:5000/team/app:v1", ("localhost:5000", "team/app")),
    ("bitnami/nginx", ("docker.io", "bitnami/nginx")),
])
def test_parse_image(image, expected):
    assert parse_image(image) == expected


@pytest.mark.parametrize("image,name", [
    ("registry.k8s.io/e2e-test-images/agnhost:2.47", "agnhost"),
    ("k8s.gcr.io/e2e-test-images/agnhost:2.20", "agnhost"),
    ("gcr.io/k8s-staging-ingressconformance/echoserver:v20221109-7ee2f3e", "echoserver"),
    ("gcr.io/k8s-staging-gateway-api/echo-basic:v20231214-v1.0.0-140-gf544a46e", "echoserver"),
    ("nginx", "nginx"), ("nginx:1.25", "nginx"), ("docker.io/library/nginx", "nginx"),
    ("mirror.gcr.io/library/nginx:1.27-alpine", "nginx"),
    ("registry.k8s.io/e2e-test-images/nginx:1.14-4", "nginx"),
    ("busybox", "busybox"), ("busybox:1.36", "busybox"),
    ("registry.k8s.io/e2e-test-images/busybox:1.36.1-1", "busybox"),
    ("alpine:3.20", "alpine"), ("python:3.12-slim", "python"), ("debian:12", "debian"),
    ("ubuntu:24.04", "ubuntu"), ("registry.k8s.io/pause:3.9", "pause"),
])
def test_lookup_matches_by_repository(image, name):
    assert lookup(image).name == name


@pytest.mark.parametrize("image", ["registry.k8s.io/echoserver:1.10", "foo/bar:1", "redis",
                                   "example.com/agnhost-fork/tool"])
def test_lookup_unknown(image):
    assert lookup(image) is None


# ---- agnhost -----------------------------------------------------------------------------------

def test_agnhost_defaults_to_pause():
    assert container_argv("registry.k8s.io/e2e-test-images/agnhost:2.47", None, None) == \
        [*AGNHOST, "pause"]


def test_agnhost_args_replace_cmd():
    argv = container_argv("registry.k8s.io/e2e-test-images/agnhost:2.47", None,
                          ["netexec", "--http-port=8080", "--udp-port=8081"])
    assert argv == [*AGNHOST, "netexec", "--http-port=8080", "--udp-port=8081"]


def test_agnhost_command_slash_agnhost_is_our_program():
    argv = container_argv("k8s.gcr.io/e2e-test-images/agnhost:2.20", ["/agnhost", "serve-hostname"],
                          ["--port", "9376"])
    assert argv == [*AGNHOST, "serve-hostname", "--port", "9376"]


def test_agnhost_command_without_args_drops_cmd():
    # a command replaces ENTRYPOINT and, with no args, the image's CMD ("pause") is not used
    assert container_argv("registry.k8s.io/e2e-test-images/agnhost:2.47", ["/agnhost"], None) == \
        AGNHOST


def test_agnhost_with_a_shell_command_runs_the_host_shell():
    argv = container_argv("registry.k8s.io/e2e-test-images/agnhost:2.47",
                          ["/bin/sh", "-c", "echo hi"], None)
    assert argv == ["/bin/sh", "-c", "echo hi"]


def test_empty_lists_count_as_not_given():
    assert container_argv("registry.k8s.io/e2e-test-images/agnhost:2.47", [], []) == \
        [*AGNHOST, "pause"]


# ---- echoserver, nginx, pause ------------------------------------------------------------------

def test_echoserver_default():
    assert container_argv("gcr.io/k8s-staging-ingressconformance/echoserver:v1", None, None) == \
        ECHOSERVER


def test_nginx_default_keeps_nginx_flags():
    assert container_argv("nginx:1.25", None, None) == [*NGINX, "-g", "daemon off;"]


def test_nginx_args_naming_nginx_debug():
    assert container_argv("nginx", None, ["nginx-debug", "-g", "daemon off;"]) == \
        [*NGINX, "-g", "daemon off;"]


def test_nginx_image_with_a_shell_command():
    assert container_argv("nginx", ["sh", "-c", "sleep 1"], None) == [SH, "-c", "sleep 1"]


def test_pause_image():
    assert container_argv("registry.k8s.io/pause:3.9", None, None) == AGNHOST


# ---- shell images ------------------------------------------------------------------------------

def test_busybox_default_cmd_is_sh():
    assert container_argv("busybox", None, None) == [SH]


def test_busybox_command_and_args():
    assert container_argv("busybox:1.36", ["sh", "-c"], ["echo hello"]) == [SH, "-c", "echo hello"]


def test_busybox_args_only_are_the_command():
    # no ENTRYPOINT: args replace CMD and so are the whole command line
    assert container_argv("busybox", None, ["sleep", "3600"]) == [shutil.which("sleep"), "3600"]


def test_alpine_default():
    assert container_argv("alpine:3.20", None, None) == ["/bin/sh"]


@pytest.mark.parametrize("name", ["python", "python3", "/usr/local/bin/python", "/usr/bin/python3"])
def test_python_is_our_interpreter(name):
    assert container_argv("python:3.12", [name, "-c", "print(1)"], None) == \
        [sys.executable, "-c", "print(1)"]


def test_python_default_cmd():
    assert container_argv("python:3.12-slim", None, None) == [sys.executable]


def test_absolute_command_is_kept():
    assert container_argv("debian:12", ["/bin/sh", "-c", "true"], None) == ["/bin/sh", "-c", "true"]


# ---- unknown images and missing programs -------------------------------------------------------

def test_unknown_image_without_command():
    with pytest.raises(UnknownImage) as caught:
        container_argv("foo/bar:1", None, ["--flag"])
    message = str(caught.value)
    assert message.startswith('image "foo/bar:1" is not in nanokube\'s built-in catalogue (')
    assert "agnhost" in message and "busybox" in message
    assert message.endswith("set command to run a host program")


def test_unknown_image_with_command_runs_it():
    assert container_argv("example.com/tool:1", ["sleep"], ["5"]) == [shutil.which("sleep"), "5"]


def test_command_not_on_path():
    with pytest.raises(CommandNotFound) as caught:
        container_argv("busybox", ["no-such-program-xyz"], None)
    assert str(caught.value) == 'exec: "no-such-program-xyz": executable file not found in $PATH'
    assert isinstance(caught.value, UnknownImage)        # the runtime catches one exception type


def test_absolute_command_missing():
    with pytest.raises(CommandNotFound, match="no such file or directory"):
        container_argv("busybox", ["/no/such/program"], None)


# ---- agnhost's flag syntax ---------------------------------------------------------------------

def test_parse_flags_pflag_forms():
    from nanokube.images.flags import parse_flags
    spec = {"port": 9376, "http": True, "udp": False, "name": ""}
    assert parse_flags(["--port=80", "--udp", "-name", "x", "--http=false", "--sctp-port=1"],
                       spec) == {"port": 80, "http": False, "udp": True, "name": "x"}
    assert parse_flags(["--port", "81"], spec)["port"] == 81
    assert parse_flags([], spec) == spec


@pytest.mark.parametrize("argv,message", [
    (["--port=x"], 'invalid argument "x" for "--port" flag'),
    (["--port"], "flag needs an argument: --port"),
    (["--udp=maybe"], 'invalid argument "maybe" for "--udp" flag')])
def test_parse_flags_errors(argv, message):
    from nanokube.images.flags import UsageError, parse_flags
    with pytest.raises(UsageError, match=message):
        parse_flags(argv, {"port": 1, "udp": False})
