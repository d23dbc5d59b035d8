import json
import sys
import types

import pytest

from nanokube.cli import apply as apply_mod
from nanokube.cli.apply import LAST_APPLIED, three_way_merge_patch, with_last_applied
from nanokube.cli.main import main

SVC = {"apiVersion": "v1", "kind": "Service",
       "metadata": {"name": "web", "labels": {"app": "web"}},
       "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}

SVC_YAML = """apiVersion: v1
kind: Service
metadata:
  name: web
  labels: {app: web}
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 8080
"""


def test_last_applied_is_compact_sorted_json_with_empty_annotations_and_a_newline():
    obj = with_last_applied(SVC)
    assert obj["metadata"]["annotations"][LAST_APPLIED] == (
        '{"apiVersion":"v1","kind":"Service","metadata":{"annotations":{},"labels":'
        '{"app":"web"},"name":"web"},"spec":{"ports":[{"port":80,"targetPort":8080}],'
        '"selector":{"app":"web"}}}\n')
    assert "annotations" not in SVC["metadata"]     # the input is left alone


def test_last_applied_keeps_other_annotations_and_drops_an_old_one():
    obj = {"kind": "Service", "metadata": {"name": "a", "annotations": {
        "team": "x", LAST_APPLIED: "old"}}}
    ann = with_last_applied(obj)["metadata"]["annotations"]
    assert ann["team"] == "x"
    assert json.loads(ann[LAST_APPLIED])["metadata"]["annotations"] == {"team": "x"}


def test_three_way_merge_patch():
    original = {"metadata": {"labels": {"a": "1", "b": "2"}}}
    modified = {"metadata": {"labels": {"a": "1", "c": "3"}}}
    current = {"metadata": {"labels": {"a": "1", "b": "2", "x": "server"}}, "status": {}}
    assert three_way_merge_patch(original, modified, current) == \
        {"metadata": {"labels": {"b": None, "c": "3"}}}
    assert three_way_merge_patch(modified, modified, {**current, **modified}) == {}


def run(fake_api, *argv):
    return main(["--kubeconfig", str(fake_api.kubeconfig), *argv])


def test_apply_creates_then_is_unchanged(fake_api, tmp_path, capsys, monkeypatch):
    f = tmp_path / "svc.yaml"
    f.write_text(SVC_YAML)
    assert run(fake_api, "apply", "-f", str(f)) == 0
    assert capsys.readouterr().out == "service/web created\n"
    method, path, ctype, body = fake_api.requests[-1]
    assert method == "POST"
    assert path == ("/api/v1/namespaces/default/services?"
                    "fieldManager=kubectl-client-side-apply&fieldValidation=Strict")
    assert body["metadata"]["namespace"] == "default"
    assert '"namespace":"default"' in body["metadata"]["annotations"][LAST_APPLIED]

    seen = {}

    def fake_three_way(original, modified, current, type_name):
        seen.update(original=original, type_name=type_name)
        return {}
    mod = types.ModuleType("nanokube.api.patch")
    mod.create_three_way_strategic_patch = fake_three_way
    monkeypatch.setitem(sys.modules, "nanokube.api.patch", mod)
    n = len(fake_api.requests)
    assert run(fake_api, "apply", "-f", str(f)) == 0
    assert capsys.readouterr().out == "service/web unchanged\n"
    assert all(r[0] == "GET" for r in fake_api.requests[n:])   # no request for {}
    assert seen["type_name"] == "io.k8s.api.core.v1.Service"
    assert seen["original"]["metadata"]["name"] == "web"


def test_apply_configured_sends_a_strategic_patch(fake_api, tmp_path, capsys, monkeypatch):
    f = tmp_path / "svc.yaml"
    f.write_text(SVC_YAML)
    run(fake_api, "apply", "-f", str(f))
    monkeypatch.setattr(apply_mod, "compute_patch",
                        lambda *a: ({"spec": {"type": "NodePort"}},
                                    "application/strategic-merge-patch+json"))
    capsys.readouterr()
    assert run(fake_api, "apply", "-f", str(f)) == 0
    assert capsys.readouterr().out == "service/web configured\n"
    method, path, ctype, body = fake_api.requests[-1]
    assert (method, ctype, body) == ("PATCH", "application/strategic-merge-patch+json",
                                     {"spec": {"type": "NodePort"}})
    assert path.startswith("/api/v1/namespaces/default/services/web?fieldManager=")


def test_apply_reports_errors_like_kubectl_and_goes_on(fake_api, tmp_path, capsys):
    from aiohttp import web
    fake_api.fail_create = web.json_response(
        {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "BadRequest",
         "message": "strict decoding error: unknown field \"spec.clusterIp\"", "code": 400},
        status=400)
    f = tmp_path / "two.yaml"
    f.write_text(SVC_YAML + "---\napiVersion: v1\nkind: Gadget\nmetadata: {name: g}\n")
    assert run(fake_api, "apply", "-f", str(f)) == 1
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err == (
        f'Error from server (BadRequest): error when creating "{f}": strict decoding error: '
        'unknown field "spec.clusterIp"\n'
        f'resource mapping not found for name: "g" namespace: "default" from "{f}": no '
        'matches for kind "Gadget" in version "v1"\nensure CRDs are installed first\n')


def test_apply_namespace_mismatch(fake_api, tmp_path, capsys):
    f = tmp_path / "svc.yaml"
    f.write_text(SVC_YAML.replace("  name: web\n", "  name: web\n  namespace: a\n"))
    assert run(fake_api, "-n", "b", "apply", "-f", str(f)) == 1
    assert capsys.readouterr().err == (
        'error: the namespace from the provided object "a" does not match the namespace "b". '
        "You must pass '--namespace=a' to perform this operation.\n")


def test_apply_twice_with_the_real_strategic_patch(fake_api, tmp_path, capsys):
    pytest.importorskip("nanokube.api.patch")
    f = tmp_path / "svc.yaml"
    f.write_text(SVC_YAML)
    assert run(fake_api, "apply", "-f", str(f)) == 0
    assert run(fake_api, "apply", "-f", str(f)) == 0
    assert capsys.readouterr().out == "service/web created\nservice/web unchanged\n"
    f.write_text(SVC_YAML.replace("targetPort: 8080", "targetPort: 9090"))
    assert run(fake_api, "apply", "-f", str(f)) == 0
    assert capsys.readouterr().out == "service/web configured\n"
    method, _, ctype, body = fake_api.requests[-1]
    assert (method, ctype) == ("PATCH", "application/strategic-merge-patch+json")
    assert body["spec"]["ports"][0]["targetPort"] == 9090
