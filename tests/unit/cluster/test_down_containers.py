"""`down` ends every process of a container: a shell's children too, not only the process the
agent started (which may go at the SIGTERM and leave them running)."""
import os
import subprocess
import time

from nanokube.cluster import lifecycle


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_down_kills_what_a_container_shell_started(tmp_path):
    # As the agent starts containers: a session (and process group) of its own. The trailing
    # `true` keeps the shell from exec'ing sleep: sleep is its child.
    shell = subprocess.Popen(["sh", "-c", "sleep 60; true"], start_new_session=True)
    try:
        deadline = time.monotonic() + 5
        while not children(shell.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        (sleep,) = children(shell.pid)
        pod = tmp_path / "nodes" / "node-1" / "pods" / "uid"
        pod.mkdir(parents=True)
        (pod / "pids").write_text(f"main {shell.pid}\n")
        lifecycle._teardown(tmp_path, {})
        shell.wait(timeout=5)
        deadline = time.monotonic() + 5
        while alive(sleep) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not alive(sleep), "the shell's child outlived down"
    finally:
        try:                     # whatever a failed run left in the group
            os.killpg(shell.pid, 9)
        except ProcessLookupError:
            pass
        shell.wait()
