import datetime as dt

from nanokube.registry.serviceaccount import ServiceAccountStrategy

THREE_DAYS_AGO = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=3)).strftime(
    "%Y-%m-%dT%H:%M:%SZ")


def test_serviceaccount():
    s = ServiceAccountStrategy()
    assert (s.plural, s.singular, s.short_names) == ("serviceaccounts", "serviceaccount", ("sa",))
    obj = {"metadata": {"name": "default", "namespace": "default",
                        "creationTimestamp": THREE_DAYS_AGO},
           "secrets": [{"name": "a"}, {"name": "b"}]}
    assert s.validate(obj) == []
    assert [c.name for c in s.columns] == ["Name", "Secrets", "Age"]
    assert s.table_row(obj) == ["default", 2, "3d"]
    obj["metadata"]["name"] = "Bad_Name"
    assert [str(e) for e in s.validate(obj)][0].startswith(
        'metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain')
