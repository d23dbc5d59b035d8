"""One container of a pod over its life: start, probes, exit, restart with back-off, kill."""
from __future__ import annotations

import asyncio
import logging
import signal
import time
from typing import TYPE_CHECKING

from nanokube.apitime import now_rfc3339
from nanokube.node import runtime
from nanokube.node.backoff import BackOff, should_restart
from nanokube.node.envvars import EnvError
from nanokube.node.probes import Prober, ProbeWorker
from nanokube.node.status import ContainerState, terminated_state

if TYPE_CHECKING:
    from nanokube.node.podworker import PodWorker

log = logging.getLogger("nanokube.node.container")

RETRY_START = 10.0      # seconds between attempts to start a container that cannot start


class ContainerRunner:
    def __init__(self, worker: "PodWorker", spec: dict, state: ContainerState):
        self.worker = worker
        self.spec = spec
        self.name = spec["name"]
        self.state = state
        self.proc: runtime.ContainerProcess | None = None
        self.backoff = BackOff()
        self.stopping = False
        self.start_mono = time.monotonic()
        self.env: dict[str, str] = {}
        self._wake = asyncio.Event()
        self._exited = asyncio.Event()
        self._probe_tasks: list[asyncio.Task] = []
        self._kill_task: asyncio.Task | None = None

    # ---- start ---------------------------------------------------------------------------------
    def adopt(self, proc: runtime.ContainerProcess) -> None:
        """Take over a process an earlier agent started (it may have ended meanwhile)."""
        self.proc = proc
        self._exited = asyncio.Event()
        self.state.restart_count = proc.restart_count
        self.state.last_state = proc.last_state or {}
        self.state.pid = proc.pid
        self.state.state = {"running": {"startedAt": proc.started_at}}
        self.env = self.worker.container_env(self.spec)
        self._start_probes()

    def start(self) -> bool:
        """Start one instance; False (and a waiting state) when it cannot be started."""
        try:
            self.env = self.worker.container_env(self.spec)
            argv = self.worker.container_argv(self.spec, self.env)
        except EnvError as e:
            self._waiting("CreateContainerConfigError", str(e))
            return False
        except Exception as e:      # UnknownImage, and whatever an image mapping raises
            # an image the catalogue lacks cannot be "pulled"; a missing program cannot start
            names = [k.__name__ for k in type(e).__mro__]
            reason = "StartError" if "CommandNotFound" in names else \
                "ErrImagePull" if "UnknownImage" in names else "StartError"
            self._waiting(reason, str(e))
            return False
        try:
            pid = runtime.spawn(self.worker.launch_command(self.name, argv), self.env)
        except OSError as e:
            self._waiting("StartError", str(e))
            return False
        started_at = now_rfc3339()
        self.proc = runtime.ContainerProcess(self.name, pid, runtime.process_start_ticks(pid),
                                             started_at, self.state.restart_count,
                                             self.state.last_state)
        self._exited = asyncio.Event()
        self.start_mono = time.monotonic()
        self.state.pid = pid
        self.state.state = {"running": {"startedAt": started_at}}
        self._start_probes()
        self.worker.save_state()
        self.worker.changed()
        return True

    def _waiting(self, reason: str, message: str) -> None:
        self.state.state = {"waiting": {"reason": reason, "message": message}}
        self.worker.changed()

    # ---- the loop ------------------------------------------------------------------------------
    async def supervise(self) -> None:
        while not self.stopping:
            if self.proc is None:
                if not self.start():
                    await self._pause(RETRY_START)
                    continue
            await self._wait_instance()
            if self.stopping:
                return
        self.worker.changed()

    async def _wait_instance(self) -> None:
        proc = self.proc
        code = await runtime.wait_exit(proc.pid)
        runtime.signal_process(proc.pid, signal.SIGKILL, group=True)   # what it left behind
        self._exited.set()
        self._stop_probes()
        ran_for = time.monotonic() - self.start_mono
        term = terminated_state(code, proc.started_at, now_rfc3339(), proc.pid)
        self.proc = None
        self.state.pid = None
        self.state.ready = self.state.started = False
        policy = (self.worker.pod.get("spec") or {}).get("restartPolicy") or "Always"
        if self.stopping or not should_restart(policy, code):
            self.state.state = term
            self.stopping = True
            self.worker.save_state()
            self.worker.changed()
            return
        self.state.last_state = term
        delay = self.backoff.next_delay(ran_for)
        if delay > 0:
            meta = self.worker.pod["metadata"]
            self.state.state = {"waiting": {
                "reason": "CrashLoopBackOff",
                "message": f"back-off {int(delay)}s restarting failed container={self.name} "
                           f"pod={meta['name']}_{meta['namespace']}({meta['uid']})"}}
            self.worker.changed()
            await self._pause(delay)
        if self.stopping:
            self.state.state = term
            self.worker.changed()
            return
        self.state.restart_count += 1
        self.worker.rotate_log(self.name)

    async def _pause(self, seconds: float) -> None:
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    # ---- probes ----------------------------------------------------------------------------------
    def _start_probes(self) -> None:
        if self.spec.get("startupProbe"):
            self._probe("startup", self.spec["startupProbe"])
        else:
            self._after_startup()

    def _after_startup(self) -> None:
        self.state.started = True
        if self.spec.get("readinessProbe"):
            self._probe("readiness", self.spec["readinessProbe"])
        else:
            self.state.ready = True
        if self.spec.get("livenessProbe"):
            self._probe("liveness", self.spec["livenessProbe"])

    def _probe(self, kind: str, probe: dict) -> None:
        pid = self.proc.pid if self.proc else None
        prober = Prober(probe, self.spec, self.worker.pod_ip, lambda: pid, self.env)
        worker = ProbeWorker(kind, probe, prober.check,
                             lambda ok, message: self._on_probe(kind, probe, ok, message),
                             started_at=self.start_mono)
        self._probe_tasks.append(asyncio.create_task(worker.run()))

    def _on_probe(self, kind: str, probe: dict, ok: bool, message: str) -> None:
        if kind == "readiness":
            self.state.ready = ok
        elif kind == "startup" and ok:
            self._after_startup()
        elif not ok:      # liveness or startup failed: kill, and the restart policy decides
            log.info("%s: %s probe failed: %s", self.name, kind, message)
            grace = probe.get("terminationGracePeriodSeconds")
            if grace is None:
                grace = self.worker.termination_grace()
            if self._kill_task is None or self._kill_task.done():
                self._kill_task = asyncio.create_task(self.kill(float(grace)))
        self.worker.changed()

    def _stop_probes(self) -> None:
        for task in self._probe_tasks:
            task.cancel()
        self._probe_tasks = []

    # ---- stop -------------------------------------------------------------------------------------
    async def kill(self, grace: float) -> None:
        """SIGTERM, then SIGKILL to the whole process group after `grace` seconds."""
        proc = self.proc
        if proc is None:
            return
        exited = self._exited
        runtime.signal_process(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(exited.wait(), grace)
        except asyncio.TimeoutError:
            runtime.signal_process(proc.pid, signal.SIGKILL, group=True)

    async def stop(self, grace: float) -> None:
        self.stopping = True
        self._wake.set()
        self._stop_probes()
        await self.kill(grace)
