"""No input crashes or hangs the server: every bad request gets a clear 4xx Status."""
from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request

import pytest
import yaml


def _request(apiserver, method: str, path: str, body: bytes | None, ctype: str,
             authenticated: bool = True) -> tuple[int, dict]:
    cfg = yaml.safe_load(open(apiserver.kubeconfig))
    import base64
    import tempfile
    user = cfg["users"][0]["user"]
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if authenticated:
        with tempfile.NamedTemporaryFile("wb", delete=False) as c, \
                tempfile.NamedTemporaryFile("wb", delete=False) as k:
            c.write(base64.b64decode(user["client-certificate-data"]))
            k.write(base64.b64decode(user["client-key-data"]))
        ctx.load_cert_chain(c.name, k.name)
    req = urllib.request.Request(apiserver.url + path, data=body, method=method,
                                 headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


SVC = "/api/v1/namespaces/default/services"

HOSTILE = [
    ("not json", b"{this is not json", "application/json", 400),
    ("a list", b"[1,2,3]", "application/json", 400),
    ("a string", b'"svc"', "application/json", 400),
    ("deep nesting", b'{"a":' * 100000 + b"1" + b"}" * 100000, "application/json", 400),
    ("yaml bomb", b"a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
     b"c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
     b"e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
     b"g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n",
     "application/yaml", 400),
    ("too large", b'{"kind":"Service","x":"' + b"a" * (4 * 1024 * 1024) + b'"}',
     "application/json", 413),
    ("wrong kind", json.dumps({"apiVersion": "v1", "kind": "Pod",
                               "metadata": {"name": "x"}}).encode(), "application/json", 400),
    ("metadata not an object", json.dumps({"apiVersion": "v1", "kind": "Service",
                                           "metadata": "x"}).encode(), "application/json", 400),
    ("spec not an object", json.dumps({"apiVersion": "v1", "kind": "Service",
                                       "metadata": {"name": "x"}, "spec": [1]}).encode(),
     "application/json", None),
    ("ports not a list", json.dumps({"apiVersion": "v1", "kind": "Service",
                                     "metadata": {"name": "x"},
                                     "spec": {"ports": "80"}}).encode(), "application/json", None),
    ("port a string", json.dumps({"apiVersion": "v1", "kind": "Service",
                                  "metadata": {"name": "x"},
                                  "spec": {"ports": [{"port": "eighty"}]}}).encode(),
     "application/json", None),
    ("binary garbage", bytes(range(256)) * 10, "application/json", 400),
    ("cut-off protobuf", b"k8s\x00\x0a", "application/vnd.kubernetes.protobuf", 400),
]


@pytest.mark.parametrize("name,body,ctype,code", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_bodies_get_a_status(apiserver, name, body, ctype, code):
    status, reply = _request(apiserver, "POST", SVC, body, ctype)
    if code is None:
        assert 400 <= status < 500, reply
    else:
        assert status == code, reply
    assert reply.get("kind") == "Status" and reply.get("message")
    # The server is still healthy and serving.
    ok, listing = _request(apiserver, "GET", SVC, None, "application/json")
    assert ok == 200 and listing["kind"] == "ServiceList"


def test_anonymous_requests_are_unauthorized(apiserver):
    status, reply = _request(apiserver, "GET", SVC, None, "application/json",
                             authenticated=False)
    assert status == 401 and reply["reason"] == "Unauthorized"
    ok, _ = _request(apiserver, "GET", "/version", None, "application/json",
                     authenticated=False)
    assert ok == 200


@pytest.mark.parametrize("patch,ctype", [
    (b'[{"op":"test","path":"/metadata/name","value":"other"}]', "application/json-patch+json"),
    (b'[{"op":"explode"}]', "application/json-patch+json"),
    (b'{"spec":{"ports":{"$patch":"bogus"}}}', "application/strategic-merge-patch+json"),
    (b'not json', "application/merge-patch+json"),
    (b'{}', "text/plain"),
])
def test_bad_patches_get_a_status(apiserver, patch, ctype):
    body = json.dumps({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "p"},
                       "spec": {"ports": [{"port": 80}]}}).encode()
    assert _request(apiserver, "POST", SVC, body, "application/json")[0] == 201
    status, reply = _request(apiserver, "PATCH", SVC + "/p", patch, ctype)
    assert 400 <= status < 500 and reply["kind"] == "Status", reply
