"""Ingress: the routing model (model.py), annotations (annotations.py) and nginx.conf (nginx.py)."""
