"""resolv.conf and hosts as the kubelet writes them."""
from nanokube.node.podfiles import hosts_file, pod_hostname, resolv_conf


def pod(**spec):
    return {"metadata": {"name": "web-1", "namespace": "shop"}, "spec": spec}


def test_cluster_first_resolv_conf():
    text = resolv_conf(pod(dnsPolicy="ClusterFirst"), "10.96.0.10", "cluster.local")
    assert text == ("nameserver 10.96.0.10\n"
                    "search shop.svc.cluster.local svc.cluster.local cluster.local\n"
                    "options ndots:5\n")


def test_dns_config_merges_and_none_policy():
    p = pod(dnsPolicy="None", dnsConfig={"nameservers": ["1.2.3.4"], "searches": ["a.b"],
                                         "options": [{"name": "ndots", "value": "2"},
                                                     {"name": "edns0"}]})
    assert resolv_conf(p, "10.96.0.10", "cluster.local") == \
        "nameserver 1.2.3.4\nsearch a.b\noptions ndots:2 edns0\n"
    p = pod(dnsConfig={"options": [{"name": "ndots", "value": "1"}]})
    assert "options ndots:1\n" in resolv_conf(p, "10.96.0.10", "cluster.local")


def test_default_policy_uses_the_nodes_resolver():
    text = resolv_conf(pod(dnsPolicy="Default"), "10.96.0.10", "cluster.local",
                       "nameserver 9.9.9.9\nsearch lan\n")
    assert text == "nameserver 9.9.9.9\nsearch lan\n"


def test_hosts_file():
    text = hosts_file(pod(), "10.244.1.5", "cluster.local")
    assert text.startswith("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n")
    assert text.endswith("10.244.1.5\tweb-1\n")
    text = hosts_file(pod(hostname="db-0", subdomain="db",
                          hostAliases=[{"ip": "1.1.1.1", "hostnames": ["one", "uno"]}]),
                      "10.244.1.6", "cluster.local")
    assert "10.244.1.6\tdb-0.db.shop.svc.cluster.local\tdb-0\n" in text
    assert "1.1.1.1\tone\tuno\n" in text


def test_hostname():
    assert pod_hostname(pod()) == "web-1"
    assert pod_hostname(pod(hostname="h")) == "h"
