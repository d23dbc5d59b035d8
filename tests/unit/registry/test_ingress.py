import copy
import datetime as dt

import pytest

from nanokube.registry.ingress import IngressStrategy

THREE_DAYS_AGO = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=3)).strftime(
    "%Y-%m-%dT%H:%M:%SZ")

# The Ingress of seed/service-types.txt, as a v1beta1 client sends it.
SEED_V1BETA1 = {
    "apiVersion": "networking.k8s.io/v1beta1",
    "kind": "Ingress",
    "metadata": {"name": "my-ingress", "namespace": "default",
                 "annotations": {"kubernetes.io/ingress.class": "nginx"}},
    "spec": {
        "rules": [
            {"host": "example.com", "http": {"paths": [
                {"path": "/", "backend": {"serviceName": "my-service", "servicePort": 80}}]}},
            {"host": "another-example.com", "http": {"paths": [
                {"path": "/", "backend": {"serviceName": "second-service", "servicePort": 80}}]}},
        ],
        "tls": [{"hosts": ["example.com", "another-example.com"]}],
    },
}

SEED_V1 = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "Ingress",
    "metadata": {"name": "my-ingress", "namespace": "default",
                 "annotations": {"kubernetes.io/ingress.class": "nginx"}},
    "spec": {
        "rules": [
            {"host": "example.com", "http": {"paths": [
                {"path": "/", "pathType": "ImplementationSpecific",
                 "backend": {"service": {"name": "my-service", "port": {"number": 80}}}}]}},
            {"host": "another-example.com", "http": {"paths": [
                {"path": "/", "pathType": "ImplementationSpecific",
                 "backend": {"service": {"name": "second-service", "port": {"number": 80}}}}]}},
        ],
        "tls": [{"hosts": ["example.com", "another-example.com"]}],
    },
}


def v1_ingress(**spec):
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "web", "namespace": "default"}, "spec": spec}


def prefix_rule(path="/", path_type="Prefix", backend=None, host="foo.com"):
    entry = {"path": path, "backend": backend or {
        "service": {"name": "web", "port": {"number": 80}}}}
    if path_type is not None:
        entry["pathType"] = path_type
    return {"host": host, "http": {"paths": [entry]}}


def messages(obj, strategy=None):
    return [str(e) for e in (strategy or IngressStrategy()).validate(obj)]


@pytest.fixture
def ing():
    return IngressStrategy()


def test_discovery_facts(ing):
    assert (ing.group, ing.version, ing.kind, ing.plural, ing.singular) == (
        "networking.k8s.io", "v1", "Ingress", "ingresses", "ingress")
    assert ing.served_versions == ("v1", "v1beta1")
    assert ing.short_names == ("ing",) and ing.namespaced and ing.has_status
    assert ing.deprecated_versions["v1beta1"].startswith(
        "networking.k8s.io/v1beta1 Ingress is deprecated in v1.19+")


def test_seed_v1beta1_converts_to_v1_with_default_path_type(ing):
    original = copy.deepcopy(SEED_V1BETA1)
    assert ing.convert_from_version(SEED_V1BETA1, "v1beta1") == SEED_V1
    assert SEED_V1BETA1 == original  # the input is not modified


def test_seed_round_trip_back_to_v1beta1_keeps_everything(ing):
    stored = ing.convert_from_version(SEED_V1BETA1, "v1beta1")
    back = ing.convert_to_version(stored, "v1beta1")
    expected = copy.deepcopy(SEED_V1BETA1)
    for rule in expected["spec"]["rules"]:
        rule["http"]["paths"][0]["pathType"] = "ImplementationSpecific"
    assert back == expected


def test_seed_is_valid_once_converted(ing):
    assert messages(ing.convert_from_version(SEED_V1BETA1, "v1beta1")) == []


def test_v1_round_trip_through_v1beta1_is_lossless(ing):
    obj = v1_ingress(
        ingressClassName="nginx",
        defaultBackend={"service": {"name": "fallback", "port": {"name": "http"}}},
        rules=[prefix_rule(),
               prefix_rule(path="/static", path_type="Exact",
                           backend={"resource": {"apiGroup": "k8s.example.com",
                                                 "kind": "StorageBucket", "name": "assets"}}),
               {"host": "*.bar.com", "http": {"paths": [
                   {"path": "/x", "pathType": "Prefix",
                    "backend": {"service": {"name": "noport", "port": {}}}}]}}],
        tls=[{"hosts": ["foo.com"], "secretName": "foo-tls"}])
    obj["status"] = {"loadBalancer": {"ingress": [{"ip": "192.168.50.10"}]}}
    beta = ing.convert_to_version(obj, "v1beta1")
    assert beta["apiVersion"] == "networking.k8s.io/v1beta1"
    assert beta["spec"]["backend"] == {"serviceName": "fallback", "servicePort": "http"}
    assert "defaultBackend" not in beta["spec"]
    paths = [r["http"]["paths"][0] for r in beta["spec"]["rules"]]
    assert paths[0]["backend"] == {"serviceName": "web", "servicePort": 80}
    assert paths[1]["backend"] == {"resource": {"apiGroup": "k8s.example.com",
                                                "kind": "StorageBucket", "name": "assets"}}
    assert ing.convert_from_version(beta, "v1beta1") == obj


def test_v1_is_passed_through(ing):
    obj = v1_ingress(rules=[prefix_rule()])
    assert ing.convert_to_version(obj, "v1") is obj
    assert ing.convert_from_version(obj, "v1") is obj


def test_v1beta1_string_port_becomes_port_name(ing):
    beta = {"apiVersion": "networking.k8s.io/v1beta1", "kind": "Ingress",
            "metadata": {"name": "x", "namespace": "default"},
            "spec": {"backend": {"serviceName": "svc", "servicePort": "http"}}}
    v1 = ing.convert_from_version(beta, "v1beta1")
    assert v1["spec"] == {"defaultBackend": {"service": {"name": "svc", "port": {"name": "http"}}}}


def test_path_must_be_absolute(ing):
    assert messages(v1_ingress(rules=[prefix_rule(path="foo")])) == [
        'spec.rules[0].http.paths[0].path: Invalid value: "foo": must be an absolute path']


def test_path_type_required_in_v1(ing):
    assert messages(v1_ingress(rules=[prefix_rule(path_type=None)])) == [
        "spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified"]


def test_path_type_not_supported(ing):
    assert messages(v1_ingress(rules=[prefix_rule(path_type="Regex")])) == [
        'spec.rules[0].http.paths[0].pathType: Unsupported value: "Regex": supported values: '
        '"Exact", "ImplementationSpecific", "Prefix"']


def test_bad_path_sequences(ing):
    assert messages(v1_ingress(rules=[prefix_rule(path="/a//b/.")])) == [
        "spec.rules[0].http.paths[0].path: Invalid value: \"/a//b/.\": must not contain '//'",
        "spec.rules[0].http.paths[0].path: Invalid value: \"/a//b/.\": cannot end with '/.'"]


def test_implementation_specific_allows_empty_path(ing):
    assert messages(v1_ingress(rules=[prefix_rule(path="", path_type="ImplementationSpecific")])) \
        == []


def test_wildcard_host_only_as_first_label(ing):
    assert messages(v1_ingress(rules=[prefix_rule(host="*.foo.com")])) == []
    assert messages(v1_ingress(rules=[prefix_rule(host="foo.*.com")])) == [
        "spec.rules[0].host: Invalid value: \"foo.*.com\": a wildcard DNS-1123 subdomain must "
        "start with '*.', followed by a valid DNS subdomain, which must consist of lower case "
        "alphanumeric characters, '-' or '.' and end with an alphanumeric character (e.g. "
        "'*.example.com', regex used for validation is "
        "'\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"]


def test_host_must_be_subdomain_and_not_ip(ing):
    msgs = messages(v1_ingress(rules=[prefix_rule(host="Foo.com")]))
    assert msgs == ["spec.rules[0].host: Invalid value: \"Foo.com\": a lowercase RFC 1123 "
                    "subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                    "and must start and end with an alphanumeric character (e.g. 'example.com', "
                    "regex used for validation is "
                    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"]
    assert messages(v1_ingress(rules=[prefix_rule(host="10.0.0.1")])) == [
        'spec.rules[0].host: Invalid value: "10.0.0.1": must be a DNS name, not an IP address']


def test_backend_rules(ing):
    both = {"service": {"name": "a", "port": {"number": 80}},
            "resource": {"kind": "Bucket", "name": "b"}}
    assert messages(v1_ingress(defaultBackend=both)) == [
        'spec.defaultBackend: Invalid value: "": cannot set both resource and service backends']
    assert messages(v1_ingress(defaultBackend={})) == [
        'spec.defaultBackend: Invalid value: "": resource or service backend is required']
    no_port = {"service": {"name": "a", "port": {}}}
    assert messages(v1_ingress(defaultBackend=no_port)) == [
        "spec.defaultBackend: Required value: port name or number is required"]
    name_and_number = {"service": {"name": "a", "port": {"name": "http", "number": 80}}}
    assert messages(v1_ingress(defaultBackend=name_and_number)) == [
        'spec.defaultBackend: Invalid value: "": cannot set both port name & port number']
    big = {"service": {"name": "a", "port": {"number": 70000}}}
    assert messages(v1_ingress(defaultBackend=big)) == [
        "spec.defaultBackend.service.port.number: Invalid value: 70000: must be between 1 and "
        "65535, inclusive"]
    no_name = {"service": {"port": {"number": 80}}}
    assert messages(v1_ingress(defaultBackend=no_name)) == [
        "spec.defaultBackend.service.name: Required value"]
    resource = {"resource": {"kind": "", "name": "a/b"}}
    assert messages(v1_ingress(defaultBackend=resource)) == [
        "spec.defaultBackend.resource.kind: Required value: kind is required",
        "spec.defaultBackend.resource.name: Invalid value: \"a/b\": may not contain '/'"]


def test_rules_or_default_backend_required(ing):
    assert messages(v1_ingress()) == [
        "spec: Invalid value: []networking.IngressRule(nil): either `defaultBackend` or `rules` "
        "must be specified"]


def test_empty_paths_required(ing):
    assert messages(v1_ingress(rules=[{"host": "a.com", "http": {"paths": []}}])) == [
        "spec.rules[0].http.paths: Required value"]


def test_class_annotation_must_match_on_create_only(ing):
    obj = v1_ingress(ingressClassName="nginx", rules=[prefix_rule()])
    obj["metadata"]["annotations"] = {"kubernetes.io/ingress.class": "traefik"}
    expected = ('annotations.kubernetes.io/ingress.class: Invalid value: "traefik": must match '
                '`ingressClassName` when both are specified')
    assert messages(obj) == [expected]
    assert [str(e) for e in ing.validate_update(obj, copy.deepcopy(obj))] == []


def test_tls_hosts_and_secret_name(ing):
    obj = v1_ingress(rules=[prefix_rule()],
                     tls=[{"hosts": ["*.foo.com", "bad_host"], "secretName": "Bad"}])
    msgs = messages(obj)
    assert len(msgs) == 2
    assert msgs[0].startswith('spec.tls[0].hosts[1]: Invalid value: "bad_host": a lowercase RFC '
                              "1123 subdomain")
    assert msgs[1].startswith('spec.tls[0].secretName: Invalid value: "Bad": a lowercase RFC 1123')


def test_status_update_validation(ing):
    obj = v1_ingress(rules=[prefix_rule()])
    new = copy.deepcopy(obj)
    new["status"] = {"loadBalancer": {"ingress": [{"ip": "nope"}, {"hostname": "1.2.3.4"}]}}
    msgs = [str(e) for e in ing.validate_status_update(new, obj)]
    assert msgs == [
        'status.loadBalancer.ingress[0].ip: Invalid value: "nope": must be a valid IP address, '
        "(e.g. 10.9.8.7 or 2001:db8::ffff)",
        'status.loadBalancer.ingress[1].hostname: Invalid value: "1.2.3.4": must be a DNS name, '
        "not an IP address"]
    assert [str(e) for e in ing.validate_update(new, obj)] == msgs


def test_prepare_create_drops_status(ing):
    obj = v1_ingress(rules=[prefix_rule()])
    obj["status"] = {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}
    ing.prepare_create(obj)
    assert "status" not in obj


def test_warning_for_legacy_annotation_on_create(ing):
    stored = ing.convert_from_version(SEED_V1BETA1, "v1beta1")
    assert ing.warnings(stored) == [
        "annotation \"kubernetes.io/ingress.class\" is deprecated, please use "
        "'spec.ingressClassName' instead"]
    assert ing.warnings(stored, stored) == []
    assert ing.warnings(v1_ingress(rules=[prefix_rule()])) == []


def test_table(ing):
    assert [c.name for c in ing.columns] == ["Name", "Class", "Hosts", "Address", "Ports", "Age"]
    stored = ing.convert_from_version(SEED_V1BETA1, "v1beta1")
    stored["metadata"]["creationTimestamp"] = THREE_DAYS_AGO
    assert ing.table_row(stored) == ["my-ingress", "<none>", "example.com,another-example.com",
                                     "", "80, 443", "3d"]
    obj = v1_ingress(ingressClassName="nginx",
                     rules=[prefix_rule(host=h) for h in ("a.com", "b.com", "", "c.com", "d.com")])
    obj["metadata"]["creationTimestamp"] = THREE_DAYS_AGO
    obj["status"] = {"loadBalancer": {"ingress": [{"ip": "10.0.0.9"}, {"hostname": "lb.x"},
                                                  {"ip": "10.0.0.2"}]}}
    assert ing.table_row(obj) == ["web", "nginx", "a.com,b.com,c.com + 2 more...",
                                  "10.0.0.2,10.0.0.9,lb.x", "80", "3d"]
    assert ing.table_row(v1_ingress(defaultBackend={}))[2] == "*"
