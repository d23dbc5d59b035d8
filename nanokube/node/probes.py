"""Container probes (readiness, liveness, startup) as the kubelet's prober runs them.

One check is an httpGet, a tcpSocket or an exec; a `ProbeWorker` repeats it every
periodSeconds after initialDelaySeconds and turns the single answers into a result with
successThreshold/failureThreshold. httpGet and tcpSocket go to the pod's IP from the node's
network namespace (where the agent runs); exec runs inside the container's namespaces.

Like the kubelet's prober, a worker reports every failed check as an Event: to the
`probe_events` of its task's context, which the pod worker sets for each container's tasks
(a ProbeEvents of nanokube.node.kubeletevents; nothing is reported when none is set).
"""
from __future__ import annotations

import asyncio
import logging
import time
from contextvars import ContextVar
from typing import Any, Awaitable, Callable

from nanokube.goerrors import dial_error

log = logging.getLogger("nanokube.node.probes")

PROBE_USER_AGENT = "kube-probe/1.32"

probe_events: ContextVar[Any] = ContextVar("probe_events", default=None)


def resolve_port(port: int | str, container: dict) -> int:
    """A port number, or the name of one of the container's ports (or a number in a string)."""
    if isinstance(port, int):
        return port
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    if str(port).isdigit():
        return int(port)
    raise ValueError(f"couldn't find port: {port} in container {container.get('name', '')}")


async def http_get(host: str, port: int, path: str, headers: list[dict],
                   timeout: float) -> tuple[bool, str]:
    """GET; any status from 200 to 399 is a success (redirects are not followed)."""
    async def go() -> tuple[bool, str]:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            names = {h.get("name", "").lower() for h in headers}
            lines = [f"GET {path or '/'} HTTP/1.1"]
            if "host" not in names:
                lines.append(f"Host: {host}:{port}")
            if "user-agent" not in names:
                lines.append(f"User-Agent: {PROBE_USER_AGENT}")
            if "accept" not in names:
                lines.append("Accept: */*")
            lines += [f"{h.get('name')}: {h.get('value', '')}" for h in headers]
            lines.append("Connection: close")
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
            await writer.drain()
            status_line = await reader.readline()
        finally:
            writer.close()
        parts = status_line.decode(errors="replace").split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            return False, f"malformed HTTP response: {status_line!r}"
        code = int(parts[1])
        if 200 <= code < 400:
            return True, ""
        return False, f"HTTP probe failed with statuscode: {code}"
    try:
        return await asyncio.wait_for(go(), timeout)
    except asyncio.TimeoutError:
        return False, (f'Get "http://{host}:{port}{path}": context deadline exceeded '
                       "(Client.Timeout exceeded while awaiting headers)")
    except OSError as e:
        return False, f'Get "http://{host}:{port}{path}": {dial_error(host, port, e)}'


async def tcp_socket(host: str, port: int, timeout: float) -> tuple[bool, str]:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except asyncio.TimeoutError:
        return False, f"dial tcp {host}:{port}: i/o timeout"
    except OSError as e:
        return False, dial_error(host, port, e)
    writer.close()
    return True, ""


async def exec_in_container(pid: int, command: list[str], timeout: float,
                            env: dict[str, str] | None = None) -> tuple[bool, str]:
    """Run `command` in the namespaces of the container's process; exit 0 is a success."""
    try:
        proc = await asyncio.create_subprocess_exec(
            "nsenter", "-t", str(pid), "--net", "--mount", "--uts", "--", *command,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, env=env)
    except OSError as e:
        return False, str(e)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        return False, f"command timed out: {' '.join(command)}"
    if proc.returncode == 0:
        return True, ""
    return False, (out or b"").decode(errors="replace")[-1024:] or \
        f"command failed with exit code {proc.returncode}"


class Prober:
    """Runs one check of a probe spec against one container."""

    def __init__(self, probe: dict, container: dict, pod_ip: str,
                 pid: Callable[[], int | None], env: dict[str, str] | None = None):
        self.probe = probe
        self.container = container
        self.pod_ip = pod_ip
        self.pid = pid
        self.env = env

    async def check(self) -> tuple[bool, str]:
        timeout = float(self.probe.get("timeoutSeconds") or 1)
        try:
            if "httpGet" in self.probe:
                h = self.probe["httpGet"]
                port = resolve_port(h.get("port"), self.container)
                return await http_get(h.get("host") or self.pod_ip, port, h.get("path") or "/",
                                      h.get("httpHeaders") or [], timeout)
            if "tcpSocket" in self.probe:
                t = self.probe["tcpSocket"]
                return await tcp_socket(t.get("host") or self.pod_ip,
                                        resolve_port(t.get("port"), self.container), timeout)
            if "exec" in self.probe:
                pid = self.pid()
                if not pid:
                    return False, "container is not running"
                return await exec_in_container(pid, self.probe["exec"].get("command") or [],
                                               timeout, self.env)
        except ValueError as e:
            return False, str(e)
        return False, "probe has no handler"


class ProbeState:
    """successThreshold consecutive successes flip the result to success, failureThreshold
    consecutive failures to failure. Readiness and startup start as failure, liveness as
    success (prober results manager's initial values)."""

    def __init__(self, kind: str, probe: dict):
        self.kind = kind
        self.success_threshold = int(probe.get("successThreshold") or 1)
        self.failure_threshold = int(probe.get("failureThreshold") or 3)
        self.result = kind == "liveness"
        self.successes = 0
        self.failures = 0

    def observe(self, ok: bool) -> bool:
        """Record one check; True when the result changed."""
        if ok:
            self.successes, self.failures = self.successes + 1, 0
            new = True if self.successes >= self.success_threshold else self.result
        else:
            self.successes, self.failures = 0, self.failures + 1
            new = False if self.failures >= self.failure_threshold else self.result
        changed = new != self.result
        self.result = new
        return changed


Check = Callable[[], Awaitable[tuple[bool, str]]]


class ProbeWorker:
    """The loop of one probe of one container instance. `on_result(ok, message)` is called
    when the result changes (and for startup, stops the worker once it succeeded)."""

    def __init__(self, kind: str, probe: dict, check: Check,
                 on_result: Callable[[bool, str], None], started_at: float | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 clock: Callable[[], float] = time.monotonic):
        self.kind = kind
        self.probe = probe
        self.state = ProbeState(kind, probe)
        self.check = check
        self.on_result = on_result
        self.started_at = started_at if started_at is not None else clock()
        self._sleep = sleep
        self._clock = clock

    async def run(self) -> None:
        delay = float(self.probe.get("initialDelaySeconds") or 0)
        wait = self.started_at + delay - self._clock()
        if wait > 0:
            await self._sleep(wait)
        period = self.probe.get("periodSeconds")
        period = 10.0 if period is None else float(period)
        while True:
            ok, message = await self.check()
            events = probe_events.get()
            if not ok:
                log.debug("%s probe failed: %s", self.kind, message)
                if events is not None:
                    events.unhealthy(self.kind, message)
            if self.state.observe(ok):
                self.on_result(self.state.result, message)
            if self.kind == "startup":
                if self.state.result:
                    return
                if self.state.failures >= self.state.failure_threshold:
                    if events is not None:
                        events.will_restart(self.kind)
                    self.on_result(False, message)      # startup failed: the container is killed
                    return
            if self.kind == "liveness" and not self.state.result:
                if events is not None:
                    events.will_restart(self.kind)
                return        # the container is restarted; a new worker follows it
            await self._sleep(period)
