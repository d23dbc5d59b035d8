"""Cluster addons (DNS, ingress controller) that run as pods, applied from `manifests/` at `up`."""
