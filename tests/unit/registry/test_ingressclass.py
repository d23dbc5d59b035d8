import copy
import datetime as dt

from nanokube.registry.ingressclass import IngressClassStrategy, is_default_class

THREE_DAYS_AGO = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=3)).strftime(
    "%Y-%m-%dT%H:%M:%SZ")


def ic(**spec):
    return {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": "nginx", "creationTimestamp": THREE_DAYS_AGO},
            "spec": {"controller": "k8s.io/ingress-nginx", **spec}}


def test_discovery_facts():
    s = IngressClassStrategy()
    assert (s.group, s.plural, s.singular, s.namespaced, s.short_names, s.served_versions) == (
        "networking.k8s.io", "ingressclasses", "ingressclass", False, (), ("v1",))


def test_default_scope_and_valid():
    s = IngressClassStrategy()
    obj = ic(parameters={"apiGroup": "k8s.example.com", "kind": "Params", "name": "p"})
    s.default(obj)
    assert obj["spec"]["parameters"]["scope"] == "Cluster"
    assert s.validate(obj) == []


def test_controller_rules():
    s = IngressClassStrategy()
    assert [str(e) for e in s.validate(ic(controller="nginx"))] == [
        'spec.controller: Invalid value: "nginx": must be a domain-prefixed path (such as '
        '"acme.io/foo")']
    assert [str(e) for e in s.validate(ic(controller=""))] == ["spec.controller: Required value"]


def test_parameters_scope():
    s = IngressClassStrategy()
    obj = ic(parameters={"kind": "Params", "name": "p", "scope": "Namespace"})
    assert [str(e) for e in s.validate(obj)] == [
        "spec.parameters.namespace: Required value: `parameters.scope` is set to 'Namespace'"]
    obj = ic(parameters={"kind": "Params", "name": "p", "scope": "Cluster", "namespace": "x"})
    assert [str(e) for e in s.validate(obj)] == [
        "spec.parameters.namespace: Forbidden: `parameters.scope` is set to 'Cluster'"]


def test_controller_is_immutable():
    s = IngressClassStrategy()
    old = ic()
    new = copy.deepcopy(old)
    new["spec"]["controller"] = "example.com/other"
    assert [str(e) for e in s.validate_update(new, old)] == [
        'spec.controller: Invalid value: "example.com/other": field is immutable']


def test_table_and_default_annotation():
    s = IngressClassStrategy()
    assert [c.name for c in s.columns] == ["Name", "Controller", "Parameters", "Age"]
    assert s.table_row(ic()) == ["nginx", "k8s.io/ingress-nginx", "<none>", "3d"]
    obj = ic(parameters={"apiGroup": "k8s.example.com", "kind": "Params", "name": "p"})
    assert s.table_row(obj)[2] == "Params.k8s.example.com/p"
    assert not is_default_class(obj)
    obj["metadata"]["annotations"] = {"ingressclass.kubernetes.io/is-default-class": "true"}
    assert is_default_class(obj)
