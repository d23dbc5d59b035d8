"""Allocation of Service ClusterIPs and NodePorts, done in the API server as in Kubernetes."""
from nanokube.allocators.clusterip import AllocationError, ClusterIPAllocator
from nanokube.allocators.nodeport import NodePortAllocator, PortAllocationOperation
from nanokube.allocators.service import (AllocationTxn, InternalAllocation, InvalidAllocation,
                                         ServiceAllocators)

__all__ = ["AllocationError", "AllocationTxn", "ClusterIPAllocator", "InternalAllocation",
           "InvalidAllocation", "NodePortAllocator", "PortAllocationOperation",
           "ServiceAllocators"]
