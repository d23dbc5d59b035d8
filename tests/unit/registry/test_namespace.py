import datetime as dt

from nanokube.registry.namespace import NamespaceStrategy

THREE_DAYS_AGO = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=3)).strftime(
    "%Y-%m-%dT%H:%M:%SZ")


def ns(name="team-a", **extra):
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "creationTimestamp": THREE_DAYS_AGO}, **extra}


def test_discovery_facts():
    s = NamespaceStrategy()
    assert (s.plural, s.singular, s.short_names, s.namespaced, s.has_status) == (
        "namespaces", "namespace", ("ns",), False, True)


def test_create_defaults_label_finalizer_and_phase():
    s = NamespaceStrategy()
    obj = ns(status={"phase": "Terminating"})
    s.default(obj)
    s.prepare_create(obj)
    assert obj["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team-a"}
    assert obj["spec"] == {"finalizers": ["kubernetes"]}
    assert obj["status"] == {"phase": "Active"}
    assert s.validate(obj) == []


def test_extra_finalizer_keeps_kubernetes():
    s = NamespaceStrategy()
    obj = ns(spec={"finalizers": ["example.com/cleanup"]})
    s.prepare_create(obj)
    assert obj["spec"]["finalizers"] == ["example.com/cleanup", "kubernetes"]


def test_update_keeps_finalizers_and_status():
    s = NamespaceStrategy()
    old = ns(spec={"finalizers": ["kubernetes"]}, status={"phase": "Active"})
    new = ns(spec={"finalizers": []}, status={"phase": "Terminating"})
    s.prepare_update(new, old)
    assert new["spec"]["finalizers"] == ["kubernetes"]
    assert new["status"] == {"phase": "Active"}


def test_name_is_a_dns_label():
    s = NamespaceStrategy()
    errs = [str(e) for e in s.validate(ns("a.b"))]
    assert errs == ["metadata.name: Invalid value: \"a.b\": a lowercase RFC 1123 label must "
                    "consist of lower case alphanumeric characters or '-', and must start and "
                    "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
                    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"]


def test_bad_finalizer():
    s = NamespaceStrategy()
    errs = [str(e) for e in s.validate(ns(spec={"finalizers": ["cleanup"]}))]
    assert errs == ['spec.finalizers[0]: Invalid value: "cleanup": name is neither a standard '
                    "finalizer name nor is it fully qualified"]


def test_table_and_fields():
    s = NamespaceStrategy()
    obj = ns(status={"phase": "Active"})
    assert [c.name for c in s.columns] == ["Name", "Status", "Age"]
    assert s.table_row(obj) == ["team-a", "Active", "3d"]
    assert s.field_labels(obj) == {"status.phase": "Active"}
