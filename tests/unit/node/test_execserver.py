"""The agent's exec endpoint: the channel.k8s.io WebSocket protocol, exit codes as Status,
stdin with the v5 close signal, a TTY with resize, and who may connect. The command runs
without entering namespaces here (no root needed)."""
import json
import asyncio
import os
import subprocess

import aiohttp

from nanokube.node.execserver import (ExecServer, PROTOCOLS, api_server_addresses,
                                      pid_from_state)
from nanokube.node.httpserver import HTTPServer, Router
from nanokube.node.logserver import ContainerLog

CONTAINER = {"pid": os.getpid()}     # the "container" whose environment the command gets


def find_pid(namespace, pod, container):
    if (namespace, pod, container) == ("default", "p", "c"):
        return CONTAINER["pid"]
    return f'container not found ("{container}")'


def plain(pid, command):
    return command


class Client:
    """An aiohttp client for an ExecServer on an ephemeral port; close() stops both."""

    def __init__(self, server: HTTPServer):
        self.server = server
        self.session = aiohttp.ClientSession(f"http://127.0.0.1:{server.addresses[0][1]}")

    def get(self, *args, **kw):
        return self.session.get(*args, **kw)

    def ws_connect(self, *args, **kw):
        return self.session.ws_connect(*args, **kw)

    async def close(self):
        await self.session.close()
        await self.server.close()


async def client_for(allowed=frozenset({"127.0.0.1"})) -> Client:
    router = Router()
    ExecServer(find_pid, allowed, enter=plain).add_routes(router)
    server = HTTPServer(router, "127.0.0.1", 0)
    await server.start()
    return Client(server)


def params(*command, stdin=False, tty=False, stderr=True):
    return [("command", c) for c in command] + [
        ("stdin", str(stdin).lower()), ("stdout", "true"), ("stderr", str(stderr).lower()),
        ("tty", str(tty).lower())]


async def session(client, command, send=(), protocols=PROTOCOLS, **kw):
    """Run one exec: the messages the server sent, per channel, and the protocol."""
    out: dict[int, bytes] = {}
    ws = await client.ws_connect("/exec/default/p/c", params=params(*command, **kw),
                                 protocols=protocols)
    for message in send:
        await ws.send_bytes(message)
    async for msg in ws:
        assert msg.type == aiohttp.WSMsgType.BINARY
        out[msg.data[0]] = out.get(msg.data[0], b"") + msg.data[1:]
    return out, ws.protocol


async def test_stdout_stderr_and_success_status():
    client = await client_for()
    try:
        out, proto = await session(client, ["sh", "-c", "echo out; echo err >&2"])
    finally:
        await client.close()
    assert proto == "v5.channel.k8s.io"
    assert out[1] == b"out\n" and out[2] == b"err\n"
    assert json.loads(out[3]) == {"metadata": {}, "status": "Success"}


async def test_exit_code_becomes_a_failure_status():
    client = await client_for()
    try:
        out, _ = await session(client, ["sh", "-c", "exit 3"], protocols=["v4.channel.k8s.io"])
    finally:
        await client.close()
    status = json.loads(out[3])
    assert status["status"] == "Failure" and status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    assert status["message"] == ("command terminated with non-zero exit code: error executing "
                                 "command [sh -c exit 3], exit code 3")


async def test_stdin_and_the_v5_close_signal():
    client = await client_for()
    try:
        out, _ = await session(client, ["cat"], stdin=True,
                               send=[b"\x00hello ", b"\x00world\n", b"\xff\x00"])
    finally:
        await client.close()
    assert out[1] == b"hello world\n"
    assert json.loads(out[3])["status"] == "Success"


async def test_container_environment_is_used():
    container = subprocess.Popen(["sleep", "30"], env={"NK_EXEC_TEST": "from-container"})
    CONTAINER["pid"] = container.pid
    for _ in range(200):   # until the exec: before it, /proc/PID/environ is still the parent's
        with open(f"/proc/{container.pid}/environ", "rb") as f:
            if b"NK_EXEC_TEST=" in f.read():
                break
        await asyncio.sleep(0.01)
    client = await client_for()
    try:
        out, _ = await session(client, ["sh", "-c", "echo $NK_EXEC_TEST"])
    finally:
        await client.close()
        CONTAINER["pid"] = os.getpid()
        container.kill()
        container.wait()
    assert out[1] == b"from-container\n"


async def test_tty_with_resize():
    client = await client_for()
    try:
        resize = b"\x04" + json.dumps({"Width": 101, "Height": 33}).encode()
        # wait for the resize to arrive before asking the terminal its size
        script = "read line; stty size; test -t 0 && echo tty; echo e >&2; exit 2"
        out, _ = await session(client, ["sh", "-c", script], stdin=True, tty=True,
                               stderr=False, send=[resize, b"\x00go\n"])
    finally:
        await client.close()
    text = out[1].replace(b"\r\n", b"\n")
    assert b"33 101\n" in text and b"tty\n" in text and b"e\n" in text   # stderr merged
    assert 2 not in out
    assert json.loads(out[3])["details"]["causes"][0]["message"] == "2"


async def test_refusals():
    client = await client_for()
    try:
        r = await client.get("/exec/default/p/wrong", params=params("true"))
        assert r.status == 404 and await r.text() == 'container not found ("wrong")\n'
        r = await client.get("/exec/default/p/c", params=params("true"))
        assert r.status == 400 and "Upgrade request required" in await r.text()
        r = await client.get("/exec/default/p/c", params=[("stdout", "true")])
        assert r.status == 400 and "at least 1 command" in await r.text()
        try:
            await client.ws_connect("/exec/default/p/c", params=params("true"),
                                    protocols=["base64.channel.k8s.io"])
            raise AssertionError("accepted an unknown protocol")
        except aiohttp.WSServerHandshakeError as e:
            assert e.status == 400
    finally:
        await client.close()
    # only the API server's LAN address may exec
    client = await client_for(allowed=frozenset({"10.123.0.1"}))
    try:
        r = await client.get("/exec/default/p/c", params=params("true"))
        assert r.status == 403
    finally:
        await client.close()


async def test_client_going_away_ends_the_command(tmp_path):
    marker = tmp_path / "pid"
    client = await client_for()
    try:
        ws = await client.ws_connect("/exec/default/p/c", protocols=PROTOCOLS, params=params(
            "sh", "-c", f"echo $$ > {marker}; echo started; exec sleep 60"))
        while b"started" not in (await ws.receive()).data:
            pass
        await ws.close()
        pid = int(marker.read_text())
        for _ in range(100):
            if not os.path.exists(f"/proc/{pid}") or \
                    open(f"/proc/{pid}/stat").read().split(")")[1].split()[0] == "Z":
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the command still runs")
    finally:
        await client.close()


def test_api_server_address_and_pid_from_state(tmp_path):
    # .1, and .2/.3 of `up --api-servers 3`: each API server may exec
    assert api_server_addresses("10.123.4.12") == {"10.123.4.1", "10.123.4.2", "10.123.4.3"}
    pod = tmp_path / "pods" / "uid"
    (pod / "logs").mkdir(parents=True)
    (pod / "state.json").write_text(json.dumps({"containers": [
        {"name": "c", "pid": os.getpid(), "startTicks": None}]}))
    running = [True]

    def find_log(namespace, name, container):
        if container != "c":
            return f"container {container} is not valid for pod {name}"
        return ContainerLog(pod / "logs" / "c.log", pod / "logs" / "c.log.previous",
                            lambda: running[0])
    find = pid_from_state(find_log)
    assert find("default", "p", "c") == os.getpid()
    assert find("default", "p", "x") == "container x is not valid for pod p"
    running[0] = False
    assert find("default", "p", "c") == 'container not found ("c")'
