"""The ingress-conformance echoserver and the nginx stand-in, run as real processes on loopback."""
from __future__ import annotations

import http.client
import json
import signal
import time

import pytest
from images_helpers import POD_NAME, free_port, get

from nanokube.images.echoserver import canonical_header


@pytest.mark.parametrize("raw,canonical", [("x-forwarded-for", "X-Forwarded-For"),
                                           ("USER-AGENT", "User-Agent"), ("accept", "Accept"),
                                           ("weird name", "weird name")])
def test_canonical_header(raw, canonical):
    assert canonical_header(raw) == canonical


def test_echoserver_json(run_program):
    port = free_port()
    program = run_program("echoserver", env={"PORT": str(port), "NAMESPACE": "conformance",
                                             "INGRESS_NAME": "ing", "SERVICE_NAME": "svc",
                                             "POD_NAME": "echo-1"})
    program.wait_http(port)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("POST", "/some/path?q=1", body=b"data",
                 headers={"Host": "foo.example.com", "x-forwarded-for": "10.0.0.1",
                          "X-Multi": "a"})
    response = conn.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Type") == "application/json"
    body = json.loads(response.read())
    conn.close()
    assert list(body) == ["path", "host", "method", "proto", "headers", "namespace", "ingress",
                          "service", "pod"]
    assert body["path"] == "/some/path?q=1"
    assert body["host"] == "foo.example.com"
    assert body["method"] == "POST" and body["proto"] == "HTTP/1.1"
    assert body["headers"]["X-Forwarded-For"] == ["10.0.0.1"]
    assert "Host" not in body["headers"]
    assert (body["namespace"], body["ingress"], body["service"], body["pod"]) == \
        ("conformance", "ing", "svc", "echo-1")


def test_echoserver_pod_falls_back_to_hostname(run_program):
    port = free_port()
    program = run_program("echoserver", env={"PORT": str(port)})
    program.wait_http(port)
    body = json.loads(get(port, "/")[1])
    assert body["pod"] == POD_NAME and body["namespace"] == ""


def test_nginx_welcome_page_and_404(run_program):
    port = free_port()
    program = run_program("nginx", "-g", "daemon off;", env={"NGINX_PORT": str(port)})
    program.wait_http(port)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/")
    response = conn.getresponse()
    page = response.read().decode()
    assert response.status == 200 and response.getheader("Content-Type") == "text/html"
    assert response.getheader("Server").startswith("nginx")
    assert "<title>Welcome to nginx!</title>" in page and POD_NAME in page
    conn.request("HEAD", "/")
    response = conn.getresponse()
    assert response.status == 200 and response.read() == b""
    assert int(response.getheader("Content-Length")) == len(page.encode())
    conn.request("GET", "/missing")
    response = conn.getresponse()
    assert response.status == 404 and "404 Not Found" in response.read().decode()
    conn.close()
    program.proc.send_signal(signal.SIGTERM)
    assert program.proc.wait(timeout=5) == 0
    log = program.output()
    assert '"GET / HTTP/1.1" 200' in log and '"GET /missing HTTP/1.1" 404' in log


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGQUIT])
def test_nginx_shutdown_signals(run_program, sig):
    port = free_port()
    program = run_program("nginx", env={"NGINX_PORT": str(port)})
    program.wait_http(port)
    program.proc.send_signal(sig)
    started = time.monotonic()
    assert program.proc.wait(timeout=5) == 0
    assert time.monotonic() - started < 1.0
