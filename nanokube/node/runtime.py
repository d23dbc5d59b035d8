"""The container runtime: containers are processes in their pod's network namespace.

A container starts as

    nsenter --net=/run/netns/<pod netns> -- unshare --uts --mount --propagation private --
        python -I -S launcher.py HOSTNAME RESOLV HOSTS LOGFILE -- ARGV...

where every step execs the next, so the pid the agent gets is the container's own process.
Its end is noticed through a pidfd (no thread, no SIGCHLD handler), which also works for
processes adopted from an earlier agent; only for our own children is the exit code known.
"""
from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

LAUNCHER = str(Path(__file__).with_name("launcher.py"))


def container_command(netns_path: str | None, hostname: str, resolv: str, hosts: str,
                      log_path: str, argv: list[str], python: str = sys.executable) -> list[str]:
    cmd: list[str] = []
    if netns_path:         # hostNetwork pods stay in the node's namespace
        cmd += ["nsenter", f"--net={netns_path}", "--"]
    cmd += ["unshare", "--uts", "--mount", "--propagation", "private", "--",
            python, "-I", "-S", LAUNCHER, hostname, resolv, hosts, log_path, "--", *argv]
    return cmd


def spawn(cmd: list[str], env: dict[str, str]) -> int:
    """Start the process in its own session, stdin/stdout/stderr on /dev/null (the launcher
    points stdout and stderr at the log). It inherits the agent's working directory, "/"."""
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, "/dev/null", os.O_WRONLY, 0),
    ]
    return os.posix_spawnp(cmd[0], cmd, env, file_actions=actions, setsid=True,
                           setsigdef=(signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT,
                                      signal.SIGTERM, signal.SIGCHLD))


def process_start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat): with
    the pid it names one process, even after pids are reused."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def is_alive(pid: int, start_ticks: int | None) -> bool:
    ticks = process_start_ticks(pid)
    if ticks is None:
        return False
    if start_ticks is not None and ticks != start_ticks:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return False


async def wait_exit(pid: int) -> int | None:
    """Wait for the process to end; its exit code (128+N for signal N, as runtimes report)
    when it is our child, None when it is not (adopted) or was already reaped."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return _reap(pid)
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.add_reader(fd, lambda: done.done() or done.set_result(None))
    try:
        await done
    finally:
        loop.remove_reader(fd)
        os.close(fd)
    return _reap(pid)


def _reap(pid: int) -> int | None:
    try:
        got, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    if got == 0:
        return None
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def signal_process(pid: int, sig: int, group: bool = False) -> None:
    """Signal the container's process (or its whole process group, for the final SIGKILL)."""
    try:
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


@dataclass
class ContainerProcess:
    """One running container instance, as recorded in the pod's state file."""
    name: str
    pid: int
    start_ticks: int | None
    started_at: str               # RFC 3339, for status.state.running.startedAt
    restart_count: int = 0
    last_state: dict | None = None

    def to_json(self) -> dict:
        return {"name": self.name, "pid": self.pid, "startTicks": self.start_ticks,
                "startedAt": self.started_at, "restartCount": self.restart_count,
                "lastState": self.last_state or {}}

    @classmethod
    def from_json(cls, data: dict) -> "ContainerProcess":
        return cls(data["name"], int(data["pid"]), data.get("startTicks"),
                   data.get("startedAt", ""), int(data.get("restartCount") or 0),
                   data.get("lastState") or {})
