"""API discovery: the legacy documents (/api, /apis, /api/v1, /apis/G/V) and aggregated
discovery (apidiscovery.k8s.io/v2), which kubectl asks for first."""
from __future__ import annotations

from nanokube.registry.base import Registry, Strategy

AGGREGATED_CONTENT_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def subresources(s: Strategy) -> list[tuple[str, dict, list[str]]]:
    """(name, responseKind, verbs) of each subresource a kind serves."""
    own = {"group": s.group, "version": s.version, "kind": s.kind}
    out = []
    if s.has_status:
        out.append(("status", own, ["get", "patch", "update"]))
    if (s.group, s.plural) == ("", "pods"):
        out.append(("binding", {"group": "", "version": "v1", "kind": "Binding"}, ["create"]))
        out.append(("log", {"group": "", "version": "v1", "kind": "Pod"}, ["get"]))
        out.append(("exec", {"group": "", "version": "v1", "kind": "PodExecOptions"},
                    ["create", "get"]))
        out.append(("portforward", {"group": "", "version": "v1",
                                    "kind": "PodPortForwardOptions"}, ["create", "get"]))
    if (s.group, s.plural) in (("", "pods"), ("", "services"), ("", "nodes")):
        kind = {"pods": "PodProxyOptions", "services": "ServiceProxyOptions",
                "nodes": "NodeProxyOptions"}[s.plural]
        out.append(("proxy", {"group": "", "version": "v1", "kind": kind},
                    ["create", "delete", "get", "patch", "update"]))
    if (s.group, s.plural) == ("", "serviceaccounts"):
        out.append(("token", {"group": "authentication.k8s.io", "version": "v1",
                              "kind": "TokenRequest"}, ["create"]))
    if (s.group, s.plural) in (("apps", "deployments"), ("apps", "replicasets"),
                               ("apps", "statefulsets")):
        out.append(("scale", {"group": "autoscaling", "version": "v1", "kind": "Scale"},
                    ["get", "patch", "update"]))
    return out


def wants_aggregated(accept: str) -> bool:
    for part in accept.split(","):
        params = dict(p.strip().split("=", 1) for p in part.split(";")[1:] if "=" in p)
        if params.get("g") == "apidiscovery.k8s.io" and params.get("v") == "v2" \
                and params.get("as") == "APIGroupDiscoveryList":
            return True
        if part.strip().split(";")[0] in ("application/json", "*/*"):
            return False
    return False


def group_versions(registry: Registry) -> dict[str, list[str]]:
    """group -> served versions, preferred first, in a stable order (core first)."""
    out: dict[str, list[str]] = {}
    for s in registry.strategies:
        versions = out.setdefault(s.group, [])
        for v in (s.version, *s.served_versions):
            if v not in versions:
                versions.append(v)
    return out


def _served(registry: Registry, group: str, version: str) -> list[Strategy]:
    return [s for s in registry.strategies
            if s.group == group and version in s.served_versions]


def resource_list(registry: Registry, group: str, version: str) -> dict | None:
    from nanokube.api import metrics      # served by the API server itself, not a kind
    if (group, version) == (metrics.GROUP, metrics.VERSION):
        return metrics.resource_list()
    strategies = _served(registry, group, version)
    if not strategies:
        return None
    resources = []
    for s in strategies:
        entry = {"name": s.plural, "singularName": s.singular, "namespaced": s.namespaced,
                 "kind": s.kind, "verbs": getattr(s, "verbs", _VERBS), "storageVersionHash": ""}
        if s.short_names:
            entry["shortNames"] = list(s.short_names)
        if s.categories:
            entry["categories"] = list(s.categories)
        resources.append(entry)
        for sub, kind, verbs in subresources(s):
            entry = {"name": f"{s.plural}/{sub}", "singularName": "",
                     "namespaced": s.namespaced, "kind": kind["kind"], "verbs": verbs}
            if kind["group"] != s.group:
                entry["group"], entry["version"] = kind["group"], kind["version"]
            resources.append(entry)
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
            "resources": resources}


def legacy_api(server_address: str) -> dict:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                            "serverAddress": server_address}]}


def legacy_groups(registry: Registry) -> dict:
    groups = []
    for group, versions in group_versions(registry).items():
        if not group:
            continue
        gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        groups.append({"name": group, "versions": gvs, "preferredVersion": gvs[0]})
    from nanokube.api import metrics
    groups.append(metrics.legacy_group())
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def _aggregated_resource(s: Strategy, version: str) -> dict:
    kind = {"group": s.group, "version": version, "kind": s.kind}
    entry = {"resource": s.plural, "responseKind": kind,
             "scope": "Namespaced" if s.namespaced else "Cluster",
             "singularResource": s.singular, "verbs": getattr(s, "verbs", _VERBS)}
    if s.short_names:
        entry["shortNames"] = list(s.short_names)
    if s.categories:
        entry["categories"] = list(s.categories)
    subs = [{"subresource": sub, "responseKind": dict(rk, version=version) if rk["kind"] == s.kind
             else rk, "verbs": verbs} for sub, rk, verbs in subresources(s)]
    if subs:
        entry["subresources"] = subs
    return entry


def aggregated(registry: Registry, core: bool) -> dict:
    """The APIGroupDiscoveryList of /api (core=True) or /apis."""
    items = []
    for group, versions in group_versions(registry).items():
        if (group == "") != core:
            continue
        item_versions = []
        for v in versions:
            resources = [_aggregated_resource(s, v) for s in _served(registry, group, v)]
            item_versions.append({"version": v, "resources": resources, "freshness": "Current"})
        items.append({"metadata": {"name": group, "creationTimestamp": None},
                      "versions": item_versions})
    if not core:
        from nanokube.api import metrics
        items.append(metrics.aggregated_group())
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {}, "items": items}
