import io

import pytest

from nanokube.cli.errors import CLIError
from nanokube.cli.manifests import load_manifests, parse_documents


def test_multi_document_yaml_skips_empty_documents():
    text = ("---\napiVersion: v1\nkind: Service\nmetadata:\n  name: a\n---\n---\n"
            "# only a comment\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: b\n")
    assert [o["metadata"]["name"] for o in parse_documents(text, "f.yaml")] == ["a", "b"]


def test_json_document():
    objs = parse_documents('{"apiVersion":"v1","kind":"Service","metadata":{"name":"j"}}', "f")
    assert objs[0]["metadata"]["name"] == "j"


def test_list_is_expanded():
    text = "apiVersion: v1\nkind: List\nitems:\n- kind: Service\n  metadata: {name: a}\n" \
           "- kind: Service\n  metadata: {name: b}\n"
    assert [o["metadata"]["name"] for o in parse_documents(text, "f")] == ["a", "b"]


def test_missing_kind_is_an_error():
    with pytest.raises(CLIError, match="Object 'Kind' is missing"):
        parse_documents("apiVersion: v1\nmetadata: {name: a}\n", "f.yaml")


def test_bad_yaml_is_an_error_naming_the_file():
    with pytest.raises(CLIError, match="error parsing f.yaml"):
        parse_documents("a: [b\n", "f.yaml")


def test_directory_files_sorted_and_other_files_ignored(tmp_path):
    (tmp_path / "b.yaml").write_text("kind: Service\nmetadata: {name: b}\n")
    (tmp_path / "a.json").write_text('{"kind": "Service", "metadata": {"name": "a"}}')
    (tmp_path / "notes.txt").write_text("kind: Service\n")
    got = load_manifests([str(tmp_path)])
    assert [(s.rsplit("/", 1)[-1], o["metadata"]["name"]) for s, o in got] == \
        [("a.json", "a"), ("b.yaml", "b")]


def test_stdin_source_is_named_STDIN(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("kind: Service\nmetadata: {name: s}\n"))
    assert load_manifests(["-"])[0][0] == "STDIN"


def test_missing_path():
    with pytest.raises(CLIError, match='the path "/nonexistent.yaml" does not exist'):
        load_manifests(["/nonexistent.yaml"])
