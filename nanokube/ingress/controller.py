"""The ingress controller: watch caches -> one whole NGINX configuration -> graceful reload.

As ingress-nginx's sync loop (reference §3.1): informers on Ingresses, IngressClasses,
Services, EndpointSlices and Secrets; any change wakes one loop that waits a short debounce
(20 ms instead of ingress-nginx's ~3 s rate limit), rebuilds the whole model from the caches,
renders nginx.conf and, only when the text changed, tests the new file with `nginx -t` and
reloads NGINX with SIGHUP (new workers start, old ones finish their requests). A configuration
that fails the test is never installed: the old one keeps serving and a Warning Event says why.

Endpoints and certificates are not in nginx.conf (see nginx.py): each sync also renders two
documents, the backends (upstream -> endpoint list) and the servers (host -> certificate and
key of its TLS Secret), writes them to RUNTIME_DIR/backends.json and servers.json (read by
NGINX at start and reload) and, when one changed, POSTs it to NGINX's /configuration/backends
or /configuration/servers on the local status port: scaling a Service or renewing a
certificate needs no reload, so no keep-alive connection is cut by old workers. If a POST
fails, a reload (which reads the files) is the fallback.

Then status: every Ingress this controller owns gets the addresses of its own LoadBalancer
Service (--publish-service) in status.loadBalancer.ingress; an Ingress it stops owning that
still shows those addresses gets them cleared. Ingresses of other classes are never touched.
"""
from __future__ import annotations

import asyncio
import base64
import logging
import os
import signal
from typing import Callable

from nanokube.client import Client
from nanokube.controllers.events import NORMAL, WARNING, EventRecorder
from nanokube.controllers.informer import Informer, InformerFactory, object_key
from nanokube.httpclient import Session
from nanokube.ingress.nginx import DRAIN_PATH

log = logging.getLogger("nanokube.ingress")

DEBOUNCE_SECONDS = 0.02
# How long the running workers drain (answer "Connection: close") before a reload: enough for
# every active keep-alive client to get one such answer (see the drain in nginx.py's Lua).
DRAIN_SECONDS = 0.04
TLS_SECRET_TYPE = "kubernetes.io/tls"
NGINX_BIN = "nginx"

# plural -> (group, version) of every resource the configuration is built from
WATCHED = {"ingresses": ("networking.k8s.io", "v1"),
           "ingressclasses": ("networking.k8s.io", "v1"),
           "services": ("", "v1"),
           "endpointslices": ("discovery.k8s.io", "v1"),
           "secrets": ("", "v1")}


# ---- NGINX, the child process ---------------------------------------------------------------------

class Nginx:
    """The NGINX master this controller starts and owns: started once, reloaded with SIGHUP
    (never restarted), stopped with SIGQUIT (graceful: workers finish their requests)."""

    def __init__(self, runtime_dir: str, binary: str = NGINX_BIN):
        self.runtime_dir = runtime_dir
        self.binary = binary
        self.proc: asyncio.subprocess.Process | None = None
        self._http: Session | None = None      # to the status port, kept alive

    @property
    def conf_path(self) -> str:
        return os.path.join(self.runtime_dir, "nginx.conf")

    def argv(self, conf: str | None = None) -> list[str]:
        return [self.binary, "-p", self.runtime_dir + "/", "-c", conf or self.conf_path]

    async def test(self, conf: str) -> tuple[bool, str]:
        """`nginx -t` of a candidate file: (ok, NGINX's own words)."""
        proc = await asyncio.create_subprocess_exec(
            *self.argv(conf), "-t", "-q", stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await proc.communicate()
        return proc.returncode == 0, out.decode(errors="replace").strip()

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv(), "-g", "daemon off;", stdin=asyncio.subprocess.DEVNULL,
            preexec_fn=_die_with_parent)
        log.info("nginx started (pid %d)", self.proc.pid)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def post(self, path: str, document: str, port: int, timeout: float = 5.0) -> bool:
        """POST a document to NGINX's Lua endpoint (127.0.0.1:port, path); True on 201."""
        return await self.post_for_answer(path, document, port, timeout) is not None

    async def drain(self, port: int, loads: int, timeout: float = 1.0) -> bool:
        """Ask every loaded generation of workers to drain; `loads` is how many configuration
        loads (the start and each reload) this controller has made: until NGINX has taken
        the last one (its master reads the file after SIGHUP), ask again."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            answer = await self.post_for_answer(DRAIN_PATH, "start", port)
            if answer is None:
                return False
            try:
                if int(answer.strip() or 0) >= loads:
                    return True
            except ValueError:
                return False
            if asyncio.get_running_loop().time() > deadline:
                return True       # a reload NGINX refused: draining what runs is still right
            await asyncio.sleep(0.01)

    async def post_for_answer(self, path: str, document: str, port: int,
                              timeout: float = 5.0) -> str | None:
        """POST to NGINX's Lua endpoint; the body of a 201 answer, else None."""
        if not self.running:
            return None
        if self._http is None:
            self._http = Session(None, {"Content-Type": "application/json"},
                                 connect_timeout=timeout)
        try:
            async with await asyncio.wait_for(self._http.request(
                    "POST", f"http://127.0.0.1:{port}{path}", data=document), timeout) as resp:
                answer = (await asyncio.wait_for(resp.read(), timeout)).decode(errors="replace")
        except (OSError, asyncio.TimeoutError) as e:
            log.warning("posting %s to nginx: %s", path, e or type(e).__name__)
            return None
        if resp.status != 201:
            log.warning("nginx refused %s: %d %s", path, resp.status, answer.strip()[:200])
            return None
        return answer

    def reload(self) -> bool:
        if not self.running:
            return False
        os.kill(self.proc.pid, signal.SIGHUP)
        return True

    async def stop(self, timeout: float = 2.0) -> None:
        """SIGQUIT (workers finish their requests), then SIGTERM (fast shutdown: the master
        still ends its workers), then SIGKILL. Short, as the pod's killer may not wait long."""
        if self._http is not None:
            await self._http.close()
            self._http = None
        for sig, wait in ((signal.SIGQUIT, timeout), (signal.SIGTERM, 1.0),
                          (signal.SIGKILL, 5.0)):
            if not self.running:
                return
            os.kill(self.proc.pid, sig)
            try:
                await asyncio.wait_for(self.proc.wait(), wait)
            except asyncio.TimeoutError:
                continue


def _die_with_parent() -> None:
    """In the child before exec: if the controller dies (SIGKILL), NGINX's master gets SIGTERM
    and ends its workers instead of serving on, orphaned, with a configuration nobody updates."""
    import ctypes
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


# ---- helpers ----------------------------------------------------------------------------------

def write_atomically(path: str, data: bytes, mode: int = 0o644) -> None:
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def secret_pem(secret: dict) -> tuple[bytes, bytes] | None:
    """tls.crt and tls.key of a kubernetes.io/tls Secret (None when not usable)."""
    if secret.get("type") != TLS_SECRET_TYPE:
        return None
    data = secret.get("data") or {}
    try:
        crt, key = base64.b64decode(data["tls.crt"]), base64.b64decode(data["tls.key"])
    except (KeyError, ValueError, TypeError):
        return None
    if b"-----BEGIN" not in crt or b"-----BEGIN" not in key:
        return None
    return crt, key


def lb_addresses(service: dict | None) -> list[dict]:
    """The Service's LoadBalancer addresses as Ingress status entries, sorted (as ingress-nginx)."""
    if not service:
        return []
    out = []
    for entry in ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
        if entry.get("ip"):
            out.append({"ip": entry["ip"]})
        elif entry.get("hostname"):
            out.append({"hostname": entry["hostname"]})
    return sorted(out, key=lambda e: (e.get("ip") or "", e.get("hostname") or ""))


def status_addresses(ingress: dict) -> list[dict]:
    return ((ingress.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []


def as_ingress(obj: dict) -> dict:
    """Items of a list carry no kind; Events need it in their involvedObject."""
    if obj.get("kind"):
        return obj
    return {"kind": "Ingress", "apiVersion": "networking.k8s.io/v1", **obj}


# ---- the controller ---------------------------------------------------------------------------

class IngressController:
    def __init__(self, client: Client, informers: InformerFactory, runtime_dir: str,
                 default_cert: tuple[str, str], nginx: Nginx | None = None,
                 class_name: str = "nginx", controller_class: str = "k8s.io/ingress-nginx",
                 publish_service: str | None = None, http_port: int = 80,
                 https_port: int = 443, status_port: int = 10254,
                 debounce: float = DEBOUNCE_SECONDS, recorder: EventRecorder | None = None,
                 build: Callable | None = None, render: Callable | None = None,
                 owns: Callable | None = None, backends: Callable | None = None,
                 servers: Callable | None = None):
        self.client = client
        self.runtime_dir = runtime_dir
        self.default_cert = default_cert
        self.nginx = nginx or Nginx(runtime_dir)
        self.class_name = class_name
        self.controller_class = controller_class
        self.publish_service = publish_service
        self.ports = (http_port, https_port, status_port)
        self.debounce = debounce
        self.recorder = recorder or EventRecorder(client, "nginx-ingress-controller",
                                                  os.environ.get("POD_NAME", ""))
        if build is None or owns is None:
            from nanokube.ingress import model
            build, owns = build or model.build, owns or model.owns
        if render is None:
            from nanokube.ingress.nginx import render
        if backends is None:
            from nanokube.ingress.nginx import backends_json as backends
        if servers is None:
            from nanokube.ingress.nginx import servers_json as servers
        self.build, self.render, self._owns, self.backends = build, render, owns, backends
        self.servers = servers
        self.informers: dict[str, Informer] = {
            plural: informers.informer(group, version, plural)
            for plural, (group, version) in WATCHED.items()}
        for plural, informer in self.informers.items():
            informer.add_handler(self._secret_changed if plural == "secrets" else self._changed)
        self._dirty = asyncio.Event()
        self._dirty.set()                   # the first sync writes the first configuration
        self.applied: str | None = None     # the text NGINX runs with
        self.rejected: str | None = None    # the last text that failed `nginx -t`
        self.reloads = 0
        self.backend_updates = 0            # endpoint changes applied without a reload
        self.certificate_updates = 0        # certificate changes applied without a reload
        self.posted: dict[str, str] = {}    # document name -> the text NGINX has
        self._recorded: set[tuple] = set()  # model Events already recorded
        self.synced = asyncio.Event()       # set after the first successful apply

    # ---- wake-ups ----------------------------------------------------------------------------
    def _changed(self, old: dict | None, new: dict | None) -> None:
        self._dirty.set()

    def _secret_changed(self, old: dict | None, new: dict | None) -> None:
        # Secrets of other types (service account tokens, ...) cannot change the configuration
        if any(s and s.get("type") == TLS_SECRET_TYPE for s in (old, new)):
            self._dirty.set()

    async def run(self) -> None:
        """Sync once now, then after every burst of changes."""
        while True:
            await self._dirty.wait()
            await asyncio.sleep(self.debounce)      # let a burst of events settle
            self._dirty.clear()
            try:
                await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sync failed; retrying")
                await asyncio.sleep(1.0)
                self._dirty.set()

    # ---- one sync ----------------------------------------------------------------------------
    def _list(self, plural: str) -> list[dict]:
        return self.informers[plural].list()

    def owns(self, ingress: dict) -> bool:
        return self._owns(ingress, self.class_name, self.controller_class,
                          self._list("ingressclasses"))

    async def sync(self) -> None:
        ingresses = self._list("ingresses")
        secrets = [s for s in self._list("secrets") if s.get("type") == TLS_SECRET_TYPE]
        config = self.build(ingresses, self._list("services"), self._list("endpointslices"),
                            secrets, self.class_name, self.controller_class,
                            self._list("ingressclasses"))
        http_port, https_port, status_port = self.ports
        text = self.render(config, self.runtime_dir, self.default_cert,
                           http_port, https_port, status_port)
        documents = {"backends": self.backends(config),
                     "servers": self.servers(config, self.secret_pem)}
        self.write_documents(documents)      # first: a reload below reads them
        reloaded = await self.apply(text)
        await self.update_documents(documents, reloaded)
        await self.record_events(config.events)
        await self.update_status(ingresses)

    def secret_pem(self, key: str) -> tuple[bytes, bytes] | None:
        secret = self.informers["secrets"].get(key)
        return secret_pem(secret) if secret else None

    async def apply(self, text: str) -> bool:
        """Install and load a rendered configuration if it differs from the running one."""
        if text == self.applied or text == self.rejected:
            return False
        candidate = os.path.join(self.runtime_dir, "nginx.conf.candidate")
        write_atomically(candidate, text.encode())
        loop = asyncio.get_running_loop()
        started = loop.time()
        # drain while `nginx -t` runs (the first configuration has no clients to drain)
        draining = self.applied is not None and await self.nginx.drain(
            self.ports[2], loads=1 + self.reloads)
        ok, output = await self.nginx.test(candidate)
        if not ok:
            if draining:
                await self.nginx.post(DRAIN_PATH, "cancel", self.ports[2])
            self.rejected = text
            os.unlink(candidate)
            log.warning("new configuration rejected by nginx -t; keeping the old one: %s",
                        output)
            await self.warn_all("RELOAD", "Error reloading NGINX: the new configuration "
                                f"failed nginx -t and was not applied: {output[-900:]}")
            return False
        if draining:
            await asyncio.sleep(max(0.0, DRAIN_SECONDS - (loop.time() - started)))
        os.replace(candidate, self.nginx.conf_path)      # atomic: NGINX reads whole files
        self.applied = text
        self.rejected = None
        if self.nginx.reload():
            self.reloads += 1
            log.info("configuration changed: nginx reloaded (%d)", self.reloads)
        self.synced.set()
        return True

    def write_documents(self, documents: dict[str, str]) -> None:
        """backends.json and servers.json (private keys: mode 0600, the folder too)."""
        for name, document in documents.items():
            path = os.path.join(self.runtime_dir, f"{name}.json")
            if not _same_content(path, document.encode()):
                write_atomically(path, document.encode(), 0o600)

    async def update_documents(self, documents: dict[str, str], reloaded: bool) -> None:
        """Give NGINX the endpoint lists and certificates without a reload. After a reload
        too (the files read by the reload are the same documents; the POST makes sure)."""
        for name, document in documents.items():
            if document == self.posted.get(name) and not reloaded:
                continue
            if not self.nginx.running:
                self.posted.pop(name, None)  # NGINX will read the file when it starts
                continue
            if await self.nginx.post(f"/configuration/{name}", document, self.ports[2]):
                if not reloaded:
                    self._count_update(name)
                self.posted[name] = document
            elif reloaded:
                self.posted[name] = document  # the reload read the file
            elif self.nginx.reload():
                # NGINX did not take the POST: a reload reads the file instead
                self.reloads += 1
                self.posted[name] = document
                log.warning("%s POST failed: nginx reloaded (%d)", name, self.reloads)

    def _count_update(self, name: str) -> None:
        if name == "backends":
            self.backend_updates += 1
            log.info("endpoints changed: posted to nginx, no reload (%d)", self.backend_updates)
        else:
            self.certificate_updates += 1
            log.info("certificates changed: posted to nginx, no reload (%d)",
                     self.certificate_updates)

    async def warn_all(self, reason: str, message: str) -> None:
        for ing in self._list("ingresses"):
            if self.owns(ing):
                await self.recorder.event(as_ingress(ing), WARNING, reason, message)

    async def record_events(self, events) -> None:
        """The model's Events, each once per object version (the model is rebuilt per sync)."""
        for key, type_, reason, message in events:
            ing = self.informers["ingresses"].get(key)
            if ing is None:
                continue
            seen = (key, ing["metadata"].get("uid"), ing["metadata"].get("resourceVersion"),
                    type_, reason, message)
            if seen in self._recorded:
                continue
            self._recorded.add(seen)
            await self.recorder.event(as_ingress(ing), type_ if type_ in (NORMAL, WARNING)
                                      else WARNING, reason, message)

    def published(self) -> list[dict]:
        if not self.publish_service:
            return []
        return lb_addresses(self.informers["services"].get(self.publish_service))

    async def update_status(self, ingresses: list[dict]) -> None:
        ours = self.published()
        for ing in ingresses:
            current = status_addresses(ing)
            if self.owns(ing):
                want = ours
            elif ours and current and all(e in ours for e in current):
                want = []        # no longer ours: take back the addresses we gave it
            else:
                continue         # another controller's Ingress: never touched
            if current != want:
                await self.patch_status(ing, want)

    async def patch_status(self, ing: dict, addresses: list[dict]) -> None:
        meta = ing["metadata"]
        path = Client.resource_path("networking.k8s.io", "v1", "ingresses",
                                    meta["namespace"], meta["name"], "status")
        body = {"status": {"loadBalancer": {"ingress": addresses or None}}}
        try:
            new = await self.client.patch(path, body)
        except Exception as e:       # noqa: BLE001 - retried on the next sync
            log.warning("status of ingress %s: %s", object_key(ing), e)
            self._dirty.set()
            return
        self.informers["ingresses"].write_through(new)
        log.info("ingress %s: status.loadBalancer.ingress = %s", object_key(ing),
                 [a.get("ip") or a.get("hostname") for a in addresses])


def _same_content(path: str, data: bytes) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read() == data
    except OSError:
        return False
