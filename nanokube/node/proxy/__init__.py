"""Service proxy: programs ClusterIP, NodePort, external and LoadBalancer IPs into nftables."""
from .proxier import NftProxier

__all__ = ["NftProxier"]
