"""Kubernetes' Ingress routing semantics on the model (reference §1.2), via model.route()."""
from __future__ import annotations

import pytest

from ingress_helpers import backend, endpointslice, ingress, path, rule, service
from nanokube.ingress import model

SERVICES = [service(n) for n in ("web", "a", "b", "c", "d", "dflt")]
SLICES = [endpointslice("web", ["10.0.0.1", "10.0.0.2"])]


def build(*ings, **kw):
    return model.build(list(ings), kw.pop("services", SERVICES), kw.pop("slices", SLICES),
                       kw.pop("secrets", []), **kw)


def served(config, host, p):
    r = model.route(config, host, p)
    if r is None:
        return None
    return r.backend.service if isinstance(r, model.Location) else "default:" + r.service


# The Kubernetes docs' examples table (path type, rule paths, request path, match?).
DOCS_TABLE = [
    ("Prefix", ["/"], "/anything", True),
    ("Exact", ["/foo"], "/foo", True),
    ("Exact", ["/foo"], "/bar", False),
    ("Exact", ["/foo"], "/foo/", False),
    ("Exact", ["/foo/"], "/foo", False),
    ("Prefix", ["/foo"], "/foo", True),
    ("Prefix", ["/foo"], "/foo/", True),
    ("Prefix", ["/foo/"], "/foo", True),
    ("Prefix", ["/foo/"], "/foo/", True),
    ("Prefix", ["/aaa/bb"], "/aaa/bbb", False),
    ("Prefix", ["/aaa/bbb"], "/aaa/bbb", True),
    ("Prefix", ["/aaa/bbb/"], "/aaa/bbb", True),
    ("Prefix", ["/aaa/bbb"], "/aaa/bbb/", True),
    ("Prefix", ["/aaa/bbb"], "/aaa/bbb/ccc", True),
    ("Prefix", ["/aaa/bbb"], "/aaa/bbbxyz", False),
    ("Prefix", ["/aaa"], "/ccc", False),
    ("Prefix", ["/foo"], "/FOO", False),
    ("ImplementationSpecific", ["/foo"], "/foo/bar", True),
    ("ImplementationSpecific", ["/foo"], "/foobar", False),
]


@pytest.mark.parametrize("path_type,paths,request_path,matches", DOCS_TABLE)
def test_docs_table(path_type, paths, request_path, matches):
    config = build(ingress("i", rule("foo.com", *[path(p, path_type) for p in paths])))
    assert (served(config, "foo.com", request_path) == "web") is matches


def test_longest_match_wins_and_default_for_ccc():
    config = build(ingress("i", rule("", path("/", service="a"), path("/aaa", service="b"),
                                     path("/aaa/bbb", service="c"))))
    assert served(config, "x", "/ccc") == "a"
    assert served(config, "x", "/aaa/ccc") == "b"
    assert served(config, "x", "/aaa/bbb/x") == "c"


def test_exact_beats_prefix_for_the_same_path():
    config = build(ingress("i", rule("foo.com", path("/foo", "Prefix", "a"),
                                     path("/foo", "Exact", "b"))))
    assert served(config, "foo.com", "/foo") == "b"
    assert served(config, "foo.com", "/foo/x") == "a"


def test_query_string_is_ignored():
    config = build(ingress("i", rule("foo.com", path("/foo", "Exact"))))
    assert served(config, "foo.com", "/foo?x=1") == "web"


def test_hosts_exact_wildcard_one_label_and_catch_all():
    config = build(ingress("i", rule("foo.bar.com", path("/", service="a")),
                           rule("*.bar.com", path("/", service="b")),
                           rule("", path("/", service="c"))))
    assert served(config, "foo.bar.com", "/") == "a"
    assert served(config, "baz.bar.com", "/") == "b"
    assert served(config, "baz.foo.bar.com", "/") == "c"     # wildcard is one label only
    assert served(config, "bar.com", "/") == "c"
    assert served(config, "other.org", "/") == "c"
    assert served(config, "FOO.bar.com:8080", "/") == "a"


def test_unmatched_host_or_path_goes_to_404_default_or_default_backend():
    config = build(ingress("i", rule("foo.com", path("/foo"))))
    assert served(config, "foo.com", "/bar") is None
    assert served(config, "other.com", "/") is None
    config = build(ingress("i", rule("foo.com", path("/foo")), default=backend("dflt")))
    assert served(config, "foo.com", "/bar") == "default:dflt"
    assert served(config, "other.com", "/") == "default:dflt"


def test_default_backend_of_the_oldest_ingress():
    config = build(ingress("new", ts="2024-02-01T00:00:00Z", default=backend("b")),
                   ingress("old", ts="2024-01-01T00:00:00Z", default=backend("a")))
    assert config.default_backend.service == "a"
    assert any(e[0] == "default/new" and e[1] == "Warning" for e in config.events)


def test_merge_and_conflict_by_age_with_event():
    older = ingress("older", rule("foo.com", path("/a", service="a"), path("/x", service="a")),
                    ts="2024-01-01T00:00:00Z")
    newer = ingress("newer", rule("foo.com", path("/b", service="b"), path("/x/", service="b")),
                    ts="2024-03-01T00:00:00Z")
    config = build(newer, older)
    assert served(config, "foo.com", "/a") == "a"
    assert served(config, "foo.com", "/b") == "b"
    assert served(config, "foo.com", "/x") == "a"
    assert [e[:3] for e in config.events] == [("default/newer", "Warning", "Conflict")]


def test_same_timestamp_tie_broken_by_namespace_and_name():
    one = ingress("zzz", rule("foo.com", path("/", service="a")), ns="aaa")
    two = ingress("aaa", rule("foo.com", path("/", service="b")), ns="bbb")
    config = build(two, one, services=[service("a", "aaa"), service("b", "bbb")])
    assert served(config, "foo.com", "/") == "a"


def test_backends_by_port_number_and_name_resolve_ready_endpoints():
    svc = service("web", ports=(("http", 80, 8080), ("admin", 81, 9090)))
    slices = [endpointslice("web", ["10.0.0.1", "10.0.0.2"], ports=(("http", 8080), ("admin", 9090))),
              endpointslice("web", ["10.0.0.3"], ready=False),
              endpointslice("web", ["10.0.0.4"], ns="other")]
    config = build(ingress("i", rule("foo.com", path("/n", port=80), path("/m", port="admin"))),
                   services=[svc], slices=slices)
    by_path = {loc.path: loc.backend for loc in config.servers[0].locations}
    assert by_path["/n"].endpoints == [("10.0.0.1", 8080), ("10.0.0.2", 8080)]
    assert by_path["/m"].endpoints == [("10.0.0.1", 9090), ("10.0.0.2", 9090)]


def test_missing_service_gives_backend_without_endpoints_and_event():
    config = build(ingress("i", rule("foo.com", path("/", service="nope"))))
    loc = config.servers[0].locations[0]
    assert loc.backend.service == "nope" and loc.backend.endpoints == []
    assert config.events[0][2] == "ServiceNotFound"


def test_v1beta1_backend_fields():
    ing = ingress("i", rule("foo.com", {"path": "/", "backend": {"serviceName": "web",
                                                                  "servicePort": 80}}))
    ing["spec"]["backend"] = {"serviceName": "dflt", "servicePort": "http"}
    config = build(ing)
    loc = config.servers[0].locations[0]
    assert (loc.path_type, loc.backend.service, loc.backend.endpoints[0]) == \
        ("ImplementationSpecific", "web", ("10.0.0.1", 8080))
    assert config.default_backend.port == "http"


def test_tls_hosts_secret_default_cert_and_redirect():
    secrets = [{"metadata": {"name": "foo-tls", "namespace": "default"}, "type": "kubernetes.io/tls"}]
    config = build(ingress("a", rule("foo.com", path("/")), rule("bar.com", path("/")),
                           rule("plain.com", path("/")),
                           tls=[{"hosts": ["foo.com"], "secretName": "foo-tls"},
                                {"hosts": ["bar.com"]}]),
                   ingress("b", rule("off.com", path("/")), tls=[{"hosts": ["off.com"],
                                                                   "secretName": "missing"}],
                           annotations={"nginx.ingress.kubernetes.io/ssl-redirect": "false"}),
                   secrets=secrets)
    s = {srv.host: srv for srv in config.servers}
    assert (s["foo.com"].tls, s["foo.com"].tls_secret, s["foo.com"].ssl_redirect) == \
        (True, "default/foo-tls", True)
    assert (s["bar.com"].tls, s["bar.com"].tls_secret, s["bar.com"].ssl_redirect) == (True, None, True)
    assert (s["plain.com"].tls, s["plain.com"].ssl_redirect) == (False, False)
    assert (s["off.com"].tls, s["off.com"].tls_secret, s["off.com"].ssl_redirect) == (True, None, False)
    assert ("default/b", "Warning", "SecretNotFound") in [e[:3] for e in config.events]



def test_tls_entry_without_secret_name_serves_the_default_issuers_secret():
    """cert-manager's default issuer stores such an entry's certificate as <ingress>-tls
    (<ingress>-tls-<index> after the first entry); until it exists: the default certificate."""
    ing = ingress("a", rule("foo.com", path("/")), rule("bar.com", path("/")),
                  tls=[{"hosts": ["foo.com"]}, {"hosts": ["bar.com"]}])
    s = {srv.host: srv for srv in build(ing).servers}
    assert (s["foo.com"].tls_secret, s["bar.com"].tls_secret) == (None, None)
    secrets = [{"metadata": {"name": n, "namespace": "default"}, "type": "kubernetes.io/tls"}
               for n in ("a-tls", "a-tls-1")]
    s = {srv.host: srv for srv in build(ing, secrets=secrets).servers}
    assert (s["foo.com"].tls_secret, s["bar.com"].tls_secret) == ("default/a-tls",
                                                                  "default/a-tls-1")

CLASSES = [{"metadata": {"name": "nginx"}, "spec": {"controller": "k8s.io/ingress-nginx"}},
           {"metadata": {"name": "other"}, "spec": {"controller": "example.com/other"}}]
DEFAULT = [{"metadata": {"name": "nginx",
                         "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
            "spec": {"controller": "k8s.io/ingress-nginx"}}]


@pytest.mark.parametrize("class_name,annotation,classes,owned", [
    ("nginx", None, CLASSES, True),
    ("other", None, CLASSES, False),
    ("unknown", None, CLASSES, False),
    (None, "nginx", CLASSES, True),
    (None, "other", CLASSES, False),
    (None, None, CLASSES, False),
    (None, None, DEFAULT, True),
    ("nginx", None, [], True),
])
def test_owns(class_name, annotation, classes, owned):
    ing = ingress("i", cls=False)
    if class_name:
        ing["spec"]["ingressClassName"] = class_name
    if annotation:
        ing["metadata"]["annotations"]["kubernetes.io/ingress.class"] = annotation
    assert model.owns(ing, "nginx", "k8s.io/ingress-nginx", classes) is owned


def test_ingresses_of_other_classes_are_not_built():
    config = build(ingress("mine", rule("a.com", path("/"))),
                   ingress("theirs", rule("b.com", path("/")), cls=False,
                           annotations={"kubernetes.io/ingress.class": "traefik"}))
    assert [s.host for s in config.servers] == ["a.com"]
