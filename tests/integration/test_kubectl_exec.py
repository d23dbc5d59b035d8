"""`kubectl exec` against a real cluster: the API server proxies the WebSocket to the node
agent, which runs the command in the container's namespaces."""
from __future__ import annotations

import asyncio
import json
import os
import ssl
from pathlib import Path

import aiohttp
import pytest
import yaml

from harness import leftovers
from test_cluster import AGNHOST, Cluster

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")

POD = "exec-target"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("exec"))
    c.name = f"x{os.getpid() % 100000}"
    try:
        c.nk("up", "--nodes", "1", timeout=60)
        c.kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": POD},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                "name": "main", "image": AGNHOST, "env": [{"name": "GREETING", "value": "hej"}],
                "args": ["netexec", "--http-port=8080", "--udp-port=-1"]}]}}))
        c.kubectl("wait", "--for=condition=Ready", f"pod/{POD}", "--timeout=30s")
        yield c
    finally:
        c.nk("down", check=False)
    assert leftovers(c.name) == []


def test_exec_runs_in_the_container(cluster):
    out = cluster.kubectl("exec", POD, "--", "hostname")
    assert out.stdout == f"{POD}\n"
    # the container's environment and its network namespace (its own pod IP)
    out = cluster.kubectl("exec", POD, "--", "sh", "-c", "echo $GREETING; ip -o -4 addr show eth0")
    pod_ip = cluster.get("pod", POD)["status"]["podIP"]
    assert out.stdout.startswith("hej\n") and f" {pod_ip}/" in out.stdout


def test_exit_code_and_stderr(cluster):
    out = cluster.kubectl("exec", POD, "--", "sh", "-c", "echo oops >&2; exit 3", check=False)
    assert out.returncode == 3
    assert out.stderr == "oops\ncommand terminated with exit code 3\n"


def test_stdin(cluster):
    out = cluster.kubectl("exec", "-i", POD, "--", "cat", input="hi\n")
    assert out.stdout == "hi\n"
    big = "".join(f"line {i}\n" for i in range(50000))       # many messages each way
    out = cluster.kubectl("exec", "-i", POD, "--", "cat", input=big)
    assert out.stdout == big


def test_missing_command(cluster):
    out = cluster.kubectl("exec", POD, "--", "no-such-command", check=False)
    assert out.returncode == 127 and "no-such-command" in out.stderr


def test_wrong_container(cluster):
    out = cluster.kubectl("exec", POD, "-c", "wrong", "--", "true", check=False)
    assert out.returncode == 1
    assert out.stderr.strip() == \
        f"Error from server (BadRequest): container wrong is not valid for pod {POD}"


def test_tty_through_a_websocket(cluster):
    """What `kubectl exec -it` does, spoken directly: a terminal, resized, stderr merged."""
    kubeconfig = yaml.safe_load((Path(cluster.env["NANOKUBE_HOME"]) / cluster.name /
                                 "kubeconfig").read_text())
    server = kubeconfig["clusters"][0]["cluster"]["server"]
    user = kubeconfig["users"][0]["user"]
    home = Path(cluster.env["NANOKUBE_HOME"]) / cluster.name

    def material(key: str, name: str) -> str:
        import base64
        path = home / name
        path.write_bytes(base64.b64decode(user.get(key) or
                                          kubeconfig["clusters"][0]["cluster"][key]))
        return str(path)

    ctx = ssl.create_default_context(cafile=material("certificate-authority-data", "t-ca.crt"))
    headers = {}
    if user.get("token"):
        headers["Authorization"] = f"Bearer {user['token']}"
    else:
        ctx.load_cert_chain(material("client-certificate-data", "t-client.crt"),
                            material("client-key-data", "t-client.key"))

    async def run() -> dict[int, bytes]:
        url = f"{server}/api/v1/namespaces/default/pods/{POD}/exec"
        params = [("command", "sh"), ("command", "-c"),
                  ("command", "read x; stty size; echo e >&2; exit 4"),
                  ("stdin", "true"), ("stdout", "true"), ("tty", "true")]
        out: dict[int, bytes] = {}
        async with aiohttp.ClientSession(headers=headers) as session:
            async with session.ws_connect(url, params=params, ssl=ctx, protocols=[
                    "v5.channel.k8s.io", "v4.channel.k8s.io"]) as ws:
                assert ws.protocol == "v5.channel.k8s.io"
                await ws.send_bytes(b"\x04" + json.dumps({"Width": 90, "Height": 20}).encode())
                await ws.send_bytes(b"\x00go\n")
                async for msg in ws:
                    out[msg.data[0]] = out.get(msg.data[0], b"") + msg.data[1:]
        return out
    out = asyncio.run(asyncio.wait_for(run(), 20))
    text = out[1].replace(b"\r\n", b"\n")
    assert b"20 90\n" in text and b"e\n" in text
    status = json.loads(out[3])
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "4"}]
