import copy
import datetime as dt

from nanokube.registry.endpointslice import EndpointSliceStrategy

THREE_DAYS_AGO = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=3)).strftime(
    "%Y-%m-%dT%H:%M:%SZ")


def eps(endpoints, ports, address_type="IPv4"):
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "web-x1", "namespace": "default",
                         "creationTimestamp": THREE_DAYS_AGO},
            "addressType": address_type, "endpoints": endpoints, "ports": ports}


def test_discovery_facts():
    s = EndpointSliceStrategy()
    assert (s.group, s.version, s.plural, s.singular, s.kind) == (
        "discovery.k8s.io", "v1", "endpointslices", "endpointslice", "EndpointSlice")


def test_port_defaults():
    s = EndpointSliceStrategy()
    obj = eps([], [{"port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}])
    s.default(obj)
    assert obj["ports"] == [{"port": 80, "name": "", "protocol": "TCP"},
                            {"name": "dns", "port": 53, "protocol": "UDP"}]
    assert s.validate(obj) == []


def test_validation():
    s = EndpointSliceStrategy()
    obj = eps([{"addresses": []}, {"addresses": ["fe80::1", "10.0.0.300"]}],
              [{"name": "a", "protocol": "TCP"}, {"name": "a", "protocol": "HTTP"}])
    assert [str(e) for e in s.validate(obj)] == [
        "endpoints[0].addresses: Required value: must contain at least 1 address",
        'endpoints[1].addresses[0]: Invalid value: "fe80::1": must be a valid IPv4 address',
        'endpoints[1].addresses[1]: Invalid value: "10.0.0.300": must be a valid IPv4 address',
        'ports[1].name: Duplicate value: "a"',
        'ports[1].protocol: Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"']
    assert [str(e) for e in s.validate(eps([], [], address_type="IPv5"))] == [
        'addressType: Unsupported value: "IPv5": supported values: "FQDN", "IPv4", "IPv6"']


def test_address_type_is_immutable():
    s = EndpointSliceStrategy()
    old = eps([], [])
    new = copy.deepcopy(old)
    new["addressType"] = "IPv6"
    assert [str(e) for e in s.validate_update(new, old)] == [
        'addressType: Invalid value: "IPv6": field is immutable']


def test_table():
    s = EndpointSliceStrategy()
    assert [c.name for c in s.columns] == ["Name", "AddressType", "Ports", "Endpoints", "Age"]
    assert s.table_row(eps([], [])) == ["web-x1", "IPv4", "<unset>", "<unset>", "3d"]
    obj = eps([{"addresses": [f"10.0.0.{i}"]} for i in range(1, 6)],
              [{"name": "http", "port": 80}, {"name": "named"}, {}, {"port": 9}])
    assert s.table_row(obj) == ["web-x1", "IPv4", "80,named,* + 1 more...",
                                "10.0.0.1,10.0.0.2,10.0.0.3 + 2 more...", "3d"]
