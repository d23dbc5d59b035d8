"""The ingress controller's sync loop: configuration applied whole and only when changed,
nginx -t guarding every reload, TLS Secrets as 0600 files, status of owned Ingresses only.

The model and the renderer are stand-ins here (their own tests cover them); NGINX is a fake
that records signals, except in the last tests, which run Debian's NGINX on loopback.
"""
from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import socket
import stat
import urllib.request
from dataclasses import dataclass, field

import pytest

from nanokube.controllers.informer import InformerFactory
from nanokube.ingress.controller import IngressController, Nginx, lb_addresses, secret_pem

CRT = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
KEY = b"-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"


# ---- stand-ins ----------------------------------------------------------------------------------

@dataclass
class Server:
    host: str
    tls_secret: str | None = None


@dataclass
class Config:
    servers: list = field(default_factory=list)
    default_backend: object = None
    events: list = field(default_factory=list)
    endpoints: list = field(default_factory=list)


def owns(ingress, class_name, controller, ingress_classes):
    meta = ingress["metadata"]
    cls = (ingress.get("spec") or {}).get("ingressClassName") or \
        (meta.get("annotations") or {}).get("kubernetes.io/ingress.class")
    return cls == class_name


def build(ingresses, services, slices, secrets, class_name="nginx",
          controller="k8s.io/ingress-nginx", ingress_classes=()):
    config = Config(endpoints=sorted(a for sl in slices for ep in sl.get("endpoints") or []
                                     for a in ep["addresses"]))
    for ing in sorted(ingresses, key=lambda i: i["metadata"]["name"]):
        if not owns(ing, class_name, controller, ingress_classes):
            continue
        ns = ing["metadata"]["namespace"]
        for tls in ing["spec"].get("tls") or []:
            for host in tls["hosts"]:
                config.servers.append(Server(host, f"{ns}/{tls['secretName']}"
                                             if tls.get("secretName") else None))
        for rule in ing["spec"].get("rules") or []:
            config.servers.append(Server(rule["host"]))
            if rule["host"].startswith("bad"):
                config.events.append((f"{ns}/{ing['metadata']['name']}", "Warning",
                                      "InvalidHost", f"host {rule['host']} ignored"))
    return config


def backends(config):
    return json.dumps({"default-web-80": config.endpoints})


def render(config, runtime_dir, default_cert, http=80, https=443, status=10254):
    lines = [f"# runtime {runtime_dir} default {default_cert[0]}"]
    for s in config.servers:
        lines.append(f"server {s.host}")
    return "\n".join(lines) + "\n"


def servers(config, pem_of):
    return json.dumps({s.host: pem_of(s.tls_secret)[0].decode() for s in config.servers
                       if s.tls_secret and pem_of(s.tls_secret)})


class FakeNginx(Nginx):
    def __init__(self, runtime_dir):
        super().__init__(runtime_dir)
        self.tested: list[str] = []
        self.reloaded = 0
        self.is_running = True
        self.posted: list[tuple[str, int]] = []
        self.posted_servers: list[str] = []
        self.drains: list[str] = []
        self.accepts_posts = True

    async def test(self, conf):
        text = open(conf).read()
        self.tested.append(text)
        return ("BROKEN" not in text), "nginx: [emerg] unexpected \"BROKEN\""

    @property
    def running(self):
        return self.is_running

    def reload(self):
        self.reloaded += 1
        return True

    async def drain(self, port, loads):
        self.drains.append("start")
        return self.accepts_posts

    async def post(self, path, document, port):
        if path == "/configuration/backends":
            self.posted.append((document, port))
        elif path == "/configuration/servers":
            self.posted_servers.append(document)
        else:
            self.drains.append(document)
        return self.accepts_posts


class FakeClient:
    def __init__(self):
        self.patches: list[tuple[str, dict]] = []
        self.events: list[dict] = []

    async def patch(self, path, body):
        self.patches.append((path, body))
        return None                       # write_through(None) without a key does nothing

    async def create(self, path, body):
        self.events.append(body)
        return body


def ingress(name, host="a.example", cls="nginx", ns="default", tls_secret=None, ips=(),
            rv="1"):
    spec = {"rules": [{"host": host}]}
    if cls:
        spec["ingressClassName"] = cls
    if tls_secret is not None:
        spec["tls"] = [{"hosts": [host], "secretName": tls_secret}]
    obj = {"metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}",
                        "resourceVersion": rv}, "spec": spec}
    if ips:
        obj["status"] = {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}}
    return obj


def lb_service(ip, rv="1"):
    return {"metadata": {"name": "ingress-nginx-controller", "namespace": "ingress-nginx",
                         "resourceVersion": rv},
            "spec": {"type": "LoadBalancer"},
            "status": {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}}}


def tls_secret(name, crt=CRT, key=KEY, ns="default", rv="1"):
    return {"metadata": {"name": name, "namespace": ns, "resourceVersion": rv},
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": base64.b64encode(crt).decode(),
                     "tls.key": base64.b64encode(key).decode()}}


def make(tmp_path, **kw):
    client = FakeClient()
    factory = InformerFactory(client)
    nginx = FakeNginx(str(tmp_path))
    c = IngressController(client, factory, str(tmp_path), ("/d.crt", "/d.key"), nginx,
                          publish_service="ingress-nginx/ingress-nginx-controller",
                          build=build, render=render, owns=owns, backends=backends,
                          servers=servers, **kw)
    return c, client, nginx


def put(c, plural, obj):
    c.informers[plural].write_through(obj)


def conf(tmp_path):
    return (tmp_path / "nginx.conf").read_text()


# ---- applying configurations --------------------------------------------------------------------

def test_applies_whole_config_once_and_reloads_only_on_change(tmp_path):
    c, _, nginx = make(tmp_path)

    async def go():
        put(c, "ingresses", ingress("one", "a.example"))
        await c.sync()
        assert "server a.example" in conf(tmp_path)
        assert nginx.reloaded == 1 and len(nginx.tested) == 1
        assert not (tmp_path / "nginx.conf.candidate").exists()
        await c.sync()                            # nothing changed: no test, no reload
        assert nginx.reloaded == 1 and len(nginx.tested) == 1
        put(c, "ingresses", ingress("two", "b.example"))
        await c.sync()
        assert "server b.example" in conf(tmp_path) and nginx.reloaded == 2
        assert c.synced.is_set()

    asyncio.run(go())


def test_no_signal_before_nginx_runs(tmp_path):
    c, _, nginx = make(tmp_path)
    nginx.is_running = False
    real_reload = Nginx.reload

    async def go():
        put(c, "ingresses", ingress("one"))
        await c.sync()
        assert real_reload(nginx) is False       # nothing to signal yet
        assert (tmp_path / "nginx.conf").exists()
        assert (tmp_path / "backends.json").exists() and nginx.posted == []

    asyncio.run(go())


def slice_(*ips, rv="1"):
    return {"metadata": {"name": "web-x", "namespace": "default", "resourceVersion": rv},
            "endpoints": [{"addresses": [ip]} for ip in ips]}


def test_endpoint_changes_are_posted_not_reloaded(tmp_path):
    c, _, nginx = make(tmp_path, status_port=10999)

    async def go():
        put(c, "ingresses", ingress("one", "a.example"))
        put(c, "endpointslices", slice_("10.0.0.1"))
        await c.sync()
        assert nginx.reloaded == 1
        one = json.dumps({"default-web-80": ["10.0.0.1"]})
        assert nginx.posted == [(one, 10999)]              # posted again after the reload
        assert (tmp_path / "backends.json").read_text() == one
        put(c, "endpointslices", slice_("10.0.0.1", "10.0.0.2", rv="2"))
        await c.sync()
        two = json.dumps({"default-web-80": ["10.0.0.1", "10.0.0.2"]})
        assert nginx.reloaded == 1 and len(nginx.tested) == 1   # no nginx -t, no reload
        assert nginx.posted[-1] == (two, 10999) and c.backend_updates == 1
        assert (tmp_path / "backends.json").read_text() == two
        await c.sync()                                      # nothing changed: nothing sent
        assert len(nginx.posted) == 2
        # NGINX does not take the POST: the fallback is a reload (which reads backends.json)
        nginx.accepts_posts = False
        put(c, "endpointslices", slice_("10.0.0.3", rv="3"))
        await c.sync()
        assert nginx.reloaded == 2 and c.backend_updates == 1
        assert "10.0.0.3" in (tmp_path / "backends.json").read_text()
        await c.sync()
        assert nginx.reloaded == 2                          # not again for the same document

    asyncio.run(go())


def test_config_failing_nginx_t_keeps_old_one_and_warns(tmp_path):
    c, client, nginx = make(tmp_path)

    async def go():
        put(c, "ingresses", ingress("good", "a.example"))
        await c.sync()
        good = conf(tmp_path)
        put(c, "ingresses", ingress("evil", "BROKEN.example"))
        await c.sync()
        assert conf(tmp_path) == good             # the old configuration keeps serving
        assert nginx.reloaded == 1
        assert nginx.drains == ["start", "cancel"]  # the running workers drain no more
        warnings = [e for e in client.events if e["reason"] == "RELOAD"]
        assert warnings and warnings[0]["type"] == "Warning"
        assert "BROKEN" in warnings[0]["message"]
        assert {e["involvedObject"]["name"] for e in warnings} == {"good", "evil"}
        assert warnings[0]["involvedObject"]["kind"] == "Ingress"
        tested = len(nginx.tested)
        await c.sync()                            # the same bad text is not tested again
        assert len(nginx.tested) == tested
        c.informers["ingresses"].write_through(None, "default/evil")
        await c.sync()                            # the hostile Ingress gone: back to normal
        assert nginx.reloaded == 1                # same text as the running one
        put(c, "ingresses", ingress("new", "c.example"))
        await c.sync()
        assert "c.example" in conf(tmp_path) and nginx.reloaded == 2
        assert nginx.drains[-1] == "start"        # drained before that reload

    asyncio.run(go())


def test_debounce_coalesces_a_burst_into_one_sync(tmp_path):
    c, _, nginx = make(tmp_path, debounce=0.05)

    async def go():
        runner = asyncio.create_task(c.run())
        await asyncio.sleep(0.2)                  # the first sync
        first = nginx.reloaded
        for i in range(20):
            put(c, "ingresses", ingress(f"i{i}", f"h{i}.example"))
        await asyncio.sleep(0.3)
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        assert nginx.reloaded == first + 1
        assert "h19.example" in conf(tmp_path)

    asyncio.run(go())


def test_other_secret_types_do_not_wake_the_loop(tmp_path):
    c, _, _ = make(tmp_path)
    c._dirty.clear()
    put(c, "secrets", {"metadata": {"name": "token", "namespace": "default",
                                    "resourceVersion": "1"},
                       "type": "kubernetes.io/service-account-token", "data": {}})
    assert not c._dirty.is_set()
    put(c, "secrets", tls_secret("web"))
    assert c._dirty.is_set()


# ---- certificates -------------------------------------------------------------------------------

def test_certificates_are_posted_not_reloaded_and_kept_0600(tmp_path):
    c, _, nginx = make(tmp_path)

    async def go():
        put(c, "ingresses", ingress("web", "a.example", tls_secret="web-tls"))
        await c.sync()
        servers_file = tmp_path / "servers.json"
        assert json.loads(servers_file.read_text()) == {}   # no Secret yet: the default one
        assert stat.S_IMODE(os.stat(servers_file).st_mode) == 0o600
        reloads = nginx.reloaded
        put(c, "secrets", tls_secret("web-tls"))
        await c.sync()                            # the certificate arrives: no reload
        assert json.loads(servers_file.read_text()) == {"a.example": CRT.decode()}
        assert nginx.posted_servers[-1] == servers_file.read_text()
        assert nginx.reloaded == reloads and c.certificate_updates == 1
        renewed = CRT.replace(b"MIIB", b"MIIC")
        put(c, "secrets", tls_secret("web-tls", crt=renewed, rv="2"))
        await c.sync()                            # renewed: posted again, still no reload
        assert json.loads(nginx.posted_servers[-1]) == {"a.example": renewed.decode()}
        assert nginx.reloaded == reloads and c.certificate_updates == 2
        c.informers["ingresses"].write_through(None, "default/web")
        await c.sync()                            # the host went: its certificate too
        assert json.loads(servers_file.read_text()) == {}

    asyncio.run(go())


def test_secret_pem_rejects_other_types_and_garbage():
    assert secret_pem(tls_secret("x")) == (CRT, KEY)
    assert secret_pem({**tls_secret("x"), "type": "Opaque"}) is None
    assert secret_pem({"type": "kubernetes.io/tls", "data": {"tls.crt": "!!"}}) is None
    bad = tls_secret("x", crt=b"not a pem")
    assert secret_pem(bad) is None


# ---- status -------------------------------------------------------------------------------------

def test_status_of_owned_ingresses_only(tmp_path):
    c, client, _ = make(tmp_path)

    async def go():
        put(c, "services", lb_service("10.123.0.200"))
        put(c, "ingresses", ingress("mine"))
        put(c, "ingresses", ingress("legacy", cls=None))
        c.informers["ingresses"].get("default/legacy")["metadata"]["annotations"] = {
            "kubernetes.io/ingress.class": "nginx"}
        put(c, "ingresses", ingress("unknown", cls="other"))
        put(c, "ingresses", ingress("theirs", cls="other", ips=["192.0.2.9"]))
        put(c, "ingresses", ingress("was-mine", cls="other", ips=["10.123.0.200"]))
        put(c, "ingresses", ingress("done", ips=["10.123.0.200"]))
        await c.sync()
        patched = {path.split("/")[-2]: body for path, body in client.patches}
        assert set(patched) == {"mine", "legacy", "was-mine"}
        assert patched["mine"] == {"status": {"loadBalancer": {
            "ingress": [{"ip": "10.123.0.200"}]}}}
        assert patched["was-mine"] == {"status": {"loadBalancer": {"ingress": None}}}
        path = [p for p, _ in client.patches if p.endswith("/mine/status")][0]
        assert path == "/apis/networking.k8s.io/v1/namespaces/default/ingresses/mine/status"

    asyncio.run(go())


def test_status_waits_for_the_service_address(tmp_path):
    c, client, _ = make(tmp_path)

    async def go():
        put(c, "ingresses", ingress("mine"))
        await c.sync()
        assert client.patches == []               # no address yet, none written
        put(c, "services", lb_service("10.123.0.201"))
        await c.sync()
        assert client.patches[-1][1]["status"]["loadBalancer"]["ingress"] == [
            {"ip": "10.123.0.201"}]

    asyncio.run(go())


def test_lb_addresses_sorted_ip_or_hostname():
    svc = {"status": {"loadBalancer": {"ingress": [
        {"ip": "10.0.0.9", "ipMode": "VIP"}, {"hostname": "lb.example"}, {"ip": "10.0.0.1"}]}}}
    assert lb_addresses(svc) == [{"hostname": "lb.example"}, {"ip": "10.0.0.1"},
                                 {"ip": "10.0.0.9"}]
    assert lb_addresses(None) == []


def test_model_events_recorded_once_per_object_version(tmp_path):
    c, client, _ = make(tmp_path)

    async def go():
        put(c, "ingresses", ingress("odd", "bad.example"))
        await c.sync()
        await c.sync()
        mine = [e for e in client.events if e["reason"] == "InvalidHost"]
        assert len(mine) == 1 and mine[0]["involvedObject"]["name"] == "odd"
        assert mine[0]["source"]["component"] == "nginx-ingress-controller"

    asyncio.run(go())


# ---- the default certificate -------------------------------------------------------------------

def test_default_certificate_is_self_signed_and_private(tmp_path):
    from cryptography import x509
    from nanokube.ingress.main import FAKE_CERT_CN, default_certificate
    crt, key = default_certificate(str(tmp_path))
    cert = x509.load_pem_x509_certificate(open(crt, "rb").read())
    assert cert.subject == cert.issuer
    assert FAKE_CERT_CN in cert.subject.rfc4514_string()
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600


# ---- with Debian's NGINX ----------------------------------------------------------------------

needs_nginx = pytest.mark.skipif(not shutil.which("nginx"), reason="nginx is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_render(port):
    """A whole configuration of our own: answers each server's name as the body."""
    def render_(config, runtime_dir, default_cert, *ports):
        servers = "".join(
            f"server {{ listen 127.0.0.1:{port}; server_name {s.host}; "
            f"location / {{ return 200 '{s.host}'; }} }}\n" for s in config.servers)
        return (f"pid {runtime_dir}/nginx.pid; error_log {runtime_dir}/error.log; "
                f"events {{}}\nhttp {{ access_log off; client_body_temp_path {runtime_dir}; "
                f"proxy_temp_path {runtime_dir}; fastcgi_temp_path {runtime_dir}; "
                f"uwsgi_temp_path {runtime_dir}; scgi_temp_path {runtime_dir};\n"
                f"server {{ listen 127.0.0.1:{port} default_server; return 404; }}\n"
                f"{servers}}}\n")
    return render_


def get(port, host):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"Host": host})
    try:
        with urllib.request.urlopen(req, timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""
    except (urllib.error.URLError, OSError):
        return 0, ""                              # not listening (yet)


def children(pid: int) -> list[str]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return f.read().split()


@needs_nginx
def test_real_nginx_reloads_gracefully_and_survives_a_bad_config(tmp_path):
    port = free_port()
    client = FakeClient()
    nginx = Nginx(str(tmp_path))
    c = IngressController(client, InformerFactory(client), str(tmp_path), ("/d.crt", "/d.key"),
                          nginx, build=build, render=tiny_render(port), owns=owns,
                          backends=backends, status_port=free_port())

    async def until(what, cond, timeout=5.0):
        for _ in range(int(timeout / 0.02)):
            if await asyncio.to_thread(cond):
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}")

    async def go():
        put(c, "ingresses", ingress("one", "a.example"))
        await c.sync()
        await nginx.start()
        master = nginx.proc.pid
        try:
            await until("nginx up", lambda: get(port, "a.example") == (200, "a.example"))
            assert (await asyncio.to_thread(get, port, "b.example"))[0] == 404
            put(c, "ingresses", ingress("two", "b.example"))
            await c.sync()
            await until("reload", lambda: get(port, "b.example") == (200, "b.example"))
            assert nginx.proc.pid == master and nginx.running   # reloaded, not restarted
            # the old worker finishes its connections and leaves (until then it may still
            # accept one with the old configuration)
            await until("old worker gone", lambda: len(children(master)) == 1)
            # an Ingress value that would break the file: rejected by nginx -t, old one serves
            put(c, "ingresses", ingress("evil", "x;}"))
            await c.sync()
            assert "x;}" not in conf(tmp_path)
            assert any(e["reason"] == "RELOAD" for e in client.events)
            assert await asyncio.to_thread(get, port, "a.example") == (200, "a.example")
            assert await asyncio.to_thread(get, port, "b.example") == (200, "b.example")
        finally:
            await nginx.stop()
        assert nginx.proc.returncode is not None

    asyncio.run(go())
