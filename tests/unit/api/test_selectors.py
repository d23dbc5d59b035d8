import pytest

from nanokube.api.errors import StatusError
from nanokube.api.selectors import (escape_field_value, from_label_selector_object,
                                    object_meta_fields, parse_field_selector,
                                    parse_label_selector)

QN_REGEX_HELP = ("must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
                 "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', "
                 "regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")


def label_error(selector):
    with pytest.raises(StatusError) as e:
        parse_label_selector(selector)
    assert e.value.code == 400 and e.value.reason == "BadRequest"
    return e.value.message


@pytest.mark.parametrize("selector,labels,expected", [
    ("", {"a": "b"}, True),
    ("", {}, True),
    ("app=web", {"app": "web"}, True),
    ("app=web", {"app": "db"}, False),
    ("app=web", {}, False),
    ("app==web", {"app": "web"}, True),
    ("app!=web", {"app": "db"}, True),
    ("app!=web", {}, True),
    ("app!=web", {"app": "web"}, False),
    ("env in (prod,dev)", {"env": "dev"}, True),
    ("env in (prod,dev)", {"env": "qa"}, False),
    ("env in (prod,dev)", {}, False),
    ("env notin (prod,dev)", {"env": "qa"}, True),
    ("env notin (prod,dev)", {}, True),
    ("env notin (prod,dev)", {"env": "prod"}, False),
    ("env", {"env": ""}, True),
    ("env", {"x": "y"}, False),
    ("!env", {"x": "y"}, True),
    ("!env", {"env": "y"}, False),
    ("app=web,tier", {"app": "web", "tier": "fe"}, True),
    ("app=web,tier", {"app": "web"}, False),
    ("  app = web ,  env   in(a , b) , ! gone ", {"app": "web", "env": "b"}, True),
    ("app=", {"app": ""}, True),
    ("app=", {"app": "x"}, False),
    ("x in (in)", {"x": "in"}, True),
    ("in=notin", {"in": "notin"}, True),
    ("example.com/role=db", {"example.com/role": "db"}, True),
    ("x in (a,)", {"x": ""}, True),
    ("x in ()", {"x": ""}, True),
    ("n>3", {"n": "4"}, True),
    ("n>3", {"n": "3"}, False),
    ("n<3", {"n": "-1"}, True),
    ("n<3", {"n": "abc"}, False),
    ("n>3", {}, False),
])
def test_label_selector_matching(selector, labels, expected):
    assert parse_label_selector(selector).matches(labels) is expected


def test_label_selector_none_labels_and_string_form():
    sel = parse_label_selector("tier,app=web,env notin (b,a),!x")
    assert sel.matches(None) is False
    assert str(sel) == "app=web,env notin (a,b),tier,!x"
    assert parse_label_selector(None).empty()
    assert parse_label_selector("app in (web)").requires_exact_match("app") == "web"
    assert parse_label_selector("app!=web").requires_exact_match("app") is None


@pytest.mark.parametrize("selector,message", [
    ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
    ("a=b c", "found 'c', expected: ',' or 'end of string'"),
    ("a=b,", "found '', expected: identifier after ','"),
    ("a=b,,c", "found ',', expected: identifier after ','"),
    (",a", "found ',', expected: !, identifier, or 'end of string'"),
    ("=a", "found '=', expected: !, identifier, or 'end of string'"),
    ("!", "unable to parse requirement: found '', expected: identifier"),
    ("!a=b", "found '=', expected: ',' or 'end of string'"),
    ("a in b", "unable to parse requirement: found 'b' expected: '('"),
    ("a in (b", "unable to parse requirement: found '', expected: ',' or ')'"),
    ("a in (b c)", "unable to parse requirement: found 'c', expected: ',' or ')'"),
    ("a in (=)", "unable to parse requirement: found '=', expected: ',', ')' or identifier"),
    ("a in (b,=)", "unable to parse requirement: found '=', expected: ',', or identifier"),
    ("a==(", "unable to parse requirement: found '(', expected: identifier"),
    ("app:web", 'unable to parse requirement: <nil>: Invalid value: "app:web": name part '
                + QN_REGEX_HELP),
    ("a=-b", 'unable to parse requirement: values[0][a]: Invalid value: "-b": a valid label must '
             "be an empty string or consist of alphanumeric characters, '-', '_' or '.', and "
             "must start and end with an alphanumeric character (e.g. 'MyValue',  or "
             "'my_value',  or '12345', regex used for validation is "
             "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"),
    ("n>x", 'unable to parse requirement: values[0]: Invalid value: "x": for \'Gt\', \'Lt\' '
            "operators, the value must be an integer"),
])
def test_label_selector_errors(selector, message):
    assert label_error(selector) == message


def test_label_selector_multiple_value_errors_are_aggregated():
    message = label_error("a in (-x,-y)")
    assert message.startswith("unable to parse requirement: [values[0][a]: Invalid value: \"-x\"")
    assert 'values[1][a]: Invalid value: "-y"' in message and message.endswith("]")


def test_label_selector_object():
    sel = from_label_selector_object({
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "env", "operator": "In", "values": ["prod", "qa"]},
            {"key": "canary", "operator": "DoesNotExist"},
            {"key": "tier", "operator": "Exists"},
            {"key": "zone", "operator": "NotIn", "values": ["z1"]},
        ]})
    good = {"app": "web", "env": "qa", "tier": "fe", "zone": "z2"}
    assert sel.matches(good)
    assert not sel.matches({**good, "canary": "1"})
    assert not sel.matches({**good, "env": "dev"})
    assert not sel.matches({**good, "zone": "z1"})
    assert not sel.matches({k: v for k, v in good.items() if k != "tier"})


def test_label_selector_object_nil_and_empty():
    assert from_label_selector_object(None).matches({"a": "b"}) is False
    assert from_label_selector_object(None).matches({}) is False
    assert from_label_selector_object({}).matches({"a": "b"}) is True
    assert from_label_selector_object({"matchLabels": {}, "matchExpressions": []}).empty()


def test_label_selector_object_errors():
    with pytest.raises(StatusError) as e:
        from_label_selector_object({"matchExpressions": [{"key": "a", "operator": "Gt"}]})
    assert e.value.message == '"Gt" is not a valid label selector operator'
    with pytest.raises(StatusError) as e:
        from_label_selector_object({"matchExpressions": [{"key": "a", "operator": "In"}]})
    assert e.value.message == ("values: Invalid value: []string{}: for 'in', 'notin' operators, "
                               "values set can't be empty")
    with pytest.raises(StatusError) as e:
        from_label_selector_object({"matchExpressions": [
            {"key": "a", "operator": "Exists", "values": ["x"]}]})
    assert e.value.message == ('values: Invalid value: []string{"x"}: values set must be empty '
                               "for exists and does not exist")
    with pytest.raises(StatusError) as e:
        from_label_selector_object({"matchLabels": {"bad key": "x"}})
    assert e.value.message.startswith('key: Invalid value: "bad key": name part must consist')


# --- field selectors -----------------------------------------------------------------------------

FIELDS = {"metadata.name": "web", "metadata.namespace": "default", "spec.type": "ClusterIP"}


@pytest.mark.parametrize("selector,expected", [
    ("", True),
    ("metadata.name=web", True),
    ("metadata.name==web", True),
    ("metadata.name=db", False),
    ("metadata.name!=db", True),
    ("metadata.name!=web", False),
    ("metadata.name=web,spec.type=ClusterIP", True),
    ("metadata.name=web,spec.type=NodePort", False),
    ("spec.clusterIP=", True),  # a missing field reads as ""
    ("spec.clusterIP!=", False),
    ("metadata.name=web,", True),
])
def test_field_selector_matching(selector, expected):
    assert parse_field_selector(selector).matches(FIELDS) is expected


def test_field_selector_escaping_round_trip():
    value = r"a,b=c\d"
    escaped = escape_field_value(value)
    assert escaped == r"a\,b\=c\\d"
    sel = parse_field_selector("metadata.name=" + escaped + ",spec.type=X")
    assert [(r.field, r.operator, r.value) for r in sel.requirements] == [
        ("metadata.name", "=", value), ("spec.type", "=", "X")]
    assert sel.matches({"metadata.name": value, "spec.type": "X"})
    assert str(sel) == "metadata.name=" + escaped + ",spec.type=X"


@pytest.mark.parametrize("selector,message", [
    ("metadata.name", "invalid selector: 'metadata.name'; can't understand 'metadata.name'"),
    ("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
    ("a=b=c", "invalid field selector: unescaped character in value: 61"),
    (r"a=b\x", r"invalid field selector: invalid escape sequence: \x"),
    ("a=b\\", "invalid field selector: invalid escape sequence: \\"),
    ("a!==b", "invalid field selector: unescaped character in value: 61"),
])
def test_field_selector_errors(selector, message):
    with pytest.raises(StatusError) as e:
        parse_field_selector(selector)
    assert (e.value.code, e.value.reason, e.value.message) == (400, "BadRequest", message)


def test_field_selector_supported_fields_and_only_name():
    sel = parse_field_selector("metadata.name=web")
    assert sel.only_name() == "web"
    assert parse_field_selector("metadata.name==web").only_name() == "web"
    assert parse_field_selector("metadata.name!=web").only_name() is None
    assert parse_field_selector("metadata.name=web,spec.type=A").only_name() is None
    assert parse_field_selector("").only_name() is None
    assert parse_field_selector("").empty()
    sel.check_supported(["metadata.name", "metadata.namespace"])
    bad = parse_field_selector("status.phase=Running,metadata.name=x")
    with pytest.raises(StatusError) as e:
        bad.check_supported(["metadata.name", "metadata.namespace"])
    assert (e.value.code, e.value.message) == (400, "field label not supported: status.phase")


def test_object_meta_fields():
    obj = {"metadata": {"name": "web", "namespace": "prod"}}
    assert object_meta_fields(obj) == {"metadata.name": "web", "metadata.namespace": "prod"}
    assert object_meta_fields({"metadata": {"name": "n1"}}, namespaced=False) == {
        "metadata.name": "n1"}
    assert parse_field_selector("metadata.namespace=prod").matches(object_meta_fields(obj))
