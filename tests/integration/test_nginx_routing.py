"""A real NGINX (Debian's nginx-light) running our rendered config, routing to Python backends
on 127.0.0.x loopback addresses; requests with curl --resolve, never resolving real names."""
from __future__ import annotations

import asyncio
import json
import shutil
import signal
import socket
import subprocess

import pytest

from nanokube.ingress import model, nginx

pytestmark = pytest.mark.skipif(shutil.which("nginx") is None or shutil.which("curl") is None,
                                reason="needs nginx (apt-get install nginx-light) and curl")
P = "nginx.ingress.kubernetes.io/"
BACKENDS = {"a": "127.0.0.2", "b": "127.0.0.3", "c": "127.0.0.4", "d": "127.0.0.5"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def backend_server(name: str, ip: str):
    """Answers every request with JSON: which backend, method, path, headers."""
    async def handle(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {k.lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:] if l)}
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                out = json.dumps({"backend": name, "method": method, "path": target,
                                  "headers": headers, "body": body.decode()}).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(out), out))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass   # client (NGINX keepalive) went away, or the test is tearing down
        finally:
            writer.close()
    return await asyncio.start_server(handle, ip, 0)


def ing(name, rules, ts, annotations=None, tls=None):
    meta = {"name": name, "namespace": "default", "creationTimestamp": ts,
            "annotations": {"kubernetes.io/ingress.class": "nginx", **(annotations or {})}}
    spec = {"rules": rules}
    if tls:
        spec["tls"] = tls
    return {"metadata": meta, "spec": spec}


def r(host, *paths):
    return {"host": host, "http": {"paths": [
        {"path": p, "pathType": t, "backend": {"service": {"name": s, "port": {"number": 80}}}}
        for p, t, s in paths]}}


class Nginx:
    def __init__(self, root):
        self.root = root
        self.proc = None

    def write(self, text):
        (self.root / "nginx.conf").write_text(text)

    def test_config(self):
        return subprocess.run(["nginx", "-t", "-p", str(self.root), "-c", str(self.root / "nginx.conf")],
                              capture_output=True, text=True)

    def start(self):
        self.proc = subprocess.Popen(["nginx", "-p", str(self.root), "-c", str(self.root / "nginx.conf"),
                                      "-g", "daemon off;"])

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def curl(url, host, port, *extra, resolve_ip="127.0.0.1"):
    scheme_port = port
    proc = await asyncio.create_subprocess_exec(
        "curl", "-sk", "--max-time", "5", "--resolve", f"{host}:{scheme_port}:{resolve_ip}",
        "-o", "-", "-w", "\n%{http_code} %{redirect_url}", *extra, url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    body, _, status = out.decode().rpartition("\n")
    code, _, location = status.partition(" ")
    data = json.loads(body) if body.startswith("{") else None
    return int(code), data, location


@pytest.fixture
async def world(tmp_path):
    servers = {n: await backend_server(n, ip) for n, ip in BACKENDS.items()}
    ngx = Nginx(tmp_path)
    try:
        yield servers, ngx
    finally:
        ngx.stop()
        for s in servers.values():
            s.close()
            await s.wait_closed()


def make_cert(tmp_path, name, cn):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", f"/CN={cn}", "-addext", f"subjectAltName=DNS:{cn}",
                    "-keyout", str(tmp_path / f"{name}.key"), "-out", str(tmp_path / f"{name}.crt")],
                   check=True, capture_output=True)
    return str(tmp_path / f"{name}.crt"), str(tmp_path / f"{name}.key")


async def test_routing_tls_redirect_headers_and_hostile_ingress(world, tmp_path):
    servers, ngx = world
    services = [{"metadata": {"name": n, "namespace": "default"},
                 "spec": {"ports": [{"name": "http", "port": 80}]}} for n in servers]
    slices = [{"metadata": {"name": n + "-x", "namespace": "default",
                            "labels": {"kubernetes.io/service-name": n}},
               "ports": [{"name": "http", "port": s.sockets[0].getsockname()[1]}],
               "endpoints": [{"addresses": [BACKENDS[n]], "conditions": {"ready": True}}]}
              for n, s in servers.items()]
    secrets = [{"metadata": {"name": "foo-tls", "namespace": "default"}, "type": "kubernetes.io/tls"}]
    ingresses = [
        ing("main", [r("foo.com", ("/", "Prefix", "a"), ("/api", "Prefix", "b"),
                       ("/api", "Exact", "c"), ("/api/v2", "Prefix", "d")),
                     r("*.wild.com", ("/", "Prefix", "b"))],
            "2024-01-01T00:00:00Z", tls=[{"hosts": ["foo.com"], "secretName": "foo-tls"}]),
        ing("plain", [r("plain.com", ("/x", "Exact", "a"))], "2024-01-02T00:00:00Z",
            annotations={P + "ssl-redirect": "false"},
            tls=[{"hosts": ["plain.com"]}]),
        ing("later", [r("foo.com", ("/api/v2", "Prefix", "a"), ("/later", "Prefix", "c"))],
            "2024-02-01T00:00:00Z"),
        ing("hostile", [r("evil.com", ("/a;}\n", "Prefix", "a"), ("/ok", "Prefix", "b")),
                        r("x.com;}", ("/", "Prefix", "a"))],
            "2024-03-01T00:00:00Z",
            annotations={P + "proxy-body-size": "1m; return 200", P + "server-snippet": "x"}),
    ]
    config = model.build(ingresses, services, slices, secrets)
    assert {"Conflict", "InvalidPath", "InvalidHost", "InvalidAnnotation", "UnknownAnnotation"} \
        <= {e[2] for e in config.events}
    http, https, status = free_port(), free_port(), free_port()
    certs = {"default/foo-tls": make_cert(tmp_path, "foo", "foo.com")}
    default = make_cert(tmp_path, "fake", "ingress.local")
    ngx.write(nginx.render(config, str(tmp_path), default, http, https, status))
    # endpoints and certificates, not in nginx.conf: read by NGINX at start (the controller
    # also POSTs them)
    (tmp_path / nginx.BACKENDS_FILE).write_text(nginx.backends_json(config))
    (tmp_path / nginx.SERVERS_FILE).write_text(nginx.servers_json(config, pem_of(certs)))
    assert ngx.test_config().returncode == 0
    ngx.start()
    for _ in range(50):
        code, _, _ = await curl(f"http://h:{status}/healthz", "h", status)
        if code == 200:
            break
        await asyncio.sleep(0.1)
    assert code == 200

    async def route(host, path, scheme="https"):
        port = https if scheme == "https" else http
        code, data, location = await curl(f"{scheme}://{host}:{port}{path}", host, port)
        return code, (data or {}).get("backend"), data, location

    # Exact vs Prefix, element-wise prefix, longest match, merging, conflict won by the oldest.
    assert (await route("foo.com", "/"))[:2] == (200, "a")
    assert (await route("foo.com", "/api"))[:2] == (200, "c")
    assert (await route("foo.com", "/api/"))[:2] == (200, "b")
    assert (await route("foo.com", "/api/x"))[:2] == (200, "b")
    assert (await route("foo.com", "/apix"))[:2] == (200, "a")
    assert (await route("foo.com", "/API"))[:2] == (200, "a")
    assert (await route("foo.com", "/api/v2/z?q=1"))[:2] == (200, "d")
    assert (await route("foo.com", "/later"))[:2] == (200, "c")
    # Wildcard: one label only; unknown hosts -> NGINX's own 404.
    assert (await route("x.wild.com", "/", "http"))[:2] == (200, "b")
    assert (await route("y.x.wild.com", "/", "http"))[:2] == (404, None)
    assert (await route("unknown.com", "/", "http"))[:2] == (404, None)
    assert (await route("plain.com", "/y", "http"))[:2] == (404, None)
    # 308 to HTTPS for TLS hosts, not when ssl-redirect is false.
    code, _, _, location = await route("foo.com", "/api?x=1", "http")
    assert (code, location) == (308, f"https://foo.com:{https}/api?x=1")
    assert (await route("plain.com", "/x", "http"))[:2] == (200, "a")
    # Headers seen by the backend; method and body passed through.
    code, _, data, _ = await route("foo.com", "/api/x")
    h = data["headers"]
    assert (h["host"], h["x-forwarded-proto"], h["x-forwarded-host"], h["x-forwarded-port"],
            h["x-real-ip"], h["x-forwarded-for"]) == \
        ("foo.com", "https", "foo.com", str(https), "127.0.0.1", "127.0.0.1")
    code, data, _ = await curl(f"https://foo.com:{https}/api/x", "foo.com", https,
                               "-X", "PUT", "--data", "hello")
    assert (code, data["method"], data["path"], data["body"]) == (200, "PUT", "/api/x", "hello")
    # The hostile Ingress lost only its bad parts.
    assert (await route("evil.com", "/ok", "http"))[:2] == (200, "b")
    assert (await route("evil.com", "/a", "http"))[:2] == (404, None)


def pem_of(certs: dict[str, tuple[str, str]]):
    """The controller's Secret lookup, from certificate files: secret key -> (crt, key) PEM."""
    def lookup(key):
        if key not in certs:
            return None
        crt, k = certs[key]
        return open(crt, "rb").read(), open(k, "rb").read()
    return lookup


async def test_tls_certificate_chosen_by_sni(world, tmp_path):
    servers, ngx = world
    secrets = [{"metadata": {"name": "foo-tls", "namespace": "default"}, "type": "kubernetes.io/tls"}]
    config = model.build([ing("t", [r("foo.com", ("/", "Prefix", "a")), r("bar.com", ("/", "Prefix", "a"))],
                              "2024-01-01T00:00:00Z",
                              tls=[{"hosts": ["foo.com"], "secretName": "foo-tls"},
                                   {"hosts": ["bar.com"]}])], [], [], secrets)
    http, https, status = free_port(), free_port(), free_port()
    certs = {"default/foo-tls": make_cert(tmp_path, "foo", "foo.com")}
    ngx.write(nginx.render(config, str(tmp_path), make_cert(tmp_path, "fake", "fake.local"),
                           http, https, status))
    (tmp_path / nginx.SERVERS_FILE).write_text(nginx.servers_json(config, pem_of(certs)))
    ngx.start()

    def subject(sni):
        for _ in range(50):
            out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{https}",
                                  "-servername", sni], input="", capture_output=True, text=True)
            if "subject=" in out.stdout:
                return [l for l in out.stdout.splitlines() if l.startswith("subject=")][0]
            import time
            time.sleep(0.1)
        raise AssertionError(out.stderr)

    assert "CN = foo.com" in subject("foo.com")
    assert "CN = fake.local" in subject("bar.com")
    assert "CN = fake.local" in subject("other.com")
    # A renewed certificate and a new one arrive by POST: served at once by the same workers.
    workers = sorted(open(f"/proc/{ngx.proc.pid}/task/{ngx.proc.pid}/children").read().split())
    renewed = {"default/foo-tls": make_cert(tmp_path, "foo2", "renewed.foo.com"),
               "default/bar-tls": make_cert(tmp_path, "bar", "bar.com")}
    doc = nginx.servers_json(model.build(
        [ing("t", [r("foo.com", ("/", "Prefix", "a")), r("bar.com", ("/", "Prefix", "a"))],
             "2024-01-01T00:00:00Z", tls=[{"hosts": ["foo.com"], "secretName": "foo-tls"},
                                          {"hosts": ["bar.com"], "secretName": "bar-tls"}])],
        [], [], secrets + [{"metadata": {"name": "bar-tls", "namespace": "default"},
                            "type": "kubernetes.io/tls"}]), pem_of(renewed))
    code, _, _ = await curl(f"http://127.0.0.1:{status}/configuration/servers", "127.0.0.1",
                            status, "-X", "POST", "--data-binary", doc)
    assert code == 201
    assert "CN = renewed.foo.com" in subject("foo.com")
    assert "CN = bar.com" in subject("bar.com")
    assert "CN = fake.local" in subject("other.com")
    assert sorted(open(f"/proc/{ngx.proc.pid}/task/{ngx.proc.pid}/children").read().split()) \
        == workers                                           # no reload
    code, _, _ = await curl(f"http://127.0.0.1:{status}/configuration/servers", "127.0.0.1",
                            status, "-X", "POST", "--data-binary", '{"x.com": "not a pair"}')
    assert code == 400 and "CN = bar.com" in subject("bar.com")    # garbage changes nothing
    # service "a" has no Service object -> 503 from NGINX
    code, _, _ = await curl(f"https://foo.com:{https}/", "foo.com", https)
    assert code == 503
