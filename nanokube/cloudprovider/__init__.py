"""Cloud providers: who gives a `type: LoadBalancer` Service its load balancer.

`LoadBalancer` mirrors the LoadBalancer interface of Kubernetes' cloud-provider
(k8s.io/cloud-provider, cloud.go): the service controller calls `ensure_load_balancer` for every
Service that wants one, `update_load_balancer` when only the nodes changed, and
`ensure_load_balancer_deleted` when the Service is gone or no longer a LoadBalancer. A provider
that cannot serve a Service raises `LoadBalancerError` with a message for the Service's Event.
"""
from __future__ import annotations


# The class of the built-in pool provider; Services without a class are ours too (the default).
LOAD_BALANCER_CLASS = "nanokube.io/pool"


def is_our_class(service: dict) -> bool:
    cls = (service.get("spec") or {}).get("loadBalancerClass")
    return cls is None or cls == LOAD_BALANCER_CLASS


class LoadBalancerError(Exception):
    """The load balancer cannot be provided; str(error) says why (goes into an Event)."""


class LoadBalancer:
    async def get_load_balancer(self, cluster_name: str, service: dict) -> tuple[dict, bool]:
        """(status.loadBalancer, exists) of the Service's load balancer."""
        raise NotImplementedError

    def get_load_balancer_name(self, cluster_name: str, service: dict) -> str:
        """The name of the Service's load balancer (cloudprovider.DefaultLoadBalancerName)."""
        uid = service["metadata"].get("uid", "").replace("-", "")
        return ("a" + uid)[:32]

    async def ensure_load_balancer(self, cluster_name: str, service: dict,
                                   nodes: list[dict]) -> dict:
        """Create or update the load balancer; returns the new status.loadBalancer."""
        raise NotImplementedError

    async def update_load_balancer(self, cluster_name: str, service: dict,
                                   nodes: list[dict]) -> None:
        """The set of nodes changed; the Service did not."""
        raise NotImplementedError

    async def ensure_load_balancer_deleted(self, cluster_name: str, service: dict) -> None:
        """Release the load balancer; nothing to do when there is none."""
        raise NotImplementedError
