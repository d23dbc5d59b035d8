"""Rendering of Service ports into nanokube table objects (no kernel involved)."""
from __future__ import annotations

import pytest
from proxy_objects import endpoint, service, slice_

from nanokube.node.proxy.model import ProxyModel
from nanokube.node.proxy.render import chain_name, render_service

CLUSTER_CIDR = "10.244.0.0/16"


def render(svc: dict, *slices: dict):
    model = ProxyModel("node-1", "10.244.1.0/24")
    model.update_service("ADDED", svc)
    for s in slices:
        model.update_endpointslice("ADDED", s)
    ports = model.service_ports(("default", svc["metadata"]["name"]))
    return ports, render_service(ports, CLUSTER_CIDR)


def elements_of(rules, map_name: str) -> dict:
    return {k: v for (m, k), v in rules.elements.items() if m == map_name}


WEB_PORTS = [{"name": "http", "port": 80, "targetPort": 8080}]
WEB_SLICE_PORTS = [{"name": "http", "port": 8080}]


def test_cluster_ip_uses_shared_chain_and_backend_elements():
    _, r = render(service("web", "10.96.0.20", WEB_PORTS),
                  slice_("web", [endpoint("10.244.1.2"), endpoint("10.244.2.3", node="node-2")],
                         WEB_SLICE_PORTS))
    assert r.chains == {} and r.maps == {}
    assert r.shared == {"cluster-n2"}
    assert elements_of(r, "service-ips") == {"10.96.0.20 . tcp . 80": "goto cluster-n2"}
    assert elements_of(r, "backends") == {
        "10.96.0.20 . tcp . 80 . 0": "10.244.1.2 . 8080",
        "10.96.0.20 . tcp . 80 . 1": "10.244.2.3 . 8080",
    }
    assert elements_of(r, "cluster-ips") == {"10.96.0.20": None}
    # only the local pod can hairpin through this node
    assert elements_of(r, "hairpin") == {"10.244.1.2 . 10.244.1.2": None}
    assert elements_of(r, "no-endpoint-services") == {}


def test_node_port_and_external_ips():
    svc = service("web", "10.96.0.20", [{"name": "http", "port": 80, "nodePort": 32000}],
                  type="LoadBalancer", externalIPs=["10.123.0.50"],
                  status={"loadBalancer": {"ingress": [{"ip": "10.123.0.200"}, {"ip": "10.123.0.201",
                                                                                 "ipMode": "Proxy"}]}})
    _, r = render(svc, slice_("web", [endpoint("10.244.1.2")], WEB_SLICE_PORTS))
    assert r.shared == {"cluster-n1", "external-n1", "nodeport-n1"}
    assert elements_of(r, "service-ips") == {
        "10.96.0.20 . tcp . 80": "goto cluster-n1",
        "10.123.0.50 . tcp . 80": "goto external-n1",
        "10.123.0.200 . tcp . 80": "goto external-n1",  # ipMode Proxy (.201) is not programmed
    }
    assert elements_of(r, "service-nodeports") == {"tcp . 32000": "goto nodeport-n1"}
    assert elements_of(r, "nodeport-backends") == {"tcp . 32000 . 0": "10.244.1.2 . 8080"}
    assert elements_of(r, "backends")["10.123.0.50 . tcp . 80 . 0"] == "10.244.1.2 . 8080"


def test_no_endpoints_rejects_every_address():
    svc = service("web", "10.96.0.20", [{"name": "http", "port": 80, "nodePort": 32000}],
                  type="NodePort", externalIPs=["10.123.0.50"])
    _, r = render(svc)
    assert elements_of(r, "no-endpoint-services") == {
        "10.96.0.20 . tcp . 80": "goto reject-chain", "10.123.0.50 . tcp . 80": "goto reject-chain"}
    assert elements_of(r, "no-endpoint-nodeports") == {"tcp . 32000": "goto reject-chain"}
    assert elements_of(r, "service-ips") == {} and r.shared == set()
    assert elements_of(r, "cluster-ips") == {"10.96.0.20": None}


def test_session_affinity_gets_own_chains_and_timeout_map():
    svc = service("web", "10.96.0.20", WEB_PORTS, sessionAffinity="ClientIP",
                  sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}})
    ports, r = render(svc, slice_("web", [endpoint("10.244.1.2"), endpoint("10.244.1.3")], WEB_SLICE_PORTS))
    sp = ports[0]
    svc_chain, cluster = chain_name("service", sp), chain_name("cluster", sp)
    amap = f"affinity-60s-{cluster}"
    update = f"affinity-update-{cluster}"
    assert set(r.chains) == {svc_chain, cluster, update}
    assert r.chains[svc_chain] == ["ip saddr != 10.244.0.0/16 jump mark-for-masquerade", f"goto {cluster}"]
    mark_rule, lookup, choice = r.chains[cluster]
    assert mark_rule.startswith("ct mark set 0x")
    assert lookup == f"meta l4proto tcp dnat ip addr . port to ip saddr map @{amap}"
    assert choice == ("meta l4proto tcp dnat ip addr . port to numgen random mod 2 "
                      "map { 0 : 10.244.1.2 . 8080, 1 : 10.244.1.3 . 8080 }")
    assert r.chains[update] == [f"update @{amap} {{ ip saddr : ip daddr . th dport }}"]
    assert "timeout 60s" in r.maps[amap] and "dynamic,timeout" in r.maps[amap]
    assert elements_of(r, "affinity-updates") == {mark_rule.split()[-1]: f"goto {update}"}
    assert elements_of(r, "service-ips") == {"10.96.0.20 . tcp . 80": f"goto {svc_chain}"}
    assert r.shared == set() and elements_of(r, "backends") == {}


def test_external_traffic_policy_local():
    svc = service("web", "10.96.0.20", [{"name": "http", "port": 80, "nodePort": 32000}],
                  type="NodePort", externalTrafficPolicy="Local")
    ports, r = render(svc, slice_("web", [endpoint("10.244.1.2"), endpoint("10.244.2.3", node="node-2")],
                                  WEB_SLICE_PORTS))
    sp = ports[0]
    ext, cluster, local = (chain_name(p, sp) for p in ("external", "cluster", "local"))
    assert r.chains[ext] == [
        f"ip saddr 10.244.0.0/16 goto {cluster}",
        "fib saddr type local jump mark-for-masquerade",
        f"fib saddr type local goto {cluster}",
        f"goto {local}",
    ]
    assert r.chains[local] == ["meta l4proto tcp dnat ip addr . port to numgen random mod 1 "
                               "map { 0 : 10.244.1.2 . 8080 }"]
    assert "mod 2" in r.chains[cluster][0]
    assert elements_of(r, "service-nodeports") == {"tcp . 32000": f"goto {ext}"}
    # the ClusterIP keeps the Cluster policy
    svc_chain = chain_name("service", sp)
    assert r.chains[svc_chain][-1] == f"goto {cluster}"


def test_external_traffic_policy_local_without_local_endpoint_drops_external_only():
    svc = service("web", "10.96.0.20", [{"name": "http", "port": 80, "nodePort": 32000}],
                  type="NodePort", externalTrafficPolicy="Local", externalIPs=["10.123.0.50"])
    _, r = render(svc, slice_("web", [endpoint("10.244.2.3", node="node-2")], WEB_SLICE_PORTS))
    assert elements_of(r, "no-endpoint-nodeports") == {"tcp . 32000": "drop"}
    assert elements_of(r, "no-endpoint-services") == {"10.123.0.50 . tcp . 80": "drop"}
    assert "10.96.0.20 . tcp . 80" in elements_of(r, "service-ips")


def test_internal_traffic_policy_local():
    svc = service("web", "10.96.0.20", WEB_PORTS, internalTrafficPolicy="Local")
    ports, r = render(svc, slice_("web", [endpoint("10.244.1.2"), endpoint("10.244.2.3", node="node-2")],
                                  WEB_SLICE_PORTS))
    local = chain_name("local", ports[0])
    assert r.chains[chain_name("service", ports[0])][-1] == f"goto {local}"
    assert "map { 0 : 10.244.1.2 . 8080 }" in r.chains[local][0]
    _, r = render(svc, slice_("web", [endpoint("10.244.2.3", node="node-2")], WEB_SLICE_PORTS))
    assert elements_of(r, "no-endpoint-services") == {"10.96.0.20 . tcp . 80": "drop"}
    assert elements_of(r, "service-ips") == {}


def test_terminating_fallback():
    eps = [endpoint("10.244.1.2", ready=False, serving=True, terminating=True),
           endpoint("10.244.1.3", ready=False, serving=False, terminating=True)]
    _, r = render(service("web", "10.96.0.20", WEB_PORTS), slice_("web", eps, WEB_SLICE_PORTS))
    assert elements_of(r, "backends") == {"10.96.0.20 . tcp . 80 . 0": "10.244.1.2 . 8080"}
    # as soon as one endpoint is ready, terminating ones are not used
    eps.append(endpoint("10.244.1.4"))
    _, r = render(service("web", "10.96.0.20", WEB_PORTS), slice_("web", eps, WEB_SLICE_PORTS))
    assert elements_of(r, "backends") == {"10.96.0.20 . tcp . 80 . 0": "10.244.1.4 . 8080"}
    # not ready and not serving: nothing usable, reject
    _, r = render(service("web", "10.96.0.20", WEB_PORTS),
                  slice_("web", [endpoint("10.244.1.2", ready=False, serving=False)], WEB_SLICE_PORTS))
    assert elements_of(r, "no-endpoint-services") == {"10.96.0.20 . tcp . 80": "goto reject-chain"}


def test_ports_matched_by_name_and_protocol_udp():
    svc = service("dns", "10.96.0.10", [{"name": "dns", "port": 53, "protocol": "UDP"},
                                        {"name": "dns-tcp", "port": 53, "protocol": "TCP"}])
    s = slice_("dns", [endpoint("10.244.1.5")], [{"name": "dns", "port": 5353, "protocol": "UDP"},
                                                 {"name": "dns-tcp", "port": 5354, "protocol": "TCP"}])
    _, r = render(svc, s)
    assert elements_of(r, "backends") == {"10.96.0.10 . udp . 53 . 0": "10.244.1.5 . 5353",
                                          "10.96.0.10 . tcp . 53 . 0": "10.244.1.5 . 5354"}


def test_load_balancer_source_ranges_firewall():
    svc = service("web", "10.96.0.20", [{"name": "http", "port": 80, "nodePort": 32000}], type="LoadBalancer",
                  loadBalancerSourceRanges=["10.123.0.0/28"],
                  status={"loadBalancer": {"ingress": [{"ip": "10.123.0.200"}]}})
    ports, r = render(svc, slice_("web", [endpoint("10.244.1.2")], WEB_SLICE_PORTS))
    fw = chain_name("firewall", ports[0])
    assert r.chains[fw] == ["ip saddr != { 10.123.0.0/28 } drop"]
    assert elements_of(r, "firewall-ips") == {"10.123.0.200 . tcp . 80": f"goto {fw}"}


def test_headless_and_external_name_render_nothing():
    _, r = render(service("h", "None", WEB_PORTS), slice_("h", [endpoint("10.244.1.2")], WEB_SLICE_PORTS))
    assert r.elements == {}
    _, r = render(service("x", "", WEB_PORTS, type="ExternalName", externalName="example.com"))
    assert r.elements == {}


def test_nodeport_addresses_like_kube_proxys_flag():
    from nanokube.node.proxy.render import NODEPORT_DADDR, nodeport_match, static_chains
    assert nodeport_match("primary") == "ip daddr @nodeport-ips"      # nftables' default
    assert nodeport_match("all") == NODEPORT_DADDR                      # every local address
    assert nodeport_match("10.123.0.0/24, 192.168.1.7/32") == \
        "fib daddr type local ip daddr { 10.123.0.0/24, 192.168.1.7/32 }"
    for bad in ("", "nonsense", "10.0.0.0/33", "fd00::/64"):
        with pytest.raises(ValueError):
            nodeport_match(bad)
    chains = static_chains("10.244.0.0/16", "10.96.0.0/12", nodeport_match("primary"))
    assert chains["services"][1] == ("ip daddr @nodeport-ips meta l4proto . th dport "
                                     "vmap @service-nodeports")
    assert chains["nodeport-endpoints-check"][0].startswith("ip daddr @nodeport-ips ")
