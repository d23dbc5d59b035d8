"""`nanokube server`: the API server process.

HTTPS with a CA made at first start, authentication by client certificate or bearer token,
the generic REST machinery over the SQLite store, and the in-process controllers that belong
to the API server in Kubernetes (bootstrap objects, the `kubernetes` Service's endpoints).
"""
from __future__ import annotations

import asyncio
import gzip
import ipaddress
import json
import logging
import os
import signal
import time
from pathlib import Path

from aiohttp import web

from nanokube.api import discovery, errors as E, metrics, pki
from nanokube.api.eventttl import DEFAULT_EVENT_TTL, EventTTL
from nanokube.api.rest import ApiHandler, json_response, parse_path, status_response
from nanokube.api.storage import ResourceStorage
from nanokube.registry.base import ServerConfig, Strategy

log = logging.getLogger("nanokube.server")

KUBE_VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0-nanokube",
                "gitCommit": "0000000000000000000000000000000000000000",
                "gitTreeState": "clean", "buildDate": "2026-11-26T00:00:00Z",
                "goVersion": "go1.23.0", "compiler": "gc", "platform": "linux/amd64"}
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
PUBLIC_PATHS = ("/version", "/healthz", "/livez", "/readyz")
CONTROLLERS_LEASE = "nanokube-apiserver-controllers"   # GC and namespace controller, shared store


class ApiServer:
    def __init__(self, data_dir: str, config: ServerConfig, listen: list[str],
                 advertise_address: str | None = None, store_url: str | None = None,
                 tls_sans: list[str] | tuple[str, ...] = (),
                 endpoint_lease_duration: float | None = None,
                 event_ttl: float = DEFAULT_EVENT_TTL):
        from nanokube.registry import default_registry
        self.data_dir = Path(data_dir)
        self.config = config
        self.listen = listen
        self.advertise_address = advertise_address
        self.registry = default_registry(config)
        self.store_url = store_url      # None: SQLite in data_dir; etcd://h:p,... : etcd
        self.store = None
        self.storages: dict[tuple[str, str], ResourceStorage] = {}
        self.handler = ApiHandler(self)
        self.runner: web.AppRunner | None = None
        self.tokens: dict = {}
        self.ready = False
        self.tasks: list[asyncio.Task] = []
        self._openapi_cache: dict = {}
        self.token_issuer = None
        self._election: asyncio.Task | None = None
        self._election_stop: asyncio.Event | None = None
        self.tls_sans = list(tls_sans)     # more names/addresses for the serving certificate
        self.endpoint_lease_duration = endpoint_lease_duration
        self.event_ttl = event_ttl            # --event-ttl: how long an Event outlives its last write
        self.endpoint_reconciler = None    # the lease reconciler, on a shared store

    # ---- life cycle -----------------------------------------------------------------------
    async def start(self) -> None:
        from nanokube.store import open_store
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = await open_store(self.store_url, str(self.data_dir))
        for s in self.registry.strategies:
            self.storages[(s.group, s.plural)] = ResourceStorage(s, self.store,
                                                                 self._namespace_check)
        self.metrics = metrics.MetricsAPI(self.storages)     # metrics.k8s.io (kubectl top)
        await self._restore_allocations()
        await self._bootstrap()
        ssl_ctx = self._tls()
        app = web.Application(client_max_size=4 * 1024 * 1024, handler_args={
            "max_field_size": 65536})
        app.router.add_route("*", "/{tail:.*}", self._serve)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self.runner.setup()
        for addr in self.listen:
            host, _, port = addr.rpartition(":")
            # Watches never end by themselves: a stopping server gives them half a second.
            site = web.TCPSite(self.runner, host.strip("[]"), int(port), ssl_context=ssl_ctx,
                               backlog=1024, reuse_address=True, shutdown_timeout=0.5)
            await site.start()
        self._start_controllers()
        self.ready = True

    async def stop(self) -> None:
        if self.endpoint_reconciler is not None:   # our address leaves `kubernetes` at once
            self._endpoint_task.cancel()
            await asyncio.gather(self._endpoint_task, return_exceptions=True)
            try:
                await asyncio.wait_for(self.endpoint_reconciler.remove(), 3)
            except Exception as e:
                log.info("removing our endpoint: %s", e)
        if self._election is not None:   # hand the Lease over before the store closes
            self._election_stop.set()
            try:
                await asyncio.wait_for(self._election, 3)
            except (asyncio.TimeoutError, Exception):
                self._election.cancel()
        for t in self.tasks:
            t.cancel()
        if self.runner is not None:
            await self.runner.cleanup()
        for s in self.registry.strategies:
            await s.stop_sharing()
        if self.store is not None:
            await self.store.close()

    def _tls(self):
        pki_dir = self.data_dir / "pki"
        pki_dir.mkdir(exist_ok=True)
        ca = pki.ensure_ca(str(pki_dir))
        ips = ["127.0.0.1", self._first_service_ip()]
        hosts = ["localhost"]
        for addr in self.listen + ([self.advertise_address] if self.advertise_address else []) \
                + self.tls_sans:
            host = addr.rpartition(":")[0].strip("[]") if ":" in addr else addr
            try:
                ipaddress.ip_address(host)
                if host not in ips and host not in ("0.0.0.0", "::"):
                    ips.append(host)
            except ValueError:
                hosts.append(host)
        cert_path, key_path = pki.ensure_serving_cert(str(pki_dir), ca, hosts, ips)
        kubeconfig = self.data_dir / "kubeconfig"
        server_host = self.advertise_address or self.listen[0].rpartition(":")[0]
        port = self.listen[0].rpartition(":")[2]
        if server_host in ("0.0.0.0", "::", "[::]"):
            server_host = "127.0.0.1"
        if not kubeconfig.exists():
            ccert, ckey = pki.issue_client_cert(ca, "kubernetes-admin", ["system:masters"])
            name = self.data_dir.name or "nanokube"
            pki.write_kubeconfig(str(kubeconfig), f"https://{server_host}:{port}", ca[0],
                                 ccert, ckey, name, f"nanokube-{name}")
        from nanokube.api.serviceaccounts import TokenIssuer
        self.token_issuer = TokenIssuer.ensure(str(pki_dir))
        pki.ensure_token_file(str(pki_dir))
        self.tokens = pki.load_tokens(str(pki_dir))
        return pki.server_ssl_context(cert_path, key_path, str(pki_dir / "ca.crt"))

    def _first_service_ip(self) -> str:
        net = ipaddress.ip_network(self.config.service_cluster_ip_range, strict=False)
        return str(net.network_address + 1)

    async def _restore_allocations(self) -> None:
        for s in self.registry.strategies:
            if type(s).restore is not Strategy.restore:   # only kinds that allocate
                objs, _, _, _ = await self.storages[(s.group, s.plural)].list(None)
                s.restore(objs)
                if self.store.shared:
                    await s.share_allocations(self.store)

    async def _bootstrap(self) -> None:
        """The objects every cluster has: system namespaces and the `kubernetes` Service."""
        from nanokube.registry.service import kubernetes_service
        for name in SYSTEM_NAMESPACES:
            await self._ensure(("", "namespaces"), None, name, lambda: {
                "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        await self._ensure(("", "services"), "default", "kubernetes",
                           lambda: kubernetes_service(self.config))
        if self.store.shared:
            await self._start_endpoint_reconciler()
        else:
            await self._reconcile_kubernetes_endpoints()

    async def _ensure(self, resource: tuple[str, str], namespace: str | None, name: str,
                      make) -> None:
        """Create a bootstrap object unless it exists; another API server starting on the same
        store may create it at the same moment (409 AlreadyExists, or 422 for the first
        Service IP it holds): then it exists."""
        storage = self.storages[resource]
        try:
            await storage.get(namespace, name)
            return
        except E.StatusError:
            pass
        try:
            await storage.create(namespace, make())
            return
        except E.StatusError as err:
            if err.code not in (409, 422):
                raise
        for _ in range(50):   # the other server's write follows its claim
            try:
                await storage.get(namespace, name)
                return
            except E.StatusError:
                await asyncio.sleep(0.1)
        await storage.get(namespace, name)

    def _endpoint_address(self) -> str | None:
        for addr in ([self.advertise_address] if self.advertise_address else []) + \
                [a.rpartition(":")[0].strip("[]") for a in self.listen]:
            try:
                ip = ipaddress.ip_address(addr)
            except ValueError:
                continue
            if not ip.is_loopback and not ip.is_unspecified:
                return str(ip)
        return None

    async def _reconcile_kubernetes_endpoints(self) -> None:
        """The apiserver's own endpoints: this server alone."""
        from nanokube.api.endpointreconciler import write_kubernetes_endpoints
        ip = self._endpoint_address()
        if ip is None:
            return
        await write_kubernetes_endpoints(self.storages, [ip], self._secure_port())

    def _secure_port(self) -> int:
        return int(self.listen[0].rpartition(":")[2])

    async def _start_endpoint_reconciler(self) -> None:
        """Several API servers may share the store: the lease reconciler lists the live ones."""
        import uuid
        from nanokube.api.endpointreconciler import DEFAULT_LEASE_DURATION, LeaseEndpointReconciler
        ip = self._endpoint_address()
        if ip is None:
            return
        self.endpoint_reconciler = LeaseEndpointReconciler(
            self.storages, ip, self._secure_port(), f"kube-apiserver-{uuid.uuid4()}",
            self.endpoint_lease_duration or DEFAULT_LEASE_DURATION)
        try:
            await self.endpoint_reconciler.reconcile()
        except E.StatusError as e:   # the next round, an interval later, tries again
            log.warning("reconciling the kubernetes endpoints: %s", e)
        self._endpoint_task = asyncio.create_task(self.endpoint_reconciler.run())
        self.tasks.append(self._endpoint_task)

    def _start_controllers(self) -> None:
        if not self.store.shared:
            self.tasks.append(asyncio.create_task(self._run_controllers()))
            return
        # Several API servers on one store: one of them runs these, elected on a Lease.
        import uuid
        from nanokube.controllers.leaderelection import (ElectionConfig, LeaderElector,
                                                         StorageLeases)
        config = ElectionConfig("kube-system", CONTROLLERS_LEASE)
        leases = StorageLeases(self.storages[("coordination.k8s.io", "leases")],
                               config.namespace, config.name)
        elector = LeaderElector(leases, config, f"kube-apiserver-{uuid.uuid4()}")
        self._election_stop = asyncio.Event()
        self._election = asyncio.create_task(elector.run(self._run_controllers,
                                                         self._election_stop))

    async def _run_controllers(self) -> None:
        from nanokube.controllers.garbagecollector import GarbageCollector
        from nanokube.controllers.namespace import NamespaceController
        await asyncio.gather(GarbageCollector(self).run(), NamespaceController(self).run(),
                             EventTTL(self.storages[("", "events")], self.event_ttl).run())

    async def _namespace_check(self, namespace: str) -> None:
        try:
            ns = await self.storages[("", "namespaces")].get(None, namespace)
        except E.StatusError:
            raise E.not_found_error("namespaces", "", namespace) from None
        if ns["metadata"].get("deletionTimestamp"):
            raise E.StatusError(403, "Forbidden", f"unable to create new content in namespace "
                                f"{namespace} because it is being terminated",
                                {"name": namespace, "kind": "namespaces", "causes": [{
                                    "reason": "NamespaceTerminating",
                                    "message": f"namespace {namespace} is being terminated",
                                    "field": "metadata.namespace"}]})

    # ---- HTTP -----------------------------------------------------------------------------
    def _authenticate(self, request: web.Request):
        peercert = None
        if request.transport is not None:
            peercert = request.transport.get_extra_info("peercert")
        header = request.headers.get("Authorization")
        who = pki.authenticate(peercert, header, self.tokens)
        if who is None and header and header[:7].lower() == "bearer ":
            who = self.token_issuer.authenticate(header[7:].strip())
        return who

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        try:
            if path in PUBLIC_PATHS or path.startswith(("/healthz/", "/livez/", "/readyz/")):
                return self._health(path)
            if self._authenticate(request) is None:
                return status_response(E.unauthorized())
            route = parse_path(path)
            if route is not None and route.group == metrics.GROUP:
                return await self.metrics.handle(request, route)
            if route is not None:
                return await self.handler.handle(request, route)
            return self._non_resource(request, path)
        except E.StatusError as err:
            return status_response(err)
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception as exc:  # never crash the connection on a bug: answer 500
            log.exception("internal error on %s %s", request.method, path)
            return status_response(E.internal_error(f"{type(exc).__name__}: {exc}"))

    def _health(self, path: str) -> web.Response:
        if path == "/version":
            return json_response(KUBE_VERSION)
        if not self.ready:
            return web.Response(status=500, text="[-]poststarthook failed\n")
        return web.Response(text="ok")

    def _non_resource(self, request: web.Request, path: str) -> web.Response:
        accept = request.headers.get("Accept", "")
        reg = self.registry
        if path == "/api":
            if discovery.wants_aggregated(accept):
                return self._aggregated(discovery.aggregated(reg, core=True))
            host = request.host or "127.0.0.1:6443"
            return json_response(discovery.legacy_api(host))
        if path == "/apis":
            if discovery.wants_aggregated(accept):
                return self._aggregated(discovery.aggregated(reg, core=False))
            return json_response(discovery.legacy_groups(reg))
        parts = [p for p in path.split("/") if p]
        if parts and parts[0] == "openapi":
            return self._openapi(request, parts)
        gv = None
        if len(parts) == 2 and parts[0] == "api":
            gv = ("", parts[1])
        elif len(parts) == 3 and parts[0] == "apis":
            gv = (parts[1], parts[2])
        elif len(parts) == 2 and parts[0] == "apis":
            versions = discovery.group_versions(reg).get(parts[1])
            if parts[1] == metrics.GROUP:
                versions = [metrics.VERSION]
            if versions:
                gvs = [{"groupVersion": f"{parts[1]}/{v}", "version": v} for v in versions]
                return json_response({"kind": "APIGroup", "apiVersion": "v1",
                                      "name": parts[1], "versions": gvs,
                                      "preferredVersion": gvs[0]})
        if gv is not None:
            doc = discovery.resource_list(reg, *gv)
            if doc is not None:
                return json_response(doc)
        raise E.StatusError(404, "NotFound", "the server could not find the requested resource",
                            {})

    @staticmethod
    def _aggregated(doc: dict) -> web.Response:
        body = json.dumps(doc, separators=(",", ":")).encode()
        return web.Response(body=body, headers={
            "Content-Type": discovery.AGGREGATED_CONTENT_TYPE})

    def _openapi(self, request: web.Request, parts: list[str]) -> web.Response:
        from nanokube.api import openapi
        groups = [(g, v) for g, vs in discovery.group_versions(self.registry).items()
                  for v in vs]
        if parts == ["openapi", "v2"]:
            return self._openapi_v2(request, groups)
        if parts[:2] != ["openapi", "v3"]:
            raise E.StatusError(404, "NotFound", "the server could not find the requested "
                                "resource", {})
        if len(parts) == 2:   # the kinds never change while the server runs: build it once
            if "index" not in self._openapi_cache:
                self._openapi_cache["index"] = json.dumps(
                    openapi.index(groups, self.registry.strategies)).encode()
            return web.Response(body=self._openapi_cache["index"],
                                content_type="application/json")
        rest = parts[2:]
        if rest[0] == "api" and len(rest) == 2:
            gv = ("", rest[1])
        elif rest[0] == "apis" and len(rest) == 3:
            gv = (rest[1], rest[2])
        else:
            raise E.StatusError(404, "NotFound", "the server could not find the requested "
                                "resource", {})
        if gv not in groups:
            raise E.StatusError(404, "NotFound", "the server could not find the requested "
                                "resource", {})
        body = self._openapi_cache.get(gv)
        if body is None:
            # Kept gzipped (a tenth of the size; kubectl and the Python client ask for gzip),
            # and the builder's own copy dropped: the documents are megabytes of JSON.
            doc = openapi.group_version_doc(self.registry.strategies, *gv)
            body = gzip.compress(json.dumps(doc, separators=(",", ":")).encode(), 6)
            openapi.forget_built()
            self._openapi_cache[gv] = body
        headers = {"Cache-Control": "public, immutable", "Vary": "Accept-Encoding"}
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            headers["Content-Encoding"] = "gzip"
        else:
            body = gzip.decompress(body)
        return web.Response(body=body, content_type="application/json", headers=headers)


    def _openapi_v2(self, request: web.Request, groups: list) -> web.Response:
        """swagger 2.0 as JSON or gnostic protobuf (kubectl's client-side validation)."""
        from nanokube.api import openapiv2
        if "v2" not in self._openapi_cache:   # built once: the kinds never change
            self._openapi_cache["v2"] = openapiv2.Served(self.registry.strategies, groups)
        status, body, headers = self._openapi_cache["v2"].response(
            request.headers.get("Accept", ""), request.headers.get("Accept-Encoding", ""),
            request.headers.get("If-None-Match", ""))
        return web.Response(status=status, body=body, headers=headers)


def _configure_logging(data_dir: str) -> None:
    logging.basicConfig(level=os.environ.get("NANOKUBE_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")


async def _run(server: ApiServer) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    t0 = time.monotonic()
    await server.start()
    log.info("serving on %s (ready in %.0f ms)", ", ".join(server.listen),
             (time.monotonic() - t0) * 1000)
    await stop.wait()
    await server.stop()


def main(args) -> int:
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    _configure_logging(args.data_dir)
    config = ServerConfig(service_cluster_ip_range=args.service_cluster_ip_range,
                          service_node_port_range=args.service_node_port_range)
    listen = args.listen or ["127.0.0.1:6443"]
    if isinstance(listen, str):
        listen = [listen]
    server = ApiServer(args.data_dir, config, listen, getattr(args, "advertise_address", None),
                       getattr(args, "store", None), getattr(args, "tls_san", None) or (),
                       getattr(args, "endpoint_reconciler_lease_duration", None),
                       getattr(args, "event_ttl", DEFAULT_EVENT_TTL))
    asyncio.run(_run(server))
    return 0
