"""OpenAPI v3 as kubectl uses it: `kubectl explain` through the real kubectl, and the document
served gzipped to clients that ask for it, plain to those that do not."""
from __future__ import annotations

import gzip
import json
import ssl
import urllib.request

from harness import require_kubectl


def test_kubectl_explain_reads_the_openapi_documents(kubectl):
    require_kubectl()
    out = kubectl("explain", "pods.spec.containers.ports").stdout
    assert "containerPort" in out and "FIELD: ports" in out
    out = kubectl("explain", "ingress.spec.rules").stdout
    assert "networking.k8s.io" in out and "host" in out


def test_document_is_gzipped_only_for_clients_that_accept_it(apiserver):
    token = (apiserver.data_dir / "pki" / "tokens.csv").read_text().split(",")[0]
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE

    def get(accept_gzip: bool):
        headers = {"Authorization": f"Bearer {token}"}
        if accept_gzip:
            headers["Accept-Encoding"] = "gzip"
        req = urllib.request.Request(f"{apiserver.url}/openapi/v3/api/v1", headers=headers)
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.headers.get("Content-Encoding"), r.read()

    encoding, zipped = get(True)
    assert encoding == "gzip"
    plain_encoding, plain = get(False)
    assert plain_encoding is None
    assert gzip.decompress(zipped) == plain
    doc = json.loads(plain)
    assert doc["openapi"] == "3.0.0" and "/api/v1/namespaces/{namespace}/pods" in doc["paths"]
