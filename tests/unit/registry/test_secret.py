import base64
import copy
import datetime as dt

import pytest

from nanokube.api.errors import StatusError
from nanokube.registry.secret import SecretStrategy

THREE_DAYS_AGO = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=3)).strftime(
    "%Y-%m-%dT%H:%M:%SZ")


def b64(text):
    return base64.b64encode(text.encode()).decode()


def secret(**extra):
    return {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "namespace": "default",
                         "creationTimestamp": THREE_DAYS_AGO}, **extra}


def test_discovery_facts():
    s = SecretStrategy()
    assert (s.plural, s.singular, s.short_names, s.has_status) == ("secrets", "secret", (),
                                                                     False)


def test_default_type_and_string_data():
    s = SecretStrategy()
    obj = secret(data={"a": b64("old")}, stringData={"a": "new", "b": "two"})
    s.default(obj)
    assert obj["type"] == "Opaque"
    assert obj["data"] == {"a": b64("new"), "b": b64("two")}
    assert "stringData" not in obj


def test_tls_requires_cert_and_key():
    s = SecretStrategy()
    obj = secret(type="kubernetes.io/tls", data={"tls.crt": b64("cert")})
    assert [str(e) for e in s.validate(obj)] == ["data[tls.key]: Required value"]
    obj["data"]["tls.key"] = b64("key")
    assert s.validate(obj) == []


def test_data_keys():
    s = SecretStrategy()
    obj = secret(type="Opaque", data={"bad key": b64("x"), "..hidden": b64("y")})
    assert [str(e) for e in s.validate(obj)] == [
        "data[..hidden]: Invalid value: \"..hidden\": must not start with '..'",
        "data[bad key]: Invalid value: \"bad key\": a valid config key must consist of "
        "alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or "
        "'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"]


def test_bad_base64_is_a_bad_request():
    s = SecretStrategy()
    with pytest.raises(StatusError) as exc:
        s.convert_from_version(secret(data={"a": "no!"}), "v1")
    assert exc.value.code == 400
    assert exc.value.message == ('Secret in version "v1" cannot be handled as a Secret: illegal '
                                 "base64 data at input byte 2")


def test_type_and_immutable_data():
    s = SecretStrategy()
    old = secret(type="Opaque", immutable=True, data={"a": b64("1")})
    new = copy.deepcopy(old)
    new["type"] = "kubernetes.io/basic-auth"
    new["data"] = {"username": b64("u")}
    assert [str(e) for e in s.validate_update(new, old)] == [
        'type: Invalid value: "kubernetes.io/basic-auth": field is immutable',
        "data: Forbidden: field is immutable when `immutable` is set"]


def test_table_and_fields():
    s = SecretStrategy()
    obj = secret(type="kubernetes.io/tls", data={"tls.crt": "", "tls.key": ""})
    assert [c.name for c in s.columns] == ["Name", "Type", "Data", "Age"]
    assert s.table_row(obj) == ["s", "kubernetes.io/tls", 2, "3d"]
    assert s.field_labels(obj) == {"type": "kubernetes.io/tls"}
