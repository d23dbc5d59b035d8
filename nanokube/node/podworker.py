"""One pod bound to this node: its sandbox, its containers, its status, its end.

A PodWorker is made when the pod first shows up and lives until the pod is torn down. It
reports status with a merge patch of the status subresource, only when it changed, and
batches changes that happen together into one patch.
"""
from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from nanokube.api.errors import StatusError
from nanokube.apitime import now_rfc3339
from nanokube.client import Client
from nanokube.controllers.events import WARNING, EventRecorder, container_field_path
from nanokube.node import kubeletevents, runtime
from nanokube.node.container import ContainerRunner
from nanokube.node.envvars import container_env, expand_argv
from nanokube.node.podfiles import hosts_file, pod_hostname, resolv_conf
from nanokube.node.probes import probe_events
from nanokube.node.status import ContainerState, pod_status, terminated_state

log = logging.getLogger("nanokube.node.pod")

SANDBOX_RETRY = 2.0


@dataclass
class NodeContext:
    """What every pod worker of the node shares."""
    client: Client
    node_name: str
    node_ip: str
    state_dir: Path
    cluster_dns: str
    cluster_domain: str
    network: Any                                   # nanokube.node.cni.PodNetwork
    services: Callable[[], list[dict]]
    container_argv: Callable[[str, list | None, list | None], list[str]]
    host_resolv: str = ""
    # sandboxes made at once: more only makes every `ip` process wait on the others
    # (measured with 100 pods: 3-4 at once is best, 16 takes twice as long)
    sandbox_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(4))
    recorder: EventRecorder | None = None          # the kubelet's Events (none in some tests)


def pod_dir(state_dir: Path, uid: str) -> Path:
    return Path(state_dir) / "pods" / uid


def termination_grace(pod: dict) -> float:
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    if meta.get("deletionTimestamp") and meta.get("deletionGracePeriodSeconds") is not None:
        return float(meta["deletionGracePeriodSeconds"])
    grace = spec.get("terminationGracePeriodSeconds")
    return float(30 if grace is None else grace)


class PodWorker:
    def __init__(self, ctx: NodeContext, pod: dict, sandbox_ip: str | None,
                 on_done: Callable[[str], None]):
        self.ctx = ctx
        self.pod = pod
        meta = pod["metadata"]
        self.uid = meta["uid"]
        self.namespace = meta["namespace"]
        self.name = meta["name"]
        self.dir = pod_dir(ctx.state_dir, self.uid)
        self.pod_ip = sandbox_ip or ""
        self._have_sandbox = sandbox_ip is not None
        self.sandbox_ready = False
        self.start_time = (pod.get("status") or {}).get("startTime") or now_rfc3339()
        self.host_network = bool((pod.get("spec") or {}).get("hostNetwork"))
        self.containers = [ContainerState(c["name"], c.get("image", ""))
                           for c in (pod.get("spec") or {}).get("containers") or []]
        self.runners: dict[str, ContainerRunner] = {}
        self._sources: dict[tuple[str, str], dict | None] = {}
        self._changed = asyncio.Event()
        self._terminate = asyncio.Event()
        self._delete_from_api = False
        self._last_status: dict | None = None
        self._conditions = list((pod.get("status") or {}).get("conditions") or [])
        self._on_done = on_done
        self._supervisors: list[asyncio.Task] = []
        self.task: asyncio.Task | None = None
        # container -> the state object its last Events were about (see kubeletevents)
        self._seen_states = {c.name: c.state for c in self.containers}

    # ---- what the agent tells the worker --------------------------------------------------------
    def start(self) -> None:
        self.task = asyncio.create_task(self.run(), name=f"pod {self.namespace}/{self.name}")

    def update(self, pod: dict) -> None:
        self.pod = pod
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            self.terminate(delete_from_api=True)

    def terminate(self, delete_from_api: bool) -> None:
        """Stop the pod: delete_from_api when it ends by a graceful deletion (the agent then
        removes the object), not when it is already gone from the API."""
        self._delete_from_api = self._delete_from_api or delete_from_api
        self._terminate.set()

    def changed(self) -> None:
        self._record_container_events()
        self._changed.set()

    # ---- Events ------------------------------------------------------------------------------------
    def record_event(self, type_: str, reason: str, message: str, field_path: str = "") -> None:
        if self.ctx.recorder is not None:
            ref = {"kind": "Pod", "apiVersion": "v1", "metadata": self.pod["metadata"]}
            self.ctx.recorder.record(ref, type_, reason, message, field_path)

    def _record_container_events(self) -> None:
        for c in self.containers:
            for type_, reason, message in kubeletevents.container_events(
                    self.pod, self._seen_states.get(c.name), c):
                self.record_event(type_, reason, message, container_field_path(c.name))
            self._seen_states[c.name] = c.state

    def _container_context(self, container: str) -> contextvars.Context:
        """The context a container's tasks run in: its probes report their Events here."""
        context = contextvars.copy_context()
        context.run(probe_events.set, kubeletevents.ProbeEvents(container, self.record_event))
        return context

    # ---- pieces the container runners use ------------------------------------------------------
    @property
    def hostname(self) -> str:
        """A hostNetwork pod shares the node's network and so its name, as in Kubernetes."""
        return self.ctx.node_name if self.host_network else pod_hostname(self.pod)

    def termination_grace(self) -> float:
        return termination_grace(self.pod)

    def container_env(self, spec: dict) -> dict[str, str]:
        return container_env(
            self.pod, spec, pod_ip=self.pod_ip, host_ip=self.ctx.node_ip,
            hostname=self.hostname, services=self.ctx.services(),
            get_source=lambda kind, name: self._sources.get((kind, name)))

    def container_argv(self, spec: dict, env: dict[str, str]) -> list[str]:
        command = expand_argv(spec["command"], env) if spec.get("command") else None
        args = expand_argv(spec["args"], env) if spec.get("args") else None
        return self.ctx.container_argv(spec.get("image", ""), command, args)

    def launch_command(self, container: str, argv: list[str]) -> list[str]:
        netns = None if self.host_network else \
            f"/run/netns/{self.ctx.network.netns_name(self.uid)}"
        return runtime.container_command(
            netns, self.hostname, str(self.dir / "resolv.conf"),
            str(self.dir / "hosts"), str(self.log_path(container)), argv)

    def log_path(self, container: str, previous: bool = False) -> Path:
        return self.dir / "logs" / (f"{container}.log" + (".previous" if previous else ""))

    def rotate_log(self, container: str) -> None:
        """Before a restart: the ended instance's log becomes the `previous` one."""
        try:
            os.replace(self.log_path(container), self.log_path(container, previous=True))
        except OSError:
            pass

    def container_state(self, name: str) -> ContainerState | None:
        return next((c for c in self.containers if c.name == name), None)

    def save_state(self) -> None:
        """state.json (for the next agent to adopt the pod) and pids (for `nanokube down`)."""
        procs = [r.proc for r in self.runners.values() if r.proc is not None]
        state = {"namespace": self.namespace, "name": self.name, "uid": self.uid,
                 "podIP": self.pod_ip, "containers": [p.to_json() for p in procs]}
        tmp = self.dir / "state.json.tmp"
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.dir / "state.json")
        (self.dir / "pids").write_text("".join(f"{p.name} {p.pid}\n" for p in procs))

    def _load_state(self) -> dict[str, runtime.ContainerProcess]:
        try:
            data = json.loads((self.dir / "state.json").read_text())
        except (OSError, ValueError):
            return {}
        return {c["name"]: runtime.ContainerProcess.from_json(c)
                for c in data.get("containers") or []}

    # ---- the worker's life --------------------------------------------------------------------
    async def run(self) -> None:
        try:
            (self.dir / "logs").mkdir(parents=True, exist_ok=True)
            adopted = self._load_state()
            phase = (self.pod.get("status") or {}).get("phase")
            if phase in ("Succeeded", "Failed") and not adopted:
                pass    # finished before this agent started: nothing runs again
            elif await self._setup_sandbox():
                await self._fetch_sources()
                await self._service_account_files()
                self._write_files()
                self._start_containers(adopted)
            status_task = asyncio.create_task(self._status_loop())
            await self._terminate.wait()
            await self._stop_containers(self.termination_grace())
            await self._flush_status()
            status_task.cancel()
            await self._teardown_sandbox()
            if self._delete_from_api:
                await self._delete_pod()
        except Exception:
            log.exception("pod %s/%s failed", self.namespace, self.name)
        finally:
            self._on_done(self.uid)

    async def _setup_sandbox(self) -> bool:
        if self.host_network:
            self.pod_ip = self.ctx.node_ip
        while not self._have_sandbox and not self.host_network:
            try:
                async with self.ctx.sandbox_slots:
                    self.pod_ip = await self.ctx.network.add_pod(self.uid)
                self._have_sandbox = True
            except Exception as e:
                log.warning("pod %s/%s: sandbox: %s", self.namespace, self.name, e)
                self.record_event(WARNING, "FailedCreatePodSandBox",
                                  f"Failed to create pod sandbox: {e}")
                for c in self.containers:
                    c.state = {"waiting": {"reason": "ContainerCreating"}}
                try:
                    await asyncio.wait_for(self._terminate.wait(), SANDBOX_RETRY)
                    return False
                except asyncio.TimeoutError:
                    continue
        self.sandbox_ready = True
        return not self._terminate.is_set()

    async def _fetch_sources(self) -> None:
        """The ConfigMaps and Secrets that env/envFrom refer to, read once at start."""
        wanted = set()
        for c in (self.pod.get("spec") or {}).get("containers") or []:
            for src in c.get("envFrom") or []:
                if src.get("configMapRef"):
                    wanted.add(("ConfigMap", src["configMapRef"].get("name", "")))
                if src.get("secretRef"):
                    wanted.add(("Secret", src["secretRef"].get("name", "")))
            for var in c.get("env") or []:
                vf = var.get("valueFrom") or {}
                if vf.get("configMapKeyRef"):
                    wanted.add(("ConfigMap", vf["configMapKeyRef"].get("name", "")))
                if vf.get("secretKeyRef"):
                    wanted.add(("Secret", vf["secretKeyRef"].get("name", "")))
        for kind, name in wanted:
            plural = "configmaps" if kind == "ConfigMap" else "secrets"
            try:
                self._sources[(kind, name)] = await self.ctx.client.get(
                    Client.resource_path("", "v1", plural, self.namespace, name))
            except StatusError:
                self._sources[(kind, name)] = None

    async def _service_account_files(self) -> None:
        """The pod's service account token, the cluster CA and its namespace, written to
        <pod dir>/serviceaccount, which the launcher mounts where in-cluster clients look
        (/var/run/secrets/kubernetes.io/serviceaccount). A bound TokenRequest, as the kubelet's
        projected volume does."""
        spec = self.pod.get("spec") or {}
        if spec.get("automountServiceAccountToken") is False:
            return
        account = spec.get("serviceAccountName") or "default"
        request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                   "spec": {"expirationSeconds": 3607,
                            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1",
                                               "name": self.name, "uid": self.uid}}}
        try:
            answer = await self.ctx.client.create(Client.resource_path(
                "", "v1", "serviceaccounts", self.namespace, account, "token"), request)
        except Exception as e:   # no token must not keep the pod from running
            log.warning("pod %s/%s: no token for service account %s: %s", self.namespace,
                        self.name, account, e)
            return
        sa_dir = self.dir / "serviceaccount"
        sa_dir.mkdir(exist_ok=True)
        (sa_dir / "token").write_text(answer["status"]["token"])
        (sa_dir / "namespace").write_text(self.namespace)
        ca = getattr(self.ctx.client, "ca_data", None)
        if ca:
            (sa_dir / "ca.crt").write_bytes(ca)

    def _write_files(self) -> None:
        (self.dir / "resolv.conf").write_text(resolv_conf(
            self.pod, self.ctx.cluster_dns, self.ctx.cluster_domain, self.ctx.host_resolv))
        (self.dir / "hosts").write_text(hosts_file(self.pod, self.pod_ip,
                                                   self.ctx.cluster_domain))
        (self.dir / "hostname").write_text(self.hostname + "\n")

    def _start_containers(self, adopted: dict[str, runtime.ContainerProcess]) -> None:
        for spec, state in zip((self.pod.get("spec") or {}).get("containers") or [],
                               self.containers):
            runner = ContainerRunner(self, spec, state)
            self.runners[spec["name"]] = runner
            proc = adopted.get(spec["name"])
            if proc is not None and runtime.is_alive(proc.pid, proc.start_ticks):
                self._container_context(runner.name).run(runner.adopt, proc)
                self._seen_states[runner.name] = state.state     # started by an earlier agent
                continue
            if proc is not None:      # it ended while no agent was watching: a restart
                state.restart_count = proc.restart_count + 1
                state.last_state = terminated_state(None, proc.started_at, now_rfc3339(),
                                                    proc.pid)
            self._container_context(runner.name).run(runner.start)
        self.save_state()
        self._supervisors = [asyncio.create_task(r.supervise(),
                                                 context=self._container_context(r.name))
                             for r in self.runners.values()]
        self.changed()

    async def _stop_containers(self, grace: float) -> None:
        runners = list(self.runners.values())
        for r in runners:
            if r.proc is not None:
                type_, reason, message = kubeletevents.killing(r.name)
                self.record_event(type_, reason, message, container_field_path(r.name))
        await asyncio.gather(*(r.stop(grace) for r in runners), return_exceptions=True)
        # the supervisors notice the exits; give them a moment to record the final states
        for _ in range(50):
            if all(r.proc is None for r in runners):
                break
            await asyncio.sleep(0.02)
        self.save_state()

    async def _teardown_sandbox(self) -> None:
        if self._have_sandbox and not self.host_network:
            try:
                await self.ctx.network.remove_pod(self.uid)
            except Exception as e:
                log.warning("pod %s/%s: removing sandbox: %s", self.namespace, self.name, e)
        shutil.rmtree(self.dir, ignore_errors=True)

    async def _delete_pod(self) -> None:
        path = Client.resource_path("", "v1", "pods", self.namespace, self.name)
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
                "preconditions": {"uid": self.uid}}
        try:
            await self.ctx.client.delete(path, body)
        except StatusError as e:
            if e.code not in (404, 409):
                log.warning("pod %s/%s: delete: %s", self.namespace, self.name, e)

    # ---- status -------------------------------------------------------------------------------------
    def compute_status(self) -> dict:
        return pod_status(self.pod, self.containers, pod_ip=self.pod_ip,
                          host_ip=self.ctx.node_ip, start_time=self.start_time,
                          sandbox_ready=self.sandbox_ready,
                          previous_conditions=self._conditions)

    async def _status_loop(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            if not await self._send_status():
                await asyncio.sleep(0.5)
                self._changed.set()

    async def _send_status(self) -> bool:
        status = self.compute_status()
        if status == self._last_status:
            return True
        path = Client.resource_path("", "v1", "pods", self.namespace, self.name, "status")
        try:
            await self.ctx.client.patch(path, {"status": status})
        except StatusError as e:
            if e.code == 404:
                return True        # gone: the agent tears the pod down
            log.warning("pod %s/%s: status: %s", self.namespace, self.name, e)
            return False
        except Exception as e:
            log.warning("pod %s/%s: status: %s", self.namespace, self.name, e)
            return False
        self._last_status = status
        self._conditions = status["conditions"]
        return True

    async def _flush_status(self) -> None:
        if self._delete_from_api:
            try:
                await asyncio.wait_for(self._send_status(), 2)
            except asyncio.TimeoutError:
                pass

