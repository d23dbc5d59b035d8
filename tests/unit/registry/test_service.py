"""The Service kind: defaults, validation messages, allocation through the strategy hooks in the
order the generic machinery calls them, type changes, restore, warnings and table rows."""
import copy
import ipaddress

import pytest

from nanokube.api.errors import StatusError
from nanokube.registry.base import ServerConfig
from nanokube.registry.service import (ServiceStrategy, kubernetes_service, service_ip,
                                       set_defaults_service)


class Api:
    """The generic machinery's call order (see nanokube/registry/base.py) over a dict store."""

    def __init__(self, config: ServerConfig | None = None, strategy=None):
        self.s = strategy or ServiceStrategy(config or ServerConfig())
        self.store: dict[str, dict] = {}

    def create(self, obj: dict, store_fails: bool = False) -> dict:
        obj = copy.deepcopy(obj)
        obj.setdefault("metadata", {}).setdefault("namespace", "default")
        self.s.default(obj)
        self.s.prepare_create(obj)
        errs = self.s.validate(obj)
        if errs:
            from nanokube.api.errors import invalid_error
            raise invalid_error("Service", "", obj["metadata"].get("name", ""), errs)
        txn = self.s.begin_create(obj)
        if store_fails:
            txn.rollback()
            raise RuntimeError("store write failed")
        self.store[obj["metadata"]["name"]] = obj
        txn.commit()
        return copy.deepcopy(obj)

    def update(self, obj: dict, store_fails: bool = False) -> dict:
        new = copy.deepcopy(obj)
        new.setdefault("metadata", {}).setdefault("namespace", "default")
        old = self.store[new["metadata"]["name"]]
        self.s.default(new)
        self.s.prepare_update(new, old)
        errs = self.s.validate_update(new, old)
        if errs:
            from nanokube.api.errors import invalid_error
            raise invalid_error("Service", "", new["metadata"]["name"], errs)
        txn = self.s.begin_update(new, old)
        if store_fails:
            txn.rollback()
            raise RuntimeError("store write failed")
        self.store[new["metadata"]["name"]] = new
        txn.commit()
        return copy.deepcopy(new)

    def delete(self, name: str) -> dict:
        old = self.store.pop(name)
        self.s.begin_delete(old).commit()
        return old

    def get(self, name: str) -> dict:
        return copy.deepcopy(self.store[name])


def svc(name="x", **spec) -> dict:
    spec.setdefault("ports", [{"port": 80}])
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}


def invalid_message(api: Api, obj: dict, update=False) -> str:
    """What kubectl prints after 'The Service "x" is invalid: ' (single or aggregated)."""
    with pytest.raises(StatusError) as err:
        (api.update if update else api.create)(obj)
    e = err.value
    assert e.code == 422 and e.reason == "Invalid"
    assert e.details["kind"] == "Service" and e.details["name"] == obj["metadata"]["name"]
    prefix = f'Service "{obj["metadata"]["name"]}" is invalid: '
    assert e.message.startswith(prefix)
    return e.message[len(prefix):]


@pytest.fixture
def api():
    return Api()


def offset_of(ip: str, base="10.96.0.1") -> int:
    return int(ipaddress.ip_address(ip)) - int(ipaddress.ip_address(base))


# ---- the acceptance messages ----------------------------------------------------------------

def test_node_port_99(api):
    assert invalid_message(api, svc(type="NodePort", ports=[{"port": 80, "nodePort": 99}])) == (
        "spec.ports[0].nodePort: Invalid value: 99: provided port is not in the valid range. "
        "The range of valid ports is 30000-32767")


def test_taken_node_port(api):
    api.create(svc("a", type="NodePort", ports=[{"port": 80, "nodePort": 30080}]))
    assert invalid_message(api, svc("b", type="NodePort",
                                    ports=[{"port": 80, "nodePort": 30080}])) == (
        "spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated")


def test_duplicate_port(api):
    assert invalid_message(api, svc(ports=[{"name": "a", "port": 80},
                                           {"name": "b", "port": 80, "targetPort": 8080}])) == (
        'spec.ports[1]: Duplicate value: core.ServicePort{Name:"", Protocol:"TCP", '
        'AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, '
        'StrVal:""}, NodePort:0}')


def test_same_port_different_protocols_is_legal(api):
    out = api.create(svc(ports=[{"name": "t", "port": 80}, {"name": "u", "port": 80,
                                                             "protocol": "UDP"}]))
    assert [p["protocol"] for p in out["spec"]["ports"]] == ["TCP", "UDP"]


def test_multi_port_without_names(api):
    assert invalid_message(api, svc(ports=[{"port": 80}, {"port": 443}])) == (
        "[spec.ports[0].name: Required value, spec.ports[1].name: Required value]")


def test_cluster_ip_outside_the_range(api):
    assert invalid_message(api, svc(clusterIP="10.0.0.5")) == (
        'spec.clusterIPs: Invalid value: []string{"10.0.0.5"}: failed to allocate IP 10.0.0.5: '
        "the provided IP (10.0.0.5) is not in the valid range. The range of valid IPs is "
        "10.96.0.0/12")


def test_cluster_ip_already_allocated(api):
    api.create(svc("a", clusterIP="10.96.0.50"))
    assert invalid_message(api, svc("b", clusterIP="10.96.0.50")) == (
        'spec.clusterIPs: Invalid value: []string{"10.96.0.50"}: failed to allocate IP '
        "10.96.0.50: provided IP is already allocated")


def test_allocation_error_is_reported_alone_as_kubernetes_allocates_first(api):
    # A bad nodePort together with a missing port name: Kubernetes reports the allocation only.
    assert invalid_message(api, svc(type="NodePort", ports=[
        {"port": 80, "nodePort": 99}, {"port": 81}])) == (
        "spec.ports[0].nodePort: Invalid value: 99: provided port is not in the valid range. "
        "The range of valid ports is 30000-32767")


# ---- every validation message ---------------------------------------------------------------

DNS1035 = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
           "with an alphabetic character, and end with an alphanumeric character (e.g. "
           "'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
LABEL_VALUE = ("a valid label must be an empty string or consist of alphanumeric characters, '-', "
               "'_' or '.', and must start and end with an alphanumeric character (e.g. "
               "'MyValue',  or 'my_value',  or '12345', regex used for validation is "
               "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")

VALIDATION_CASES = [
    ("bad name", {"metadata": {"name": "1abc"}}, {},
     f'metadata.name: Invalid value: "1abc": {DNS1035}'),
    ("no ports", {}, {"ports": []}, "spec.ports: Required value"),
    ("duplicate port name", {}, {"ports": [{"name": "http", "port": 80},
                                           {"name": "http", "port": 81}]},
     'spec.ports[1].name: Duplicate value: "http"'),
    ("port name not a DNS label", {}, {"ports": [{"name": "Web", "port": 80}]},
     'spec.ports[0].name: Invalid value: "Web": a lowercase RFC 1123 label must consist of lower '
     "case alphanumeric characters or '-', and must start and end with an alphanumeric "
     "character (e.g. 'my-name',  or '123-abc', regex used for validation is "
     "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"),
    ("port out of range", {}, {"ports": [{"port": 70000, "targetPort": 80}]},
     "spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive"),
    ("bad protocol", {}, {"ports": [{"port": 80, "protocol": "HTTP"}]},
     'spec.ports[0].protocol: Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"'),
    ("bad target port name", {}, {"ports": [{"port": 80, "targetPort": "Web_1"}]},
     'spec.ports[0].targetPort: Invalid value: "Web_1": must contain only alpha-numeric '
     "characters (a-z, 0-9), and hyphens (-)"),
    ("numeric string target port", {}, {"ports": [{"port": 80, "targetPort": "8080"}]},
     'spec.ports[0].targetPort: Invalid value: "8080": must contain at least one letter (a-z)'),
    ("bad appProtocol", {}, {"ports": [{"port": 80, "appProtocol": "a b"}]},
     "spec.ports[0].appProtocol: Invalid value: \"a b\": name part must consist of alphanumeric "
     "characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. "
     "'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
     "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"),
    ("bad selector value", {}, {"selector": {"app": "-bad"}},
     f'spec.selector: Invalid value: "-bad": {LABEL_VALUE}'),
    ("bad session affinity", {}, {"sessionAffinity": "Sticky"},
     'spec.sessionAffinity: Unsupported value: "Sticky": supported values: "ClientIP", "None"'),
    ("affinity timeout", {}, {"sessionAffinity": "ClientIP",
                              "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 0}}},
     "spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 0: must be greater "
     "than 0 and less than 86400"),
    ("bad type", {}, {"type": "Foo"},
     'spec.type: Unsupported value: "Foo": supported values: "ClusterIP", "ExternalName", '
     '"LoadBalancer", "NodePort"'),
    ("nodePort on ClusterIP", {}, {"ports": [{"port": 80, "nodePort": 30001}]},
     "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"),
    ("ExternalName without name", {}, {"type": "ExternalName"},
     "spec.externalName: Required value"),
    ("ExternalName bad name", {}, {"type": "ExternalName", "externalName": "a_b.com"},
     'spec.externalName: Invalid value: "a_b.com": a lowercase RFC 1123 subdomain must consist '
     "of lower case alphanumeric characters, '-' or '.', and must start and end with an "
     "alphanumeric character (e.g. 'example.com', regex used for validation is "
     "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"),
    ("ExternalName with clusterIP", {}, {"type": "ExternalName", "externalName": "a.com",
                                         "clusterIP": "10.96.0.50"},
     "spec.clusterIPs: Forbidden: may not be set for ExternalName services"),
    ("ExternalName with policy", {}, {"type": "ExternalName", "externalName": "a.com",
                                      "ipFamilyPolicy": "SingleStack"},
     "spec.ipFamilyPolicy: Forbidden: may not be set for ExternalName services"),
    ("headless LoadBalancer", {}, {"type": "LoadBalancer", "clusterIP": "None"},
     "spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for LoadBalancer "
     "services"),
    ("headless NodePort", {}, {"type": "NodePort", "clusterIP": "None"},
     "spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for NodePort "
     "services"),
    ("clusterIP not an IP", {}, {"clusterIP": "abc"},
     'spec.clusterIPs[0]: Invalid value: "abc": must be a valid IP address, (e.g. 10.9.8.7 or '
     "2001:db8::ffff)"),
    ("clusterIPs[0] differs", {}, {"clusterIP": "10.96.0.50", "clusterIPs": ["10.96.0.51"]},
     'spec.clusterIPs: Invalid value: []string{"10.96.0.51"}: first value must match '
     "`clusterIP`"),
    ("clusterIPs without clusterIP", {}, {"clusterIPs": ["10.96.0.51"]},
     'spec.clusterIPs: Invalid value: []string{"10.96.0.51"}: must be empty when `clusterIP` '
     "is not specified"),
    ("two IPv4 clusterIPs", {}, {"clusterIP": "10.96.0.50",
                                 "clusterIPs": ["10.96.0.50", "10.96.0.51"],
                                 "ipFamilyPolicy": "PreferDualStack"},
     'spec.clusterIPs: Invalid value: []string{"10.96.0.50", "10.96.0.51"}: may specify no more '
     "than one IP for each IP family"),
    ("family mismatch", {}, {"clusterIP": "10.96.0.50", "ipFamilies": ["IPv6"]},
     'spec.clusterIPs[0]: Invalid value: "10.96.0.50": expected an IPv6 value as indicated by '
     "`ipFamilies[0]`"),
    ("bad family", {}, {"ipFamilies": ["IPv5"]},
     'spec.ipFamilies[0]: Unsupported value: "IPv5": supported values: "IPv4", "IPv6"'),
    ("bad family policy", {}, {"ipFamilyPolicy": "Both"},
     'spec.ipFamilyPolicy: Unsupported value: "Both": supported values: "PreferDualStack", '
     '"RequireDualStack", "SingleStack"'),
    ("dual-stack on a single-stack cluster", {}, {"ipFamilyPolicy": "RequireDualStack"},
     'spec.ipFamilyPolicy: Invalid value: "RequireDualStack": this cluster is not configured '
     "for dual-stack services"),
    ("IPv6 family on an IPv4 cluster", {}, {"ipFamilies": ["IPv6"]},
     'spec.ipFamilies[0]: Invalid value: "IPv6": not configured on this cluster'),
    ("IPv6 clusterIP on an IPv4 cluster", {}, {"clusterIP": "fd00::5"},
     'spec.clusterIPs[0]: Invalid value: []string{"fd00::5"}: IPv6 is not configured on this '
     "cluster"),
    ("loopback externalIP", {}, {"externalIPs": ["127.0.0.1"]},
     'spec.externalIPs[0]: Invalid value: "127.0.0.1": may not be in the loopback range '
     "(127.0.0.0/8, ::1/128)"),
    ("bad externalIP", {}, {"externalIPs": ["1.2.3"]},
     'spec.externalIPs[0]: Invalid value: "1.2.3": must be a valid IP address, (e.g. 10.9.8.7 '
     "or 2001:db8::ffff)"),
    ("source ranges on ClusterIP", {}, {"loadBalancerSourceRanges": ["10.0.0.0/8"]},
     "spec.LoadBalancerSourceRanges: Forbidden: may only be used when `type` is 'LoadBalancer'"),
    ("bad source range", {}, {"type": "LoadBalancer", "loadBalancerSourceRanges": ["10.0.0.0"]},
     'spec.LoadBalancerSourceRanges[0]: Invalid value: "10.0.0.0": must be a valid CIDR value, '
     "(e.g. 10.9.8.0/24 or 2001:db8::/64)"),
    ("allocateLoadBalancerNodePorts on NodePort", {},
     {"type": "NodePort", "allocateLoadBalancerNodePorts": False},
     "spec.allocateLoadBalancerNodePorts: Forbidden: may only be used when `type` is "
     "'LoadBalancer'"),
    ("loadBalancerClass on ClusterIP", {}, {"loadBalancerClass": "example.com/lb"},
     "spec.loadBalancerClass: Forbidden: may only be used when `type` is 'LoadBalancer'"),
    ("externalTrafficPolicy on ClusterIP", {}, {"externalTrafficPolicy": "Local"},
     'spec.externalTrafficPolicy: Invalid value: "Local": may only be set for '
     "externally-accessible services"),
    ("bad externalTrafficPolicy", {}, {"type": "NodePort", "externalTrafficPolicy": "Any"},
     'spec.externalTrafficPolicy: Unsupported value: "Any": supported values: "Cluster", '
     '"Local"'),
    ("healthCheckNodePort on NodePort", {}, {"type": "NodePort", "healthCheckNodePort": 30500},
     "spec.healthCheckNodePort: Invalid value: 30500: may only be set when `type` is "
     "'LoadBalancer' and `externalTrafficPolicy` is 'Local'"),
    ("bad internalTrafficPolicy", {}, {"internalTrafficPolicy": "Node"},
     'spec.internalTrafficPolicy: Unsupported value: "Node": supported values: "Cluster", '
     '"Local"'),
    ("bad trafficDistribution", {}, {"trafficDistribution": "Nearest"},
     'spec.trafficDistribution: Unsupported value: "Nearest": supported values: "PreferClose"'),
    ("topology annotations disagree",
     {"metadata": {"name": "x", "annotations": {
         "service.kubernetes.io/topology-mode": "Auto",
         "service.kubernetes.io/topology-aware-hints": "Disabled"}}}, {},
     'metadata.annotations[service.kubernetes.io/topology-mode]: Invalid value: "Auto": must '
     "match annotations[service.kubernetes.io/topology-aware-hints] when both are specified"),
    ("two nodePorts the same", {}, {"type": "NodePort", "ports": [
        {"name": "a", "port": 80, "nodePort": 30100},
        {"name": "b", "port": 81, "nodePort": 30100}]},
     "spec.ports[1].nodePort: Invalid value: 30100: provided port is already allocated"),
]


@pytest.mark.parametrize("title, meta, spec, expected", VALIDATION_CASES,
                         ids=[c[0] for c in VALIDATION_CASES])
def test_validation_messages(api, title, meta, spec, expected):
    obj = svc(**spec)
    obj["metadata"].update(meta.get("metadata", {}))
    assert invalid_message(api, obj) == expected


def test_invalid_status_details_causes(api):
    with pytest.raises(StatusError) as err:
        api.create(svc(type="NodePort", ports=[{"port": 80, "nodePort": 99}]))
    assert err.value.to_status()["details"] == {
        "name": "x", "kind": "Service", "causes": [{
            "reason": "FieldValueInvalid", "field": "spec.ports[0].nodePort",
            "message": "Invalid value: 99: provided port is not in the valid range. The range "
                       "of valid ports is 30000-32767"}]}


def test_nothing_is_left_allocated_by_a_rejected_create(api):
    s = api.s.allocators
    invalid_message(api, svc(type="LoadBalancer", externalTrafficPolicy="Local",
                             ports=[{"port": 80}, {"port": 81}]))   # names missing
    assert s.primary.used() == 0 and s.node_ports.used() == 0


# ---- defaults ---------------------------------------------------------------------------------

def test_defaulted_cluster_ip_service(api):
    out = api.create(svc(selector={"app": "web"}))
    spec = out["spec"]
    assert spec["type"] == "ClusterIP" and spec["sessionAffinity"] == "None"
    assert spec["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80}]
    assert spec["internalTrafficPolicy"] == "Cluster"
    assert spec["ipFamilies"] == ["IPv4"] and spec["ipFamilyPolicy"] == "SingleStack"
    assert spec["clusterIPs"] == [spec["clusterIP"]]
    assert "externalTrafficPolicy" not in spec
    assert out["status"] == {"loadBalancer": {}}


@pytest.mark.parametrize("spec, key, value", [
    ({"sessionAffinity": "ClientIP"}, "sessionAffinityConfig",
     {"clientIP": {"timeoutSeconds": 10800}}),
    ({"type": "NodePort"}, "externalTrafficPolicy", "Cluster"),
    ({"externalIPs": ["192.0.2.1"]}, "externalTrafficPolicy", "Cluster"),
    ({"type": "LoadBalancer"}, "allocateLoadBalancerNodePorts", True),
    ({"type": "ExternalName"}, "internalTrafficPolicy", None),
    ({"sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 5}}}, "sessionAffinityConfig",
     None),
])
def test_set_defaults(spec, key, value):
    obj = {"spec": dict(spec, ports=[{"port": 80, "targetPort": ""}])}
    set_defaults_service(obj)
    assert obj["spec"].get(key) == value
    assert obj["spec"]["ports"][0]["targetPort"] == 80


def test_lb_status_ip_mode_default():
    obj = {"spec": {"type": "LoadBalancer"},
           "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.9"}, {"hostname": "h"}]}}}
    set_defaults_service(obj)
    assert obj["status"]["loadBalancer"]["ingress"] == [{"ip": "192.0.2.9", "ipMode": "VIP"},
                                                        {"hostname": "h"}]


def test_headless_selectorless_defaults_to_require_dual_stack(api):
    out = api.create(svc(clusterIP="None"))
    assert out["spec"]["ipFamilyPolicy"] == "RequireDualStack"
    assert out["spec"]["ipFamilies"] == ["IPv4", "IPv6"]
    assert out["spec"]["clusterIPs"] == ["None"]
    assert api.s.allocators.primary.used() == 0


def test_headless_with_selector_is_single_stack(api):
    out = api.create(svc(clusterIP="None", selector={"app": "db"}))
    assert (out["spec"]["ipFamilyPolicy"], out["spec"]["ipFamilies"]) == ("SingleStack",
                                                                            ["IPv4"])


def test_external_name_gets_nothing(api):
    out = api.create(svc(type="ExternalName", externalName="example.com.", ports=[]))
    for key in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
        assert key not in out["spec"]


# ---- allocation ---------------------------------------------------------------------------

def test_kubernetes_service_takes_the_first_ip_and_dns_the_tenth(api):
    config = ServerConfig()
    k = api.create(kubernetes_service(config))
    assert k["spec"]["clusterIP"] == "10.96.0.1"
    assert k["spec"]["ports"] == [{"name": "https", "port": 443, "protocol": "TCP",
                                   "targetPort": 6443}]
    assert k["metadata"]["labels"] == {"component": "apiserver", "provider": "kubernetes"}
    assert "selector" not in k["spec"]
    assert service_ip(config, 10) == "10.96.0.10"
    assert api.create(svc("kube-dns", clusterIP="10.96.0.10"))["spec"]["clusterIPs"] == [
        "10.96.0.10"]


def test_dynamic_ips_and_ports_come_from_the_upper_bands(api):
    for i in range(30):
        out = api.create(svc(f"s{i}", type="NodePort"))
        assert offset_of(out["spec"]["clusterIP"]) >= 256
        assert out["spec"]["ports"][0]["nodePort"] >= 30086


def test_static_values_in_the_bands_are_fine(api):
    out = api.create(svc(clusterIP="10.96.0.20", type="NodePort",
                         ports=[{"port": 80, "nodePort": 30010}]))
    assert out["spec"]["clusterIP"] == "10.96.0.20"
    assert out["spec"]["ports"][0]["nodePort"] == 30010


def test_same_port_number_tcp_and_udp_share_one_node_port(api):
    out = api.create(svc(type="NodePort", ports=[{"name": "dns", "port": 53},
                                                 {"name": "dns-udp", "port": 53,
                                                  "protocol": "UDP"}]))
    tcp, udp = (p["nodePort"] for p in out["spec"]["ports"])
    assert tcp == udp and api.s.allocators.node_ports.used() == 1
    requested = api.create(svc("y", type="NodePort", ports=[
        {"name": "a", "port": 53}, {"name": "b", "port": 53, "protocol": "UDP",
                                    "nodePort": 30053}]))
    assert [p["nodePort"] for p in requested["spec"]["ports"]] == [30053, 30053]


def test_load_balancer_local_gets_a_health_check_node_port(api):
    out = api.create(svc(type="LoadBalancer", externalTrafficPolicy="Local"))
    hc = out["spec"]["healthCheckNodePort"]
    assert 30000 <= hc <= 32767 and hc != out["spec"]["ports"][0]["nodePort"]
    assert api.s.allocators.node_ports.used() == 2


def test_load_balancer_without_node_ports_keeps_explicit_ones(api):
    out = api.create(svc(type="LoadBalancer", allocateLoadBalancerNodePorts=False,
                         ports=[{"name": "a", "port": 80},
                                {"name": "b", "port": 81, "nodePort": 30081}]))
    assert [p.get("nodePort") for p in out["spec"]["ports"]] == [None, 30081]


def test_exhaustion_is_an_internal_error():
    api = Api(ServerConfig("10.0.0.0/29", "30000-30001"))   # 6 IPs, 2 ports, no bands
    for i in range(6):
        api.create(svc(f"s{i}"))
    with pytest.raises(StatusError) as err:
        api.create(svc("full"))
    assert (err.value.code, err.value.message) == (
        500, "Internal error occurred: failed to allocate a serviceIP: range is full")
    for name in ("s0", "s1", "s2"):
        api.delete(name)
    api.create(svc("n1", type="NodePort"))
    api.create(svc("n2", type="NodePort"))
    with pytest.raises(StatusError) as err:
        api.create(svc("n3", type="NodePort"))
    assert (err.value.code, err.value.message) == (
        500, "Internal error occurred: failed to allocate a nodePort: range is full")
    assert api.s.allocators.primary.used() == 5   # the failed create gave its IP back


def test_rollback_when_the_store_write_fails(api):
    with pytest.raises(RuntimeError):
        api.create(svc(type="LoadBalancer", externalTrafficPolicy="Local",
                       clusterIP="10.96.0.40", ports=[{"port": 80, "nodePort": 30040}]),
                   store_fails=True)
    a = api.s.allocators
    assert a.primary.used() == 0 and a.node_ports.used() == 0
    api.create(svc(clusterIP="10.96.0.40", type="NodePort",
                   ports=[{"port": 80, "nodePort": 30040}]))


def test_delete_releases_everything(api):
    out = api.create(svc(type="LoadBalancer", externalTrafficPolicy="Local",
                         clusterIP="10.96.0.41", ports=[{"port": 80, "nodePort": 30041}]))
    api.delete("x")
    a = api.s.allocators
    assert a.primary.used() == 0 and a.node_ports.used() == 0
    again = api.create(svc("y", type="LoadBalancer", externalTrafficPolicy="Local",
                           clusterIP="10.96.0.41", ports=[{"port": 80, "nodePort": 30041}],
                           healthCheckNodePort=out["spec"]["healthCheckNodePort"]))
    assert again["spec"]["healthCheckNodePort"] == out["spec"]["healthCheckNodePort"]


# ---- updates --------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", [
    {"selector": {"app": "web"}},
    {"type": "NodePort", "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 443}]},
    {"type": "LoadBalancer", "externalTrafficPolicy": "Local"},
    {"clusterIP": "None", "selector": {"app": "db"}},
    {"type": "ExternalName", "externalName": "example.com", "ports": []},
])
def test_put_of_the_original_manifest_keeps_the_allocations(api, spec):
    manifest = svc(**spec)
    created = api.create(manifest)
    used = (api.s.allocators.primary.used(), api.s.allocators.node_ports.used())
    updated = api.update(manifest)
    assert updated["spec"] == created["spec"]
    assert (api.s.allocators.primary.used(), api.s.allocators.node_ports.used()) == used


def test_put_cannot_change_the_cluster_ip(api):
    created = api.create(svc(clusterIP="10.96.0.5"))
    changed = copy.deepcopy(created)
    changed["spec"]["clusterIP"] = "10.96.0.6"
    assert invalid_message(api, changed, update=True) == (
        'spec.clusterIPs[0]: Invalid value: []string{"10.96.0.6"}: may not change once set')


def test_put_cannot_unset_the_cluster_ip_list(api):
    created = api.create(svc())
    changed = copy.deepcopy(created)
    changed["spec"]["clusterIPs"] = []
    changed["spec"]["clusterIP"] = "10.96.0.6"
    assert "may not change once set" in invalid_message(api, changed, update=True)


def test_update_to_a_taken_or_out_of_range_node_port(api):
    api.create(svc("a", type="NodePort", ports=[{"port": 80, "nodePort": 30080}]))
    b = api.create(svc("b", type="NodePort"))
    for port, message in [
        (30080, "spec.ports[0].nodePort: Invalid value: 30080: provided port is already "
                "allocated"),
        (99, "spec.ports[0].nodePort: Invalid value: 99: provided port is not in the valid "
             "range. The range of valid ports is 30000-32767")]:
        changed = copy.deepcopy(b)
        changed["spec"]["ports"][0]["nodePort"] = port
        assert invalid_message(api, changed, update=True) == message
    assert api.get("b")["spec"] == b["spec"]


def test_changing_a_node_port_releases_the_old_one_on_commit(api):
    b = api.create(svc(type="NodePort", ports=[{"port": 80, "nodePort": 30090}]))
    changed = copy.deepcopy(b)
    changed["spec"]["ports"][0]["nodePort"] = 30091
    with pytest.raises(RuntimeError):
        api.update(changed, store_fails=True)
    ports = api.s.allocators.node_ports
    assert ports.has(30090) and not ports.has(30091)
    api.update(changed)
    assert not ports.has(30090) and ports.has(30091)


def change_type(api, name, **spec_changes):
    current = api.get(name)
    for key, value in spec_changes.items():
        if value is None:
            current["spec"].pop(key, None)
        else:
            current["spec"][key] = value
    return api.update(current)


def test_cluster_ip_to_node_port_to_load_balancer_and_back(api):
    a = api.s.allocators
    c = api.create(svc())
    ip = c["spec"]["clusterIP"]
    n = change_type(api, "x", type="NodePort")
    port = n["spec"]["ports"][0]["nodePort"]
    assert n["spec"]["clusterIP"] == ip and port and n["spec"]["externalTrafficPolicy"] == "Cluster"
    lb = change_type(api, "x", type="LoadBalancer", externalTrafficPolicy="Local")
    assert lb["spec"]["ports"][0]["nodePort"] == port and lb["spec"]["healthCheckNodePort"]
    assert lb["spec"]["allocateLoadBalancerNodePorts"] is True and a.node_ports.used() == 2
    back = change_type(api, "x", type="NodePort")
    assert "healthCheckNodePort" not in back["spec"]
    assert "allocateLoadBalancerNodePorts" not in back["spec"]
    assert a.node_ports.used() == 1
    cip = change_type(api, "x", type="ClusterIP")
    assert "nodePort" not in cip["spec"]["ports"][0]
    assert "externalTrafficPolicy" not in cip["spec"]
    assert a.node_ports.used() == 0 and cip["spec"]["clusterIP"] == ip


def test_node_port_to_external_name_releases_ip_and_ports(api):
    n = api.create(svc(type="NodePort", selector={"app": "a"}))
    # The e2e test re-sends the old clusterIP; dropTypeDependentFields clears it.
    e = change_type(api, "x", type="ExternalName", externalName="example.com")
    for key in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy",
                "externalTrafficPolicy"):
        assert key not in e["spec"]
    assert "nodePort" not in e["spec"]["ports"][0]
    a = api.s.allocators
    assert a.primary.used() == 0 and a.node_ports.used() == 0
    assert not a.primary.has(n["spec"]["clusterIP"])


def test_external_name_to_cluster_ip_and_node_port(api):
    api.create(svc("e1", type="ExternalName", externalName="example.com"))
    c = change_type(api, "e1", type="ClusterIP", externalName="")
    assert api.s.allocators.primary.has(c["spec"]["clusterIP"])
    assert c["spec"]["ipFamilyPolicy"] == "SingleStack" and c["spec"]["ipFamilies"] == ["IPv4"]
    api.create(svc("e2", type="ExternalName", externalName="example.com"))
    n = change_type(api, "e2", type="NodePort", externalName="")
    assert n["spec"]["clusterIP"] and n["spec"]["ports"][0]["nodePort"]


def test_node_port_update_with_same_port_different_protocols(api):
    api.create(svc(ports=[{"name": "t", "port": 80}, {"name": "u", "port": 80,
                                                       "protocol": "UDP"}]))
    n = change_type(api, "x", type="NodePort")
    assert all(p["nodePort"] for p in n["spec"]["ports"])


def test_headless_cannot_become_node_port(api):
    api.create(svc(clusterIP="None", selector={"a": "b"}))
    current = api.get("x")
    current["spec"]["type"] = "NodePort"
    assert invalid_message(api, current, update=True) == (
        "spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for NodePort "
        "services")


def test_health_check_node_port_is_immutable(api):
    lb = api.create(svc(type="LoadBalancer", externalTrafficPolicy="Local"))
    changed = copy.deepcopy(lb)
    changed["spec"]["healthCheckNodePort"] = 30999
    assert invalid_message(api, changed, update=True) == (
        "spec.healthCheckNodePort: Forbidden: field is immutable")


def test_load_balancer_class_is_immutable(api):
    lb = api.create(svc(type="LoadBalancer", loadBalancerClass="example.com/a"))
    changed = copy.deepcopy(lb)
    changed["spec"]["loadBalancerClass"] = "example.com/b"
    assert invalid_message(api, changed, update=True) == (
        'spec.loadBalancerClass: Invalid value: "example.com/b": may not change once set')


def test_status_is_kept_for_load_balancers_and_cleared_otherwise(api):
    api.create(svc(type="LoadBalancer"))
    api.store["x"]["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.7",
                                                              "ipMode": "VIP"}]}}
    same = api.update(api.get("x") | {"status": {}})
    assert same["status"]["loadBalancer"]["ingress"][0]["ip"] == "192.0.2.7"
    node_port = change_type(api, "x", type="NodePort")
    assert node_port["status"] == {"loadBalancer": {}}


# ---- restore after a restart --------------------------------------------------------------

def test_restore_after_restart(api):
    api.create(kubernetes_service(ServerConfig()))
    n = api.create(svc("n", type="NodePort", ports=[{"name": "t", "port": 53},
                                                   {"name": "u", "port": 53,
                                                    "protocol": "UDP"}]))
    lb = api.create(svc("lb", type="LoadBalancer", externalTrafficPolicy="Local"))
    api.create(svc("h", clusterIP="None"))
    api.create(svc("e", type="ExternalName", externalName="a.com"))

    restarted = Api()
    restarted.store = copy.deepcopy(api.store)
    restarted.s.restore(list(restarted.store.values()))
    a = restarted.s.allocators
    assert a.primary.used() == 3 and a.node_ports.used() == 3
    assert invalid_message(restarted, svc("z", clusterIP=n["spec"]["clusterIP"])).endswith(
        "provided IP is already allocated")
    hc = lb["spec"]["healthCheckNodePort"]
    assert invalid_message(restarted, svc("z", type="NodePort", ports=[
        {"port": 80, "nodePort": hc}])).endswith("provided port is already allocated")
    restarted.delete("n")
    assert a.primary.used() == 2 and a.node_ports.used() == 2


def test_restore_reports_conflicts_instead_of_double_booking():
    api = Api()
    bad = [svc("a", clusterIP="10.96.0.9", clusterIPs=["10.96.0.9"]),
           svc("b", clusterIP="10.96.0.9", clusterIPs=["10.96.0.9"]),
           svc("c", clusterIP="10.0.0.1", clusterIPs=["10.0.0.1"])]
    for obj in bad:
        obj["spec"]["type"] = "ClusterIP"
    conflicts = api.s.allocators.restore(bad)
    assert len(conflicts) == 2 and api.s.allocators.primary.used() == 1


# ---- warnings, table, field labels ----------------------------------------------------------

@pytest.mark.parametrize("spec, annotations, expected", [
    ({"externalName": "a.com"}, {},
     ['spec.externalName is ignored when spec.type is not "ExternalName"']),
    ({"type": "ExternalName", "externalName": "a.com", "externalIPs": ["192.0.2.1"]}, {},
     ['spec.externalIPs is ignored when spec.type is "ExternalName"']),
    ({}, {"service.kubernetes.io/topology-aware-hints": "Auto"},
     ["annotation service.kubernetes.io/topology-aware-hints is deprecated, please use "
      "service.kubernetes.io/topology-mode instead"]),
    ({"type": "LoadBalancer", "loadBalancerSourceRanges": ["10.0.0.1/8"]}, {},
     ['spec.loadBalancerSourceRanges[0]: CIDR value "10.0.0.1/8" is ambiguous in this context '
      '(should be "10.0.0.0/8" or "10.0.0.1/32"?)']),
    ({"clusterIP": "None"}, {}, []),     # the headless warnings only exist from 1.34
    ({}, {}, []),
])
def test_warnings(api, spec, annotations, expected):
    obj = svc(**spec)
    obj["metadata"]["annotations"] = annotations
    api.s.default(obj)
    assert api.s.warnings(obj) == expected


def test_columns():
    s = ServiceStrategy()
    assert [(c.name, c.priority) for c in s.columns] == [
        ("Name", 0), ("Type", 0), ("Cluster-IP", 0), ("External-IP", 0), ("Port(s)", 0),
        ("Age", 0), ("Selector", 1)]


@pytest.mark.parametrize("spec, status, cells", [
    ({"type": "ClusterIP", "clusterIPs": ["10.96.0.7"], "ports": [{"port": 80,
                                                                    "protocol": "TCP"}]},
     {}, ["ClusterIP", "10.96.0.7", "<none>", "80/TCP", "<none>"]),
    ({"type": "ClusterIP", "clusterIPs": ["None"], "selector": {"b": "2", "a": "1"},
      "ports": []}, {}, ["ClusterIP", "None", "<none>", "<none>", "a=1,b=2"]),
    ({"type": "NodePort", "clusterIPs": ["10.96.0.8"], "externalIPs": ["192.0.2.1",
                                                                       "192.0.2.2"],
      "ports": [{"port": 80, "nodePort": 31234, "protocol": "TCP"},
                {"port": 443, "nodePort": 30443, "protocol": "TCP"}]},
     {}, ["NodePort", "10.96.0.8", "192.0.2.1,192.0.2.2", "80:31234/TCP,443:30443/TCP",
          "<none>"]),
    ({"type": "LoadBalancer", "clusterIPs": ["10.96.12.7"],
      "ports": [{"port": 80, "nodePort": 31234, "protocol": "TCP"}]}, {},
     ["LoadBalancer", "10.96.12.7", "<pending>", "80:31234/TCP", "<none>"]),
    ({"type": "LoadBalancer", "clusterIPs": ["10.96.12.7"], "externalIPs": ["192.0.2.50"],
      "ports": [{"port": 80, "protocol": "UDP"}]},
     {"loadBalancer": {"ingress": [{"ip": "192.0.2.20"}, {"hostname": "lb.example.com"},
                                   {"ip": "192.0.2.10"}, {"ip": "192.0.2.20"}]}},
     ["LoadBalancer", "10.96.12.7", "192.0.2.10,192.0.2.20,lb.example.com,192.0.2.50",
      "80/UDP", "<none>"]),
    ({"type": "ExternalName", "externalName": "example.com", "ports": []}, {},
     ["ExternalName", "<none>", "example.com", "<none>", "<none>"]),
])
def test_table_rows(spec, status, cells):
    obj = {"metadata": {"name": "web", "creationTimestamp": "2020-01-01T00:00:00Z"},
           "spec": spec, "status": status}
    row = ServiceStrategy().table_row(obj)
    assert row[0] == "web" and row[5] not in ("", "<unknown>")
    assert row[1:5] + row[6:] == cells


def test_field_labels_and_identity():
    s = ServiceStrategy()
    assert s.field_labels({"spec": {"clusterIP": "10.96.0.3", "type": "NodePort"}}) == {
        "spec.clusterIP": "10.96.0.3", "spec.type": "NodePort"}
    assert s.field_labels({"spec": {"type": "ExternalName"}}) == {
        "spec.clusterIP": "", "spec.type": "ExternalName"}
    assert (s.group, s.kind, s.plural, s.singular, s.short_names, s.categories, s.namespaced,
            s.has_status, s.return_deleted_object) == (
        "", "Service", "services", "service", ("svc",), ("all",), True, True, True)


# ---- dual-stack -------------------------------------------------------------------------------

def test_dual_stack_upgrade_and_downgrade():
    api = Api(ServerConfig("10.96.0.0/12,fd00::/108"))
    v6 = api.s.allocators.ip_allocators["IPv6"]
    both = api.create(svc("a", ipFamilyPolicy="RequireDualStack", ipFamilies=["IPv6"]))
    assert both["spec"]["ipFamilies"] == ["IPv6", "IPv4"]
    assert both["spec"]["clusterIP"] == both["spec"]["clusterIPs"][0]
    assert ":" in both["spec"]["clusterIPs"][0] and "." in both["spec"]["clusterIPs"][1]

    single = api.create(svc("b"))
    up = copy.deepcopy(single)
    up["spec"]["ipFamilyPolicy"] = "PreferDualStack"
    upgraded = api.update(up)
    assert upgraded["spec"]["ipFamilies"] == ["IPv4", "IPv6"] and v6.used() == 2
    assert upgraded["spec"]["clusterIPs"][0] == single["spec"]["clusterIP"]

    still = api.update(upgraded)   # unchanged PreferDualStack: left alone
    assert still["spec"]["clusterIPs"] == upgraded["spec"]["clusterIPs"]

    down = copy.deepcopy(upgraded)
    down["spec"]["ipFamilyPolicy"] = "SingleStack"
    downgraded = api.update(down)
    assert downgraded["spec"]["clusterIPs"] == [single["spec"]["clusterIP"]]
    assert downgraded["spec"]["ipFamilies"] == ["IPv4"] and v6.used() == 1

    assert invalid_message(api, svc("z", clusterIP="fd00::5", clusterIPs=["fd00::5", "fd00::6"],
                                    ipFamilyPolicy="PreferDualStack")) == (
        'spec.clusterIPs: Invalid value: []string{"fd00::5", "fd00::6"}: may specify no more '
        "than one IP for each IP family")
    assert invalid_message(api, svc("z", clusterIP="10.96.0.5",
                                    clusterIPs=["10.96.0.5", "fd00::6"])) == (
        'spec.ipFamilyPolicy: Invalid value: "SingleStack": must be \'RequireDualStack\' or '
        "'PreferDualStack' when multiple cluster IPs are specified")


def test_ipv6_only_cluster():
    api = Api(ServerConfig("fd00::/108"))
    out = api.create(svc())
    assert out["spec"]["ipFamilies"] == ["IPv6"] and ":" in out["spec"]["clusterIP"]
    assert api.create(kubernetes_service(ServerConfig("fd00::/108")))["spec"]["clusterIP"] == \
        "fd00::1"
