"""agnhost netexec, serve-hostname and pause, run as real processes on loopback."""
from __future__ import annotations

import http.client
import json
import signal
import socket
import time

import pytest
from images_helpers import POD_NAME, free_port, get, udp


@pytest.fixture
def netexec(run_program):
    http_port, udp_port = free_port(), free_port(socket.SOCK_DGRAM)
    program = run_program("agnhost", "netexec", f"--http-port={http_port}",
                          "--udp-port", str(udp_port), "--sctp-port=-1")
    program.startup = program.wait_http(http_port)
    program.http_port, program.udp_port = http_port, udp_port
    return program


def test_netexec_hostname(netexec):
    assert get(netexec.http_port, "/hostname") == (200, POD_NAME)


def test_netexec_echo(netexec):
    assert get(netexec.http_port, "/echo?msg=hi") == (200, "hi")
    assert get(netexec.http_port, "/echo?msg=hello%20world&code=418") == (418, "hello world")


def test_netexec_clientip_is_the_peer(netexec):
    with socket.create_connection(("127.0.0.1", netexec.http_port)) as s:
        s.sendall(b"GET /clientip HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        raw = b""
        while chunk := s.recv(4096):
            raw += chunk
        local_port = s.getsockname()[1]
    assert raw.split(b"\r\n\r\n", 1)[1].decode() == f"127.0.0.1:{local_port}"


def test_netexec_other_endpoints(netexec):
    assert get(netexec.http_port, "/healthz")[0] == 200
    assert get(netexec.http_port, "/readyz")[0] == 200
    status, body = get(netexec.http_port, "/anything/else")
    assert status == 200 and body.startswith("NOW: ")
    conn = http.client.HTTPConnection("127.0.0.1", netexec.http_port, timeout=5)
    conn.request("GET", "/header?key=X-Probe", headers={"X-Probe": "yes"})
    assert conn.getresponse().read() == b"yes"
    conn.close()


def test_netexec_dial_http_and_udp(netexec):
    status, body = get(netexec.http_port, f"/dial?request=hostname&host=127.0.0.1"
                                          f"&port={netexec.http_port}&protocol=http&tries=3")
    assert status == 200 and json.loads(body) == {"responses": [POD_NAME] * 3}
    status, body = get(netexec.http_port, f"/dial?request=echo%20x&host=127.0.0.1"
                                          f"&port={netexec.udp_port}&protocol=udp")
    assert json.loads(body) == {"responses": ["x"]}
    closed = free_port()
    status, body = get(netexec.http_port, f"/dial?request=hostname&host=127.0.0.1"
                                          f"&port={closed}&protocol=http")
    assert status == 200 and list(json.loads(body)) == ["errors"]
    assert get(netexec.http_port, "/dial?request=hostname")[0] == 400


def test_netexec_udp(netexec):
    assert udp(netexec.udp_port, b"hostname") == POD_NAME.encode()
    assert udp(netexec.udp_port, b"hostName\n") == POD_NAME.encode()     # as `echo hostName | nc -u`
    assert udp(netexec.udp_port, b"echo hello there") == b"hello there"
    reply = udp(netexec.udp_port, b"clientip").decode()
    assert reply.startswith("127.0.0.1:")


def test_netexec_shutdown_ends_the_process(netexec):
    try:
        get(netexec.http_port, "/shutdown")
    except (ConnectionError, http.client.HTTPException):
        pass                                        # the real one exits before answering
    assert netexec.proc.wait(timeout=5) == 0
    assert "GET /shutdown" in netexec.output()


def test_netexec_exit_code(netexec):
    try:
        get(netexec.http_port, "/exit?code=3")
    except (ConnectionError, http.client.HTTPException):
        pass
    assert netexec.proc.wait(timeout=5) == 3


def test_netexec_sigterm_exits_zero_promptly(netexec):
    netexec.proc.send_signal(signal.SIGTERM)
    started = time.monotonic()
    assert netexec.proc.wait(timeout=5) == 0
    assert time.monotonic() - started < 1.0


def test_netexec_delay_shutdown_stays_up_not_ready(run_program):
    port = free_port()
    program = run_program("agnhost", "netexec", f"--http-port={port}", "--udp-port=-1",
                          "--delay-shutdown=1")
    program.wait_http(port)
    program.proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    assert get(port, "/readyz")[0] == 503
    assert get(port, "/hostname") == (200, POD_NAME)
    assert program.proc.wait(timeout=5) == 0


def test_netexec_logs_requests(netexec):
    get(netexec.http_port, "/hostname")
    get(netexec.http_port, "/echo?msg=logged")
    netexec.proc.send_signal(signal.SIGTERM)
    netexec.proc.wait(timeout=5)
    output = netexec.output()
    assert "GET /hostname" in output and "GET /echo?msg=logged" in output
    assert f"Started HTTP server on port {netexec.http_port}" in output


def test_serve_hostname_http_and_udp(run_program):
    port = free_port()
    program = run_program("agnhost", "serve-hostname", "--port", str(port), "--udp")
    program.wait_http(port)
    assert get(port, "/") == (200, POD_NAME)
    assert get(port, "/any/path") == (200, POD_NAME)
    assert udp(port, b"x") == POD_NAME.encode()


def test_serve_hostname_tcp(run_program):
    port = free_port()
    program = run_program("agnhost", "serve-hostname", "--http=false", "--tcp", f"--port={port}")
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                assert s.recv(100) == POD_NAME.encode()
                assert s.recv(100) == b""              # then the server closes
                break
        except ConnectionRefusedError:
            assert time.monotonic() < deadline and program.proc.poll() is None
            time.sleep(0.01)


def test_pause_exits_zero_on_sigterm_quickly(run_program):
    program = run_program("agnhost", "pause")
    deadline = time.monotonic() + 10
    while "Paused" not in program.output():
        assert time.monotonic() < deadline and program.proc.poll() is None
        time.sleep(0.01)
    program.proc.send_signal(signal.SIGTERM)
    started = time.monotonic()
    assert program.proc.wait(timeout=5) == 0
    assert time.monotonic() - started < 0.5


def test_porter_serves_each_port(run_program):
    a, b = free_port(), free_port()
    program = run_program("agnhost", "porter", env={f"SERVE_PORT_{a}": "foo", f"SERVE_PORT_{b}": "bar"})
    program.wait_http(a)
    assert get(a, "/") == (200, "foo")
    assert get(b, "/x") == (200, "bar")


def test_unknown_command_fails(run_program):
    program = run_program("agnhost", "no-such-command")
    assert program.proc.wait(timeout=5) == 1
    assert 'unknown command "no-such-command"' in program.output()


def test_bad_flag_value_fails(run_program):
    program = run_program("agnhost", "netexec", "--http-port=abc")
    assert program.proc.wait(timeout=5) == 1
    assert 'invalid argument "abc" for "--http-port" flag' in program.output()


def test_netexec_keep_alive(netexec):
    conn = http.client.HTTPConnection("127.0.0.1", netexec.http_port, timeout=5)
    conn.connect()
    local = f"127.0.0.1:{conn.sock.getsockname()[1]}"
    for path, expected in [("/hostname", POD_NAME), ("/clientip", local), ("/echo?msg=a", "a"),
                           ("/clientip", local), ("/hostname", POD_NAME)]:
        conn.request("GET", path)
        response = conn.getresponse()
        assert response.getheader("Connection") is None        # HTTP/1.1: kept open
        assert response.read().decode() == expected
    conn.close()
