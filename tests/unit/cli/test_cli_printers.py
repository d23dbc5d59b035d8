from nanokube.cli.printers import (TabWriter, cell_text, go_json, go_tabwriter, kind_string,
                                   strip_managed_fields, table_rows, to_json, to_yaml)

SVC_TABLE = {
    "kind": "Table",
    "columnDefinitions": [
        {"name": "Name", "priority": 0}, {"name": "Type", "priority": 0},
        {"name": "Cluster-IP", "priority": 0}, {"name": "Age", "priority": 0},
        {"name": "Selector", "priority": 1}],
    "rows": [
        {"cells": ["kubernetes", "ClusterIP", "10.96.0.1", "5d", "<none>"],
         "object": {"metadata": {"name": "kubernetes", "namespace": "default"}}},
        {"cells": ["my-svc", "LoadBalancer", "10.96.12.7", "5s", "app=x"],
         "object": {"metadata": {"name": "my-svc", "namespace": "kube-system"}}},
    ],
}


def test_tabwriter_pads_to_max_width_plus_three_and_not_the_last_column():
    out = TabWriter().format([["NAME", "TYPE", "AGE"], ["a-long-name", "ClusterIP", "5s"]])
    assert out == ("NAME          TYPE        AGE\n"
                   "a-long-name   ClusterIP   5s\n")


def test_tabwriter_minimum_width_is_six():
    # kubectl's tabwriter: minwidth 6 including the padding
    out = TabWriter().format([["A", "B"], ["xy", "z"]])
    assert out == "A     B\nxy    z\n"


def test_tabwriter_remembers_widths_across_calls_and_only_grows():
    w = TabWriter()
    assert w.format([["NAME", "AGE"], ["averyveryverylongname", "1s"]]).splitlines()[0] == \
        "NAME                    AGE"
    # a later (watch) row is laid out with the widths already used
    assert w.format([["b", "2s"]]) == "b" + " " * 23 + "2s\n"


def test_table_rows_upper_cases_headers_and_hides_wide_columns():
    rows = table_rows(SVC_TABLE)
    assert rows[0] == ["NAME", "TYPE", "CLUSTER-IP", "AGE"]
    assert rows[2] == ["my-svc", "LoadBalancer", "10.96.12.7", "5s"]
    wide = table_rows(SVC_TABLE, wide=True)
    assert wide[0][-1] == "SELECTOR" and wide[2][-1] == "app=x"


def test_table_rows_namespace_column_comes_from_row_objects():
    rows = table_rows(SVC_TABLE, with_namespace=True)
    assert rows[0][:2] == ["NAMESPACE", "NAME"]
    assert [r[0] for r in rows[1:]] == ["default", "kube-system"]
    text = TabWriter().format(rows)
    assert text.splitlines()[0] == "NAMESPACE     NAME         TYPE           CLUSTER-IP   AGE"


def test_cells_are_printed_like_go():
    assert cell_text(None) == ""
    assert cell_text(3) == "3"
    assert cell_text(True) == "true"
    assert cell_text("first\nsecond") == "first..."
    assert cell_text(["a", "b"]) == "[a b]"


def test_kind_string():
    assert kind_string("Service", "") == "service"
    assert kind_string("Deployment", "apps") == "deployment.apps"


def test_go_json_is_compact_sorted_and_escapes_html():
    assert go_json({"b": 1, "a": "<&>"}) == '{"a":"\\u003c\\u0026\\u003e","b":1}'


def test_to_json_indents_four_spaces():
    assert to_json({"b": [], "a": {}}) == '{\n    "a": {},\n    "b": []\n}\n'


def test_to_yaml_matches_go_yaml():
    obj = {"metadata": {"annotations": {"x": '{"a":1}\n'}, "resourceVersion": "123",
                        "name": "s"},
           "spec": {"ports": [{"port": 80, "name": ""}], "clusterIP": "10.0.0.1"},
           "apiVersion": "v1"}
    assert to_yaml(obj) == (
        "apiVersion: v1\n"
        "metadata:\n"
        "  annotations:\n"
        "    x: |\n"
        '      {"a":1}\n'
        "  name: s\n"
        '  resourceVersion: "123"\n'
        "spec:\n"
        "  clusterIP: 10.0.0.1\n"
        "  ports:\n"
        '  - name: ""\n'
        "    port: 80\n")


def test_to_yaml_does_not_wrap_long_lines():
    assert to_yaml({"k": "word " * 40}).count("\n") == 1


def test_strip_managed_fields():
    obj = {"metadata": {"name": "x", "managedFields": [{}]}}
    assert strip_managed_fields(obj) == {"metadata": {"name": "x"}}
    assert "managedFields" in obj["metadata"]


def test_go_tabwriter_aligns_blocks_and_a_line_without_tab_breaks_them():
    text = "Name:\tx\nIP Families:\tIPv4\nPort:\t<unset>\t80/TCP\nEvents:\n  Type\tReason\n  ----\t------\n"
    assert go_tabwriter(text) == (
        "Name:         x\n"
        "IP Families:  IPv4\n"
        "Port:         <unset>  80/TCP\n"
        "Events:\n"
        "  Type  Reason\n"
        "  ----  ------\n")
