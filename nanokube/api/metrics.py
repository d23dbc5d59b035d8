"""metrics.k8s.io/v1beta1, the resource metrics API metrics-server serves (kubectl top, HPA):

    GET /apis/metrics.k8s.io/v1beta1/nodes[/NAME]                      NodeMetrics(List)
    GET /apis/metrics.k8s.io/v1beta1/[namespaces/NS/]pods[/NAME]       PodMetrics(List)

with labelSelector, and fieldSelector on metadata.name and metadata.namespace; verbs get and
list only. A NodeMetrics is {metadata, timestamp, window, usage: {cpu, memory}}, a PodMetrics
{metadata, timestamp, window, containers: [{name, usage}]}: CPU the rate over the window in
nanocores, memory the working set, the interval being [timestamp - window, timestamp].

In Kubernetes metrics-server runs as a Deployment behind an APIService; here the API server
answers the group itself, in the way metrics-server would: it asks the agents of the Ready
nodes concerned, in parallel and each with a short timeout, for their usage summary
(GET <node-ip>:10250/stats/summary, nanokube/node/metrics.py, which keeps the last two samples
and so has the rates already). A node that does not answer in time is left out of the answer,
as metrics-server leaves out nodes it could not scrape; kubectl shows <unknown> for it. Nothing
is stored: each request asks anew, so no scrape loop runs while nobody looks.
"""
from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from nanokube.api import errors as E
from nanokube.api import selectors as sel
from nanokube.api.rest import json_response
from nanokube.apitime import now_rfc3339

GROUP, VERSION = "metrics.k8s.io", "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"
KUBELET_PORT = 10250
SCRAPE_TIMEOUT = 3.0               # a node slower than this is left out
KINDS = {"nodes": ("NodeMetrics", "nodemetrics", False),
         "pods": ("PodMetrics", "podmetrics", True)}
VERBS = ["get", "list"]


# ---- discovery ------------------------------------------------------------------------------

def resource_list() -> dict:
    resources = [{"name": plural, "singularName": "", "namespaced": namespaced, "kind": kind,
                  "verbs": VERBS} for plural, (kind, _, namespaced) in KINDS.items()]
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": API_VERSION,
            "resources": resources}


def legacy_group() -> dict:
    gv = {"groupVersion": API_VERSION, "version": VERSION}
    return {"name": GROUP, "versions": [gv], "preferredVersion": gv}


def aggregated_group() -> dict:
    resources = [{"resource": plural, "responseKind": {"group": GROUP, "version": VERSION,
                                                       "kind": kind},
                  "scope": "Namespaced" if namespaced else "Cluster",
                  "singularResource": "", "verbs": VERBS}
                 for plural, (kind, _, namespaced) in KINDS.items()]
    return {"metadata": {"name": GROUP, "creationTimestamp": None},
            "versions": [{"version": VERSION, "resources": resources, "freshness": "Current"}]}


# ---- quantities ------------------------------------------------------------------------------

def format_cpu(nanocores: int) -> str:
    """A Quantity's canonical form of a nanocore count: 1500000000n is "1500m", 2000000000n
    "2", 1234n stays "1234n"."""
    for suffix in ("n", "u", "m"):
        if nanocores % 1000 or nanocores == 0:
            return f"{nanocores}{suffix}" if nanocores else "0"
        nanocores //= 1000
    return str(nanocores)


def format_memory(n: int) -> str:
    """Bytes in a Quantity's canonical binary form: the largest suffix that keeps the number
    whole, 1048576 is "1Mi", 3072 "3Ki", 1000 "1000"."""
    if n == 0:
        return "0"
    suffix = ""
    for s in ("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"):
        if n % 1024:
            break
        n //= 1024
        suffix = s
    return f"{n}{suffix}"


def go_duration(seconds: float) -> str:
    """metav1.Duration's form (Go's time.Duration.String()) to the millisecond: "15.002s",
    "1m0.5s"."""
    ms = int(round(seconds * 1000))
    if ms == 0:
        return "0s"
    minutes, ms = divmod(ms, 60_000)
    hours, minutes = divmod(minutes, 60)
    secs = f"{ms // 1000}.{ms % 1000:03d}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{secs}"
    return f"{minutes}m{secs}" if minutes else secs


# ---- objects from summaries ----------------------------------------------------------------------

def _usage(stats: dict) -> dict | None:
    cpu = (stats.get("cpu") or {}).get("usageNanoCores")
    memory = (stats.get("memory") or {}).get("workingSetBytes")
    if cpu is None or memory is None:
        return None
    return {"cpu": format_cpu(int(cpu)), "memory": format_memory(int(memory))}


def _window(summary: dict) -> str:
    return go_duration(float(summary.get("window") or 0))


def node_metrics(node: dict, summary: dict) -> dict | None:
    """The NodeMetrics of a node from its agent's summary; None before it has two samples."""
    stats = summary.get("node") or {}
    usage = _usage(stats)
    if usage is None:
        return None
    meta = node["metadata"]
    return {"kind": "NodeMetrics", "apiVersion": API_VERSION,
            "metadata": {"name": meta["name"], "creationTimestamp": now_rfc3339(),
                         "labels": dict(meta.get("labels") or {})},
            "timestamp": stats["cpu"]["time"], "window": _window(summary), "usage": usage}


def pod_metrics(pod: dict, summary: dict) -> dict | None:
    """The PodMetrics of a pod from its node's summary; None unless every container the
    summary has for it has a rate (metrics-server leaves incomplete pods out)."""
    meta = pod["metadata"]
    entry = next((p for p in summary.get("pods") or []
                  if (p.get("podRef") or {}).get("uid") == meta.get("uid")), None)
    if entry is None or not entry.get("containers"):
        return None
    containers, times = [], []
    for c in entry["containers"]:
        usage = _usage(c)
        if usage is None:
            return None
        containers.append({"name": c["name"], "usage": usage})
        times.append(c["cpu"]["time"])
    return {"kind": "PodMetrics", "apiVersion": API_VERSION,
            "metadata": {"name": meta["name"], "namespace": meta["namespace"],
                         "creationTimestamp": now_rfc3339(),
                         "labels": dict(meta.get("labels") or {})},
            "timestamp": min(times), "window": _window(summary), "containers": containers}


def metrics_list(kind: str, items: list[dict]) -> dict:
    return {"kind": f"{kind}List", "apiVersion": API_VERSION, "metadata": {}, "items": items}


# ---- asking the agents -------------------------------------------------------------------------

def _ready(node: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


def _internal_ip(node: dict) -> str | None:
    for addr in (node.get("status") or {}).get("addresses") or []:
        if addr.get("type") == "InternalIP":
            return addr.get("address")
    return None


async def _summary(session: aiohttp.ClientSession, node: dict) -> dict | None:
    ip = _internal_ip(node)
    if ip is None or not _ready(node):
        return None
    try:
        async with session.get(f"http://{ip}:{KUBELET_PORT}/stats/summary") as resp:
            if resp.status != 200:
                return None
            return await resp.json(content_type=None)
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
        return None


async def summaries(nodes: list[dict]) -> dict[str, dict]:
    """node name -> its agent's summary, for the nodes that answered in time."""
    if not nodes:
        return {}
    timeout = aiohttp.ClientTimeout(total=SCRAPE_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        got = await asyncio.gather(*(_summary(session, n) for n in nodes))
    return {n["metadata"]["name"]: s for n, s in zip(nodes, got) if s is not None}


# ---- the handler -------------------------------------------------------------------------------

class MetricsAPI:
    def __init__(self, storages):
        self.nodes = storages[("", "nodes")]
        self.pods = storages[("", "pods")]

    async def handle(self, request: web.Request, route) -> web.Response:
        if route.plural not in KINDS or route.subresource or (route.namespace and route.plural != "pods"):
            raise E.StatusError(404, "NotFound", "the server could not find the requested "
                                "resource", {})
        kind, singular, _ = KINDS[route.plural]
        if request.method not in ("GET", "HEAD") or request.query.get("watch") in ("1", "true"):
            verb = "watch" if request.method == "GET" else request.method.lower()
            raise E.StatusError(405, "MethodNotAllowed", f'{verb} is not supported on resources '
                                f'of kind "{singular}.{GROUP}"', {"group": GROUP,
                                                                  "kind": singular})
        labels = sel.parse_label_selector(request.query.get("labelSelector", ""))
        fields = sel.parse_field_selector(request.query.get("fieldSelector", ""))
        for req in fields.requirements:
            key = req[0] if isinstance(req, tuple) else getattr(req, "field", None)
            if key not in ("metadata.name", "metadata.namespace"):
                raise E.bad_request(f"field label not supported: {key}")
        if route.plural == "nodes":
            return json_response(await self._nodes(route.name, labels, fields))
        return json_response(await self._pods(route.namespace, route.name, labels, fields))

    async def _nodes(self, name, labels, fields) -> dict:
        if name is not None:
            try:
                node = await self.nodes.get(None, name)
            except E.StatusError:
                raise E.not_found_error("nodemetrics", GROUP, name) from None
            found = node_metrics(node, (await summaries([node])).get(name) or {})
            if found is None:
                raise E.not_found_error("nodemetrics", GROUP, name)
            return found
        nodes, _, _, _ = await self.nodes.list(None)
        nodes = [n for n in nodes if _selected(n, labels, fields)]
        got = await summaries(nodes)
        items = [node_metrics(n, got[n["metadata"]["name"]]) for n in nodes
                 if n["metadata"]["name"] in got]
        return metrics_list("NodeMetrics", [i for i in items if i is not None])

    async def _pods(self, namespace, name, labels, fields) -> dict:
        if name is not None:
            missing = E.not_found_error("podmetrics", GROUP, f"{namespace}/{name}")
            try:
                pods = [await self.pods.get(namespace, name)]
            except E.StatusError:
                raise missing from None
        else:
            pods, _, _, _ = await self.pods.list(namespace)
            pods = [p for p in pods if _selected(p, labels, fields)]
        pods = [p for p in pods if (p.get("spec") or {}).get("nodeName")]
        wanted = {p["spec"]["nodeName"] for p in pods}
        all_nodes, _, _, _ = await self.nodes.list(None)
        got = await summaries([n for n in all_nodes if n["metadata"]["name"] in wanted])
        items = []
        for p in pods:
            summary = got.get(p["spec"]["nodeName"])
            found = pod_metrics(p, summary) if summary is not None else None
            if found is not None:
                items.append(found)
        if name is not None:
            if not items:
                raise missing
            return items[0]
        return metrics_list("PodMetrics", items)


def _selected(obj: dict, labels, fields) -> bool:
    meta = obj["metadata"]
    return labels.matches(meta.get("labels") or {}) and fields.matches(
        {"metadata.name": meta.get("name", ""), "metadata.namespace": meta.get("namespace", "")})
