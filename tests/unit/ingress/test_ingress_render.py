"""nginx.conf rendering: location scheme, headers, and hostile input never reaching the text."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from ingress_helpers import endpointslice, ingress, path, rule, service
from nanokube.ingress import model, nginx

P = "nginx.ingress.kubernetes.io/"
CERT = ("/tmp/nk-none/tls.crt", "/tmp/nk-none/tls.key")


def render(*ings, secrets=()):
    config = model.build(list(ings), [service("web")], [endpointslice("web", ["10.0.0.1"])],
                         list(secrets))
    return config, nginx.render(config, "/tmp/nk-run", CERT, 8080, 8443, 10254)


def test_location_scheme():
    _, text = render(ingress("i", rule("foo.com", path("/exact", "Exact"), path("/pre/", "Prefix"),
                                       path("/impl", "ImplementationSpecific"), path("/", "Prefix"))))
    for line in ("location = /exact {", "location = /pre {", "location /pre/ {",
                 "location = /impl {", "location /impl/ {", "location / {",
                 "server_name foo.com;", "proxy_pass http://default-web-80;",
                 "proxy_set_header X-Forwarded-For $remote_addr;", "proxy_http_version 1.1;",
                 "keepalive 64;", "server 0.0.0.1;", "listen 8080 default_server;",
                 'balancer_by_lua_block { require("nanokube").balance("default-web-80", nil) }',
                 "location = /configuration/backends {",
                 "location = /healthz {", "listen 10254;", "return 404;"):
        assert line in text, line
    assert text.count("location / {") == 4      # foo.com, the default server (404), status, 503


def test_wildcard_server_name_one_label_and_regex_location():
    _, text = render(ingress("i", rule("*.foo.com", path("/api(/|$)(.*)", "ImplementationSpecific")),
                             annotations={P + "rewrite-target": "/$2"}))
    assert "server_name ~^[^.]+\\.foo\\.com$;" in text
    assert 'location ~* "^/api(/|$)(.*)" {' in text
    assert 'rewrite "(?i)^/api(/|$)(.*)" /$2 break;' in text


def test_endpoints_stay_out_of_the_config_and_go_to_the_backends_document():
    ing = ingress("i", rule("foo.com", path("/")))
    one = model.build([ing], [service("web")], [endpointslice("web", ["10.0.0.1"])], [])
    two = model.build([ing], [service("web")], [endpointslice("web", ["10.0.0.1", "10.0.0.2"])], [])
    none = model.build([ing], [service("web")], [], [])
    texts = {nginx.render(c, "/tmp/nk-run", CERT) for c in (one, two, none)}
    assert len(texts) == 1 and "10.0.0." not in texts.pop()     # scaling needs no reload
    assert nginx.backends(one) == {"default-web-80": [["10.0.0.1", 8080]]}
    assert nginx.backends(two) == {"default-web-80": [["10.0.0.1", 8080], ["10.0.0.2", 8080]]}
    assert nginx.backends(none) == {"default-web-80": []}        # -> 503 per request
    assert json.loads(nginx.backends_json(two)) == nginx.backends(two)


def test_backend_without_endpoints_is_503():
    config = model.build([ingress("i", rule("foo.com", path("/", service="gone")))], [], [], [])
    text = nginx.render(config, "/tmp/nk-run", CERT)
    # the balancer sends a request without endpoints to the local server that answers 503
    assert "listen 127.240.0.1:10254;" in text and "listen 127.240.0.2:10254 ssl;" in text
    assert "nk.unavailable = 10254" in text and "return 503;" in text
    assert nginx.backends(config) == {"default-gone-80": []}


def test_https_backend_has_its_own_upstream():
    _, text = render(ingress("i", rule("foo.com", path("/")),
                             annotations={P + "backend-protocol": "HTTPS"}))
    assert "proxy_pass https://default-web-80-tls;" in text
    assert ('balancer_by_lua_block { require("nanokube").balance("default-web-80", nil, true) }'
            in text)


def test_certificates_go_to_the_servers_document_not_the_config():
    secret = {"metadata": {"name": "foo-tls", "namespace": "default"}, "type": "kubernetes.io/tls"}
    config, text = render(ingress("i", rule("foo.com", path("/")),
                                  tls=[{"hosts": ["foo.com"], "secretName": "foo-tls"}]),
                          secrets=[secret])
    assert 'ssl_certificate_by_lua_block { require("nanokube").certificate() }' in text
    assert "location = /configuration/servers {" in text
    assert f"ssl_certificate {CERT[0]};" in text and "foo-tls" not in text
    pems = {"default/foo-tls": (b"-----BEGIN CERTIFICATE-----\n", b"-----BEGIN KEY-----\n")}
    assert nginx.servers(config, pems.get) == {
        "foo.com": {"cert": "-----BEGIN CERTIFICATE-----\n", "key": "-----BEGIN KEY-----\n"}}
    assert nginx.servers(config, {}.get) == {}           # no usable Secret: the default one
    assert json.loads(nginx.servers_json(config, pems.get)) == nginx.servers(config, pems.get)


def test_affinity_upstream_balances_by_the_cookie_key():
    _, text = render(ingress("i", rule("foo.com", path("/")),
                             annotations={P + "affinity": "cookie", P + "session-cookie-name": "sid"}))
    assert "map $cookie_sid $nk_affinity_sid {" in text
    assert "upstream default-web-80-affinity-sid {" in text
    assert ('balancer_by_lua_block { require("nanokube").balance("default-web-80", '
            "ngx.var.nk_affinity_sid) }") in text
    assert 'add_header Set-Cookie "sid=$nk_affinity_sid; Path=/; HttpOnly";' in text


HOSTILE = ["evil;", "}", "\n", "$host", '"', "'", "\\", "{", "return 200", "# x"]


def hostile_ingresses():
    bad = []
    for i, s in enumerate(HOSTILE):
        bad.append(ingress(f"h{i}", rule(f"a{i}.com{s}", path("/"))))
        bad.append(ingress(f"p{i}", rule("p.com", path(f"/p{i}{s}x", "Prefix"))))
        bad.append(ingress(f"e{i}", rule("e.com", path(f"/e{i}{s}x", "Exact"))))
        bad.append(ingress(f"r{i}", rule("r.com", path(f"/r{i}{s}x", "ImplementationSpecific")),
                           annotations={P + "use-regex": "true"}))
        bad.append(ingress(f"a{i}", rule("ann.com", path(f"/a{i}")),
                           annotations={P + n: f"1{s}" for n in ("proxy-body-size", "proxy-read-timeout",
                                                               "ssl-redirect", "whitelist-source-range",
                                                               "rewrite-target", "session-cookie-name",
                                                               "backend-protocol")}))
    bad.append(ingress("long", rule("x" * 300 + ".com", path("/" + "y" * 5000))))
    bad.append(ingress("svc", rule("s.com", {"path": "/", "pathType": "Prefix",
                                             "backend": {"service": {"name": "web;}",
                                                                     "port": {"name": "x;"}}}})))
    bad.append(ingress("tls", rule("t.com", path("/")), tls=[{"hosts": ["t.com;}"],
                                                              "secretName": "x"}]))
    return bad


def test_hostile_values_never_reach_the_config_and_others_keep_working():
    good = ingress("good", rule("good.com", path("/ok")), ts="2030-01-01T00:00:00Z")
    config, text = render(good, *hostile_ingresses())
    for token in ("evil", "return 200x", "return 200}", "$hostx", "# x", "yyyyy", "xxxxx", "web;", "t.com;}"):
        assert token not in text.replace("return 308 https://$host:8443$request_uri;", ""), token
    for line in text.splitlines():
        assert line.count('"') % 2 == 0 and "'" not in line and "\\\\" not in line
    assert text.count("{") == text.count("}")
    assert "server_name good.com;" in text and "location /ok/ {" in text
    reasons = {e[2] for e in config.events}
    assert {"InvalidHost", "InvalidPath", "InvalidAnnotation", "InvalidBackend"} <= reasons
    # the hostile annotation ingresses keep their (valid) paths, without the bad settings
    assert "location /a0/ {" in text


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx not installed")
def test_hostile_config_passes_nginx_t(tmp_path):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=fake", "-keyout", str(tmp_path / "k"), "-out", str(tmp_path / "c")],
                   check=True, capture_output=True)
    config = model.build([ingress("good", rule("good.com", path("/ok"))), *hostile_ingresses()],
                         [service("web")], [endpointslice("web", ["10.0.0.1"])], [])
    text = nginx.render(config, str(tmp_path), (str(tmp_path / "c"), str(tmp_path / "k")),
                        18080, 18443, 18254)
    (tmp_path / "nginx.conf").write_text(text)
    result = subprocess.run(["nginx", "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_unsafe_controller_paths_rejected():
    with pytest.raises(ValueError):
        nginx.render(model.Config(), "/tmp/x;y", CERT)
