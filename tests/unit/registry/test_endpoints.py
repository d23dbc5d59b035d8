import datetime as dt

from nanokube.registry.endpoints import EndpointsStrategy

THREE_DAYS_AGO = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=3)).strftime(
    "%Y-%m-%dT%H:%M:%SZ")


def ep(subsets):
    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "web", "namespace": "default",
                         "creationTimestamp": THREE_DAYS_AGO}, "subsets": subsets}


def test_discovery_facts():
    s = EndpointsStrategy()
    assert (s.plural, s.singular, s.short_names) == ("endpoints", "endpoints", ("ep",))


def test_default_and_validate():
    s = EndpointsStrategy()
    obj = ep([{"addresses": [{"ip": "10.244.0.5"}], "ports": [{"port": 8080}]}])
    s.default(obj)
    assert obj["subsets"][0]["ports"][0]["protocol"] == "TCP"
    assert s.validate(obj) == []


def test_validation_messages():
    s = EndpointsStrategy()
    obj = ep([{"addresses": [{"ip": "127.0.0.1"}],
               "ports": [{"port": 80, "protocol": "TCP"}, {"name": "b", "port": 0,
                                                         "protocol": "TCP"}]},
              {"ports": []}])
    assert [str(e) for e in s.validate(obj)] == [
        'subsets[0].addresses[0].ip: Invalid value: "127.0.0.1": may not be in the loopback '
        "range (127.0.0.0/8, ::1/128)",
        "subsets[0].ports[0].name: Required value",
        "subsets[0].ports[1].port: Invalid value: 0: must be between 1 and 65535, inclusive",
        "subsets[1]: Required value: must specify `addresses` or `notReadyAddresses`"]


def test_table():
    s = EndpointsStrategy()
    assert [c.name for c in s.columns] == ["Name", "Endpoints", "Age"]
    assert s.table_row(ep([])) == ["web", "<none>", "3d"]
    obj = ep([{"addresses": [{"ip": f"10.0.0.{i}"} for i in range(1, 5)],
               "ports": [{"port": 80, "protocol": "TCP"}]}])
    assert s.table_row(obj)[1] == "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 1 more..."
    assert s.table_row(ep([{"addresses": [{"ip": "10.0.0.1"}]}]))[1] == "10.0.0.1"
    assert s.table_row(ep([{"notReadyAddresses": [{"ip": "10.0.0.1"}],
                            "ports": [{"port": 80}]}]))[1] == ""
