"""Per-kind strategies, and the registry of every kind the API server serves."""
from __future__ import annotations

from nanokube.registry.base import Registry, ServerConfig, Strategy


def strategy_classes() -> list[type[Strategy]]:
    """Every kind but Service, in the order discovery lists them."""
    from nanokube.registry.configmap import ConfigMapStrategy
    from nanokube.registry.controllerrevision import ControllerRevisionStrategy
    from nanokube.registry.daemonset import DaemonSetStrategy
    from nanokube.registry.cronjob import CronJobStrategy
    from nanokube.registry.deployment import DeploymentStrategy
    from nanokube.registry.endpoints import EndpointsStrategy
    from nanokube.registry.endpointslice import EndpointSliceStrategy
    from nanokube.registry.event import EventStrategy
    from nanokube.registry.ingress import IngressStrategy
    from nanokube.registry.ingressclass import IngressClassStrategy
    from nanokube.registry.job import JobStrategy
    from nanokube.registry.lease import LeaseStrategy
    from nanokube.registry.namespace import NamespaceStrategy
    from nanokube.registry.node import NodeStrategy
    from nanokube.registry.pod import PodStrategy
    from nanokube.registry.replicaset import ReplicaSetStrategy
    from nanokube.registry.secret import SecretStrategy
    from nanokube.registry.serviceaccount import ServiceAccountStrategy
    from nanokube.registry.statefulset import StatefulSetStrategy
    return [NamespaceStrategy, NodeStrategy, PodStrategy, EndpointsStrategy, ConfigMapStrategy,
            SecretStrategy, ServiceAccountStrategy, EventStrategy, LeaseStrategy,
            EndpointSliceStrategy, DeploymentStrategy, ReplicaSetStrategy, IngressStrategy,
            IngressClassStrategy, StatefulSetStrategy, ControllerRevisionStrategy, JobStrategy,
            DaemonSetStrategy, CronJobStrategy]


def default_registry(config: ServerConfig | None = None) -> Registry:
    """Every strategy, ServiceStrategy included, sharing one ServerConfig."""
    from nanokube.registry.service import ServiceStrategy   # lazily: written in parallel
    config = config or ServerConfig()
    classes = strategy_classes()
    classes.insert(3, ServiceStrategy)
    # MetalLB's configuration kinds, served as built-ins (metallb.io/v1beta1)
    from nanokube.registry.ipaddresspool import IPAddressPoolStrategy
    from nanokube.registry.l2advertisement import L2AdvertisementStrategy
    classes += [IPAddressPoolStrategy, L2AdvertisementStrategy]
    # cert-manager's kinds, served as built-ins (cert-manager.io/v1)
    from nanokube.registry.certificate import CertificateStrategy
    from nanokube.registry.issuer import ClusterIssuerStrategy, IssuerStrategy
    classes += [IssuerStrategy, ClusterIssuerStrategy, CertificateStrategy]
    # authorization.k8s.io/v1 reviews: answered, never stored
    from nanokube.registry.authorization import (SelfSubjectAccessReviewStrategy,
                                                 SelfSubjectRulesReviewStrategy)
    classes += [SelfSubjectAccessReviewStrategy, SelfSubjectRulesReviewStrategy]
    return Registry([cls(config) for cls in classes])
