from nanokube.cli.get import TABLE_ACCEPT, TablePrinter
from nanokube.cli.main import main


def run(api, *argv):
    return main(["--kubeconfig", str(api.kubeconfig), *argv])


def add(api, name, ns="default", type_="ClusterIP"):
    api.objects[(ns, name)] = {"apiVersion": "v1", "kind": "Service",
                               "metadata": {"name": name, "namespace": ns,
                                            "managedFields": [{"manager": "x"}]},
                               "spec": {"type": type_}}


def test_get_prints_the_servers_table(fake_api, capsys):
    add(fake_api, "kubernetes")
    add(fake_api, "web-frontend", type_="LoadBalancer")
    assert run(fake_api, "get", "svc") == 0
    assert capsys.readouterr().out == ("NAME           TYPE\n"
                                       "kubernetes     ClusterIP\n"
                                       "web-frontend   LoadBalancer\n")
    assert any(r[1] == "/api/v1/namespaces/default/services" for r in fake_api.requests)
    assert run(fake_api, "get", "services", "-o", "wide") == 0
    assert capsys.readouterr().out.splitlines()[0] == "NAME           TYPE           SELECTOR"


def test_get_empty_says_no_resources(fake_api, capsys):
    assert run(fake_api, "get", "svc", "-n", "team") == 0
    out = capsys.readouterr()
    assert (out.out, out.err) == ("", "No resources found in team namespace.\n")


def test_get_unknown_kind_and_missing_name(fake_api, capsys):
    assert run(fake_api, "get", "gadgets") == 1
    assert capsys.readouterr().err == 'error: the server doesn\'t have a resource type "gadgets"\n'
    assert run(fake_api, "get", "svc/nope") == 1
    assert capsys.readouterr().err == 'Error from server (NotFound): services "nope" not found\n'


def test_get_yaml_list_and_single_json(fake_api, capsys):
    add(fake_api, "a")
    assert run(fake_api, "get", "svc", "-o", "yaml") == 0
    out = capsys.readouterr().out
    assert out.startswith("apiVersion: v1\nitems:\n- apiVersion: v1\n  kind: Service\n")
    assert out.endswith("kind: List\nmetadata:\n  resourceVersion: \"\"\n")
    assert "managedFields" not in out
    assert run(fake_api, "get", "svc", "a", "-o", "json") == 0
    out = capsys.readouterr().out
    assert out.startswith('{\n    "apiVersion": "v1",\n    "kind": "Service",\n')
    assert run(fake_api, "get", "svc", "-o", "name") == 0
    assert capsys.readouterr().out == "service/a\n"


def test_table_printer_prints_the_header_once_and_reuses_columns():
    cols = [{"name": "Name", "priority": 0}, {"name": "Age", "priority": 0}]
    p = TablePrinter()
    assert p.format({"columnDefinitions": cols, "rows": []}) == ""
    first = p.format({"columnDefinitions": cols, "rows": [{"cells": ["a", "1s"]}]})
    assert first == "NAME   AGE\na      1s\n"
    # watch events: no column definitions, no header again
    assert p.format({"rows": [{"cells": ["b", "2s"]}]}) == "b      2s\n"


def test_table_accept_header_is_kubectls():
    assert TABLE_ACCEPT == ("application/json;as=Table;v=v1;g=meta.k8s.io,"
                            "application/json;as=Table;v=v1beta1;g=meta.k8s.io,"
                            "application/json")


def test_delete_by_name_and_not_found(fake_api, capsys):
    add(fake_api, "a")
    assert run(fake_api, "delete", "svc", "a") == 0
    assert capsys.readouterr().out == 'service "a" deleted\n'
    method, path, _, body = [r for r in fake_api.requests if r[0] == "DELETE"][0]
    assert path == "/api/v1/namespaces/default/services/a"
    assert body == {"kind": "DeleteOptions", "apiVersion": "v1",
                    "propagationPolicy": "Background"}
    assert run(fake_api, "delete", "svc", "a") == 1
    assert capsys.readouterr().err == 'Error from server (NotFound): services "a" not found\n'


def test_describe_service_through_the_api(fake_api, capsys):
    fake_api.objects[("default", "a")] = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "a", "namespace": "default", "uid": "u"},
        "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.9", "clusterIPs": ["10.96.0.9"],
                 "sessionAffinity": "None",
                 "ports": [{"port": 80, "targetPort": 80, "protocol": "TCP"}]}}
    assert run(fake_api, "describe", "svc", "a") == 0
    out = capsys.readouterr().out
    assert out.startswith("Name:              a\nNamespace:         default\n")
    # endpointslices and events could not be listed: kubectl shows <none> and no Events
    assert "Endpoints:         <none>\n" in out and "Events" not in out
    from urllib.parse import parse_qsl, urlsplit
    calls = [(urlsplit(r[1]).path, dict(parse_qsl(urlsplit(r[1]).query)))
             for r in fake_api.requests]
    assert ("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
            {"labelSelector": "kubernetes.io/service-name=a"}) in calls
    assert ("/api/v1/namespaces/default/events",
            {"fieldSelector": "involvedObject.name=a,involvedObject.namespace=default,"
                              "involvedObject.kind=Service,involvedObject.uid=u",
             "limit": "500"}) in calls
