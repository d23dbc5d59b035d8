from nanokube.registry import default_registry, strategy_classes
from nanokube.registry.base import ServerConfig


def test_every_kind_is_registered_with_its_discovery_names():
    registry = default_registry()
    got = {(s.group, s.plural): (s.kind, s.short_names, s.categories, s.namespaced)
           for s in registry.strategies}
    assert got[("", "pods")] == ("Pod", ("po",), ("all",), True)
    assert got[("", "services")][0] == "Service"
    assert got[("", "namespaces")] == ("Namespace", ("ns",), (), False)
    assert got[("", "nodes")] == ("Node", ("no",), (), False)
    assert got[("", "endpoints")] == ("Endpoints", ("ep",), (), True)
    assert got[("", "events")] == ("Event", ("ev",), (), True)
    assert got[("", "configmaps")] == ("ConfigMap", ("cm",), (), True)
    assert got[("", "secrets")] == ("Secret", (), (), True)
    assert got[("", "serviceaccounts")] == ("ServiceAccount", ("sa",), (), True)
    assert got[("coordination.k8s.io", "leases")] == ("Lease", (), (), True)
    assert got[("discovery.k8s.io", "endpointslices")] == ("EndpointSlice", (), (), True)
    assert got[("apps", "deployments")] == ("Deployment", ("deploy",), ("all",), True)
    assert got[("apps", "replicasets")] == ("ReplicaSet", ("rs",), ("all",), True)
    assert got[("networking.k8s.io", "ingresses")] == ("Ingress", ("ing",), (), True)
    assert got[("networking.k8s.io", "ingressclasses")] == ("IngressClass", (), (), False)
    assert got[("cert-manager.io", "certificates")] == ("Certificate", ("cert", "certs"),
                                                        ("cert-manager",), True)
    assert got[("cert-manager.io", "issuers")] == ("Issuer", (), ("cert-manager",), True)
    assert got[("cert-manager.io", "clusterissuers")] == ("ClusterIssuer", (), ("cert-manager",),
                                                          False)
    assert got[("authorization.k8s.io", "selfsubjectaccessreviews")] == (
        "SelfSubjectAccessReview", (), (), False)
    assert got[("authorization.k8s.io", "selfsubjectrulesreviews")] == (
        "SelfSubjectRulesReview", (), (), False)
    assert got[("apps", "statefulsets")] == ("StatefulSet", ("sts",), ("all",), True)
    assert got[("apps", "controllerrevisions")] == ("ControllerRevision", (), (), True)
    assert got[("batch", "jobs")] == ("Job", (), ("all",), True)
    assert got[("apps", "daemonsets")] == ("DaemonSet", ("ds",), ("all",), True)
    assert got[("batch", "cronjobs")] == ("CronJob", ("cj",), ("all",), True)
    assert len(got) == 27
    assert got[("metallb.io", "ipaddresspools")] == ("IPAddressPool", (), (), True)
    assert got[("metallb.io", "l2advertisements")] == ("L2Advertisement", (), (), True)


def test_strategies_share_the_config():
    config = ServerConfig(service_node_port_range="31000-31999")
    registry = default_registry(config)
    assert all(s.config is config for s in registry.strategies)
    assert registry.by_kind("networking.k8s.io", "Ingress").plural == "ingresses"


def test_every_table_row_matches_its_columns():
    minimal = {"metadata": {"name": "x", "namespace": "default"}}
    for cls in strategy_classes():
        s = cls()
        assert len(s.table_row(dict(minimal))) == len(s.columns), cls.__name__
        assert s.singular and s.plural and s.kind
