"""metallb.io/v1beta1 IPAddressPool and L2Advertisement strategies."""
from __future__ import annotations

import datetime as dt

import pytest

from nanokube.api.errors import StatusError
from nanokube.api.schema import raw as load_schemas, unknown_fields
from nanokube.registry import default_registry
from nanokube.registry.ipaddresspool import AddressRange, IPAddressPoolStrategy, parse_address
from nanokube.registry.l2advertisement import L2AdvertisementStrategy

AGO = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")


def pool(name="first", *addresses, **spec):
    return {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": name, "namespace": "metallb-system", "creationTimestamp": AGO},
            "spec": {"addresses": list(addresses) or ["192.168.10.0/24"], **spec}}


def errors(s, obj):
    return [str(e) for e in s.validate(obj)]


def test_registered_as_metallb_kinds():
    reg = default_registry()
    p = reg.by_resource("metallb.io", "ipaddresspools")
    a = reg.by_resource("metallb.io", "l2advertisements")
    assert (p.kind, p.version, p.namespaced, p.singular) == ("IPAddressPool", "v1beta1", True,
                                                             "ipaddresspool")
    assert (a.kind, a.version, a.namespaced) == ("L2Advertisement", "v1beta1", True)


def test_schemas_know_the_kinds():
    schemas = load_schemas()
    assert schemas["kinds"]["metallb.io/v1beta1/IPAddressPool"] == \
        "io.metallb.v1beta1.IPAddressPool"
    spec = schemas["types"]["io.metallb.v1beta1.IPAddressPoolSpec"]["fields"]
    assert set(spec) == {"addresses", "autoAssign", "avoidBuggyIPs", "serviceAllocation"}
    l2 = schemas["types"]["io.metallb.v1beta1.L2AdvertisementSpec"]["fields"]
    assert set(l2) == {"ipAddressPools", "ipAddressPoolSelectors", "nodeSelectors", "interfaces"}


def test_parse_addresses():
    assert parse_address("10.0.0.0/30") == AddressRange(0x0A000000, 0x0A000003)
    assert parse_address("10.0.0.5-10.0.0.9") == AddressRange(0x0A000005, 0x0A000009)
    assert parse_address("10.0.0.7/32") == AddressRange(0x0A000007, 0x0A000007)
    for bad in ("10.0.0.1", "10.0.0.9-10.0.0.5", "fd00::/64", "x-y", "10.0.0.0/33"):
        with pytest.raises(ValueError):
            parse_address(bad)


def test_defaults_and_validation():
    s = IPAddressPoolStrategy()
    obj = pool()
    s.default(obj)
    assert obj["spec"]["autoAssign"] is True and obj["spec"]["avoidBuggyIPs"] is False
    assert errors(s, obj) == []
    assert errors(s, pool("p", "10.0.0.1")) == [
        'spec.addresses[0]: Invalid value: "10.0.0.1": must be a CIDR (e.g. 192.168.10.0/24) or '
        'a range (e.g. 192.168.9.1-192.168.9.5)']
    assert errors(s, pool("p", "10.0.0.0/24", "10.0.0.5-10.0.0.6")) == [
        'spec.addresses[1]: Invalid value: "10.0.0.5-10.0.0.6": overlaps with spec.addresses[0]']
    obj = pool()
    obj["spec"]["addresses"] = []
    assert errors(s, obj) == ["spec.addresses: Required value"]
    assert errors(s, pool(serviceAllocation={"priority": -1, "namespaces": ["Bad_ns"]})) == [
        "spec.serviceAllocation.priority: Invalid value: -1: must be a non-negative integer",
        'spec.serviceAllocation.namespaces[0]: Invalid value: "Bad_ns": a lowercase RFC 1123 '
        "label must consist of lower case alphanumeric characters or '-', and must start and "
        "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
        "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"]


def test_overlapping_pools_are_rejected_with_the_other_pools_name():
    s = IPAddressPoolStrategy()
    s.begin_create(pool("first", "10.0.0.0/24")).commit()
    with pytest.raises(StatusError) as e:
        s.begin_create(pool("second", "10.0.1.0/24", "10.0.0.250-10.0.1.5"))
    assert e.value.code == 422
    assert "overlaps with IPAddressPool metallb-system/first (10.0.0.0-10.0.0.255)" in \
        e.value.message
    # a failed store write gives the addresses back; an update may keep its own addresses
    s.begin_create(pool("second", "10.0.1.0/24")).rollback()
    s.begin_create(pool("second", "10.0.1.0/24")).commit()
    s.begin_update(pool("first", "10.0.0.0/25"), pool("first", "10.0.0.0/24")).commit()
    with pytest.raises(StatusError):
        s.begin_update(pool("first", "10.0.1.0/25"), pool("first", "10.0.0.0/25"))
    s.begin_delete(pool("second", "10.0.1.0/24")).commit()
    s.begin_update(pool("first", "10.0.1.0/25"), pool("first", "10.0.0.0/25")).commit()
    # restore rebuilds the index from the store
    s2 = IPAddressPoolStrategy()
    s2.restore([pool("first", "10.0.0.0/24")])
    with pytest.raises(StatusError):
        s2.begin_create(pool("x", "10.0.0.9/32"))


def test_tables_as_metallb_printer_columns():
    s = IPAddressPoolStrategy()
    assert [c.name for c in s.columns] == ["Name", "Auto Assign", "Avoid Buggy IPs",
                                           "Addresses", "Age"]
    obj = pool("first", "10.0.0.0/24", "10.0.1.1-10.0.1.9", autoAssign=True,
               avoidBuggyIPs=False)
    assert s.table_row(obj) == ["first", True, False, '["10.0.0.0/24","10.0.1.1-10.0.1.9"]',
                                "2d"]
    a = L2AdvertisementStrategy()
    assert [c.name for c in a.columns] == ["Name", "IPAddressPools", "IPAddressPool Selectors",
                                           "Interfaces", "Node Selectors", "Age"]
    assert a.columns[4].priority == 10
    adv = {"metadata": {"name": "l2", "namespace": "metallb-system", "creationTimestamp": AGO},
           "spec": {"ipAddressPools": ["first"], "interfaces": ["eth0"]}}
    assert a.table_row(adv) == ["l2", '["first"]', None, '["eth0"]', None, "2d"]


def test_l2advertisement_validation():
    a = L2AdvertisementStrategy()
    adv = {"metadata": {"name": "l2", "namespace": "metallb-system"},
           "spec": {"ipAddressPools": ["first", ""],
                    "nodeSelectors": [{"matchExpressions": [{"key": "k", "operator": "Is"}]}]}}
    assert [str(e) for e in a.validate(adv)] == [
        'spec.ipAddressPools[1]: Invalid value: "": must be a non-empty string',
        'spec.nodeSelectors[0].matchExpressions[0].operator: Unsupported value: "Is": '
        'supported values: "DoesNotExist", "Exists", "In", "NotIn"']
    assert a.validate({"metadata": {"name": "l2", "namespace": "x"}, "spec": {}}) == []


def test_unknown_fields_are_detected():
    obj = pool()
    obj["spec"]["autoassign"] = True
    obj["spec"]["serviceAllocation"] = {"priority": 1, "serviceSelector": {}}
    assert sorted(unknown_fields("metallb.io", "v1beta1", "IPAddressPool", obj)) == [
        "spec.autoassign", "spec.serviceAllocation.serviceSelector"]
