"""Cluster DNS: the Kubernetes DNS schema answered from Services and EndpointSlices."""
