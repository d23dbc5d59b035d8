"""The kubelet's exec endpoint, served with the logs on <node-ip>:10250:

    GET /exec/{namespace}/{pod}/{container}?command=sh&command=-c&command=...
        &stdin=true&stdout=true&stderr=true&tty=false          (a WebSocket upgrade)

The API server proxies `pods/NAME/exec` here. The command runs in the container's network,
UTS and mount namespaces (`nsenter -t <container pid>`) with the container's environment.

The stream protocol is Kubernetes' channel.k8s.io WebSocket protocol: binary messages whose
first byte names the stream, 0 stdin, 1 stdout, 2 stderr, 3 error (the command's outcome),
4 resize (a TTY's {"Width", "Height"}); v5 adds 255, "close the stream named by the next
byte", which is how a client says that stdin ended.
"""
from __future__ import annotations

import asyncio
import errno
import fcntl
import ipaddress
import json
import os
import pty
import signal
import struct
import termios
from typing import TYPE_CHECKING, Callable

from nanokube.node import runtime
from nanokube.node.httpserver import Request, Response, Router

if TYPE_CHECKING:
    from nanokube.node.websocket import WebSocket

V5, V4 = "v5.channel.k8s.io", "v4.channel.k8s.io"
# the subprotocols we speak, preferred first (base64 variants are not offered)
PROTOCOLS = (V5, V4, "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io")
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255

# (namespace, pod, container) -> the container's pid, or a str saying why there is none
PidFinder = Callable[[str, str, str], "int | str"]
# (container pid, command) -> the argv that runs the command inside the container
Enter = Callable[[int, list[str]], list[str]]


def nsenter(pid: int, command: list[str]) -> list[str]:
    """Join the container's namespaces and working directory; nsenter execs the command (it
    forks only to enter a pid namespace), so the process we start is the command itself."""
    return ["nsenter", "-t", str(pid), "--net", "--uts", "--mount", "--wd", "--", *command]


def api_server_addresses(node_ip: str) -> frozenset[str]:
    """The cluster LAN addresses API servers may call from: .1 of the node's /24, and .2, .3
    when `up --api-servers` runs more than one (docs/cluster.md). Nothing else sits there."""
    from nanokube.cluster.apiservers import MAX_API_SERVERS
    net = ipaddress.ip_interface(f"{node_ip}/24").network
    return frozenset(str(net.network_address + j) for j in range(1, MAX_API_SERVERS + 1))


def container_environ(pid: int) -> dict[str, str] | None:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    env = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            env[key.decode(errors="replace")] = value.decode(errors="replace")
    return env


def exit_status(code: int, command: list[str]) -> dict:
    """The metav1.Status the kubelet reports on the error stream (protocol v4 and later)."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure",
            "message": "command terminated with non-zero exit code: error executing command "
                       f"[{' '.join(command)}], exit code {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def failure_status(message: str) -> dict:
    return {"metadata": {}, "status": "Failure", "message": message,
            "reason": "InternalError", "code": 500}


def _bool(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true")


def pid_from_state(find_log) -> PidFinder:
    """A PidFinder over the log server's finder: the pod's state file (pods/<uid>/state.json,
    next to logs/) records each running container's pid and start time."""
    def find(namespace: str, pod: str, container: str) -> int | str:
        found = find_log(namespace, pod, container)
        if isinstance(found, str):
            return found
        missing = f'container not found ("{container}")'
        if not found.running():
            return missing
        try:
            state = json.loads((found.path.parent.parent / "state.json").read_text())
        except (OSError, ValueError):
            return missing
        for c in state.get("containers") or []:
            if c.get("name") == container and runtime.is_alive(int(c["pid"]),
                                                                c.get("startTicks")):
                return int(c["pid"])
        return missing
    return find


class ExecServer:
    def __init__(self, find_pid: PidFinder, allowed_peers: frozenset[str] | None,
                 enter: Enter = nsenter):
        self.find_pid = find_pid
        self.allowed_peers = allowed_peers   # None: anyone (tests)
        self.enter = enter

    def add_routes(self, router: Router) -> None:
        router.add(None, "/exec/{namespace}/{pod}/{container}", self.exec)

    async def exec(self, request: Request) -> Response | WebSocket:
        # Only the API server may exec: it authenticated and authorized the user; a pod on
        # the LAN must not reach into another pod.
        if self.allowed_peers is not None and request.remote not in self.allowed_peers:
            return Response(status=403, text="Forbidden\n")
        m, q = request.match_info, request.query
        command = q.getall("command", [])
        stdin, stdout, stderr, tty = (_bool(q.get(k)) for k in ("stdin", "stdout", "stderr",
                                                                 "tty"))
        if not command:
            return Response(status=400, text="you must specify at least 1 command\n")
        if not (stdin or stdout or stderr):
            return Response(status=400, text="you must specify at least 1 of stdin, "
                            "stdout, stderr\n")
        if tty and stderr:
            stderr = False        # a terminal has one output stream: stderr goes to stdout
        found = self.find_pid(m["namespace"], m["pod"], m["container"])
        if isinstance(found, str):
            return Response(status=404, text=found + "\n")
        # loaded by the first exec, so that an agent nobody execs into does without it
        from nanokube.node import websocket
        if not websocket.websocket_requested(request):
            return Response(status=400, text="Upgrade request required\n")
        # the client's most preferred protocol that we speak
        protocol = next((p for p in websocket.offered_protocols(request) if p in PROTOCOLS),
                        None)
        if protocol is None:
            return Response(status=400, text="unable to upgrade: unable to match protocol\n")
        ws = await websocket.accept_websocket(request, protocol)
        session = _Session(ws, protocol, stdin, stdout, stderr, tty)
        try:
            await session.run(self.enter(found, command), container_environ(found), command)
        finally:
            await ws.close()
        return ws


class _Session:
    """One exec: the process and the WebSocket streams joined together."""

    def __init__(self, ws: WebSocket, protocol: str, stdin: bool, stdout: bool,
                 stderr: bool, tty: bool):
        self.ws = ws
        self.protocol = protocol
        self.stdin, self.stdout, self.stderr, self.tty = stdin, stdout, stderr, tty
        self.proc: asyncio.subprocess.Process | None = None
        self.master: int | None = None           # the pty's master side, with tty

    async def send(self, channel: int, data: bytes) -> None:
        await self.ws.send_bytes(bytes([channel]) + data)

    async def run(self, argv: list[str], env: dict | None, command: list[str]) -> None:
        # As the kubelet: an empty message on the lowest writable stream says "connected".
        await self.send(STDOUT if self.stdout else STDERR if self.stderr else ERROR, b"")
        try:
            outputs = await self.start(argv, env)
        except OSError as e:
            await self.report(None, f"failed to exec in container: {e}")
            return
        inputs = asyncio.create_task(self.read_client())
        work = asyncio.create_task(self.finish(outputs))
        try:
            # the client's input ends only when it closes the connection: then stop too
            await asyncio.wait({inputs, work}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (inputs, work):
                task.cancel()
            await asyncio.gather(inputs, work, return_exceptions=True)
            if self.proc.returncode is None:           # the client went away
                runtime.signal_process(self.proc.pid, signal.SIGKILL)
                await self.proc.wait()
            if self.master is not None:
                os.close(self.master)
        if work.cancelled() or work.exception() is not None:
            return
        await self.report(work.result(), None, command)

    async def finish(self, outputs: list) -> int:
        """All output sent, then the exit code."""
        await asyncio.gather(*outputs)
        return await self.proc.wait()

    async def start(self, argv: list[str], env: dict | None) -> list:
        """Start the process; the coroutines that copy its output to the client."""
        if self.tty:
            self.master, slave = pty.openpty()
            os.set_blocking(self.master, False)
            try:
                # setsid -c: a session of its own with the pty as controlling terminal, so
                # that job control and ^C work as in a container runtime's exec
                self.proc = await asyncio.create_subprocess_exec(
                    "setsid", "-w", "-c", *argv, stdin=slave, stdout=slave, stderr=slave,
                    env=env)
            finally:
                os.close(slave)
            return [self.copy_pty()]
        pipe, null = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL
        self.proc = await asyncio.create_subprocess_exec(
            *argv, env=env, stdin=pipe if self.stdin else null,
            stdout=pipe if self.stdout else null, stderr=pipe if self.stderr else null)
        return [self.copy_pipe(s, ch) for s, ch in ((self.proc.stdout, STDOUT),
                                                     (self.proc.stderr, STDERR)) if s]

    async def copy_pipe(self, reader: asyncio.StreamReader, channel: int) -> None:
        while data := await reader.read(32 * 1024):
            await self.send(channel, data)

    async def copy_pty(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                data = os.read(self.master, 32 * 1024)
            except BlockingIOError:
                ready = loop.create_future()
                loop.add_reader(self.master, lambda: ready.done() or ready.set_result(None))
                try:
                    await ready
                finally:
                    loop.remove_reader(self.master)
                continue
            except OSError as e:      # EIO: every holder of the terminal's slave side is gone
                if e.errno == errno.EIO:
                    return
                raise
            if not data:
                return
            await self.send(STDOUT, data)

    async def read_client(self) -> None:
        async for msg in self.ws:
            if not isinstance(msg, bytes) or not msg:
                continue                         # text messages are not part of the protocol
            channel, data = msg[0], msg[1:]
            if channel == STDIN and self.stdin:
                await self.write_stdin(data)
            elif channel == RESIZE and self.tty:
                self.resize(data)
            elif channel == CLOSE and data[:1] == bytes([STDIN]):
                await self.close_stdin()

    async def write_stdin(self, data: bytes) -> None:
        if self.master is None:
            if self.proc.stdin is None or self.proc.stdin.is_closing():
                return
            self.proc.stdin.write(data)
            try:
                await self.proc.stdin.drain()
            except (BrokenPipeError, ConnectionResetError):
                pass
            return
        while data:
            try:
                data = data[os.write(self.master, data):]
            except BlockingIOError:
                await asyncio.sleep(0.01)       # the terminal's input queue is full
            except OSError:
                return

    async def close_stdin(self) -> None:
        if self.master is not None:
            await self.write_stdin(b"\x04")     # a terminal ends input with ^D
        elif self.proc.stdin is not None:
            self.proc.stdin.close()

    def resize(self, data: bytes) -> None:
        try:
            size = json.loads(data)
            winsize = struct.pack("HHHH", int(size["Height"]), int(size["Width"]), 0, 0)
            fcntl.ioctl(self.master, termios.TIOCSWINSZ, winsize)
        except (ValueError, KeyError, TypeError, OSError, struct.error):
            pass       # a bad resize message is dropped, as the kubelet does

    async def report(self, code: int | None, error: str | None,
                     command: list[str] | None = None) -> None:
        """The outcome on the error stream: a Status from v4 on, plain text before."""
        if self.ws.closed:
            return
        if self.protocol in (V5, V4):
            status = failure_status(error) if error else exit_status(code, command or [])
            await self.send(ERROR, json.dumps(status).encode())
        elif error or code:
            await self.send(ERROR, (error or f"command terminated with non-zero exit code: "
                                             f"exit status {code}").encode())
