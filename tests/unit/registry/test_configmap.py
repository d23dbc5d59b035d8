import copy
import datetime as dt

from nanokube.registry.configmap import ConfigMapStrategy

THREE_DAYS_AGO = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=3)).strftime(
    "%Y-%m-%dT%H:%M:%SZ")


def cm(**extra):
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cfg", "namespace": "default",
                         "creationTimestamp": THREE_DAYS_AGO}, **extra}


def test_discovery_facts():
    s = ConfigMapStrategy()
    assert (s.plural, s.singular, s.short_names) == ("configmaps", "configmap", ("cm",))


def test_keys_and_duplicates():
    s = ConfigMapStrategy()
    obj = cm(data={"ok.key": "1", "a/b": "2", "dup": "3"}, binaryData={"dup": "AA=="})
    assert [str(e) for e in s.validate(obj)] == [
        "data[a/b]: Invalid value: \"a/b\": a valid config key must consist of alphanumeric "
        "characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex "
        "used for validation is '[-._a-zA-Z0-9]+')",
        'data[dup]: Invalid value: "dup": duplicate of key present in binaryData',
        'binaryData[dup]: Invalid value: "dup": duplicate of key present in data']


def test_immutable():
    s = ConfigMapStrategy()
    old = cm(data={"a": "1"}, immutable=True)
    same = copy.deepcopy(old)
    assert s.validate_update(same, old) == []
    new = cm(data={"a": "2"})
    assert [str(e) for e in s.validate_update(new, old)] == [
        "immutable: Forbidden: field is immutable when `immutable` is set",
        "data: Forbidden: field is immutable when `immutable` is set"]


def test_table():
    s = ConfigMapStrategy()
    assert [c.name for c in s.columns] == ["Name", "Data", "Age"]
    assert s.table_row(cm(data={"a": "1", "b": "2"}, binaryData={"c": "AA=="})) == [
        "cfg", 3, "3d"]
    assert s.table_row(cm()) == ["cfg", 0, "3d"]
