"""Subresources with behaviour of their own: pods/binding, pods/log and */scale.

(status and namespaces' finalize are plain updates and live in the generic storage.)"""
from __future__ import annotations

import copy
import json

import aiohttp
from aiohttp import web

from nanokube.api import errors as E
from nanokube.api.storage import ResourceStorage
from nanokube.apitime import now_rfc3339

KUBELET_PORT = 10250
SCALABLE = {("apps", "deployments"), ("apps", "replicasets"), ("apps", "statefulsets")}


def supports(group: str, plural: str, sub: str) -> bool:
    if sub in ("binding", "log", "exec", "portforward"):
        return (group, plural) == ("", "pods")
    if sub == "scale":
        return (group, plural) in SCALABLE
    if sub == "token":
        return (group, plural) == ("", "serviceaccounts")
    return False


# ---- serviceaccounts/token ----------------------------------------------------------------

async def token(accounts: ResourceStorage, issuer, namespace: str, name: str,
                request: dict) -> web.Response:
    """TokenRequest: a bound, expiring token for the service account."""
    from nanokube.api import serviceaccounts as SA
    account = await accounts.get(namespace, name)
    spec = request.get("spec") or {}
    expiration = spec.get("expirationSeconds") or SA.DEFAULT_EXPIRATION
    if not isinstance(expiration, int) or expiration < 600:
        raise E.invalid_error("TokenRequest", "authentication.k8s.io", name, [E.invalid(
            "spec.expirationSeconds", expiration,
            "may not specify a duration less than 10 minutes")])
    expiration = min(expiration, SA.MAX_EXPIRATION)
    tok, exp = issuer.issue(namespace, name, account["metadata"].get("uid", ""),
                            list(spec.get("audiences") or []), expiration,
                            spec.get("boundObjectRef"))
    return web.json_response(SA.token_request_response(request, tok, exp), status=201)


# ---- pods/binding ---------------------------------------------------------------------------

async def bind(pods: ResourceStorage, namespace: str, name: str, binding: dict) -> web.Response:
    """What the scheduler posts: sets spec.nodeName once, with the PodScheduled condition."""
    target = binding.get("target") or {}
    node = target.get("name")
    if not node:
        raise E.invalid_error("Binding", "", name, [E.required("target.name")])

    def assign(pod: dict) -> dict:
        current = pod.get("spec", {}).get("nodeName")
        if current:
            raise E.conflict_error("pods/binding", "", name,
                                   f'pod {name} is already assigned to node "{current}"')
        if pod["metadata"].get("deletionTimestamp"):
            raise E.conflict_error("pods/binding", "", name, f"pod {name} is being deleted, "
                                   "cannot be assigned to a host")
        pod["spec"]["nodeName"] = node
        conds = [c for c in pod.setdefault("status", {}).get("conditions", [])
                 if c.get("type") != "PodScheduled"]
        conds.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                      "lastTransitionTime": now_rfc3339()})
        pod["status"]["conditions"] = conds
        return pod
    await pods.guaranteed_update(namespace, name, assign, subresource="binding")
    return web.json_response({"kind": "Status", "apiVersion": "v1", "metadata": {},
                              "status": "Success", "code": 201}, status=201)


# ---- pods/log ---------------------------------------------------------------------------------

def _container_for(pod: dict, requested: str | None) -> str:
    names = [c["name"] for c in pod.get("spec", {}).get("containers", [])]
    name = pod["metadata"]["name"]
    if requested:
        if requested not in names + [c["name"] for c in pod["spec"].get("initContainers", [])]:
            raise E.bad_request(f"container {requested} is not valid for pod {name}")
        return requested
    if len(names) == 1:
        return names[0]
    raise E.bad_request(f"a container name must be specified for pod {name}, choose one of: "
                        f"[{' '.join(names)}]")


async def _node_ip(nodes: ResourceStorage, pod: dict) -> str:
    ip = pod.get("status", {}).get("hostIP")
    if ip:
        return ip
    node = await nodes.get(None, pod["spec"]["nodeName"])
    for addr in node.get("status", {}).get("addresses", []):
        if addr.get("type") == "InternalIP":
            return addr["address"]
    raise E.StatusError(500, "InternalError", "Internal error occurred: node has no address")


async def logs(request: web.Request, pods: ResourceStorage, nodes: ResourceStorage,
               namespace: str, name: str) -> web.StreamResponse:
    """Proxy to the node agent's log endpoint, as kube-apiserver proxies to the kubelet."""
    pod = await pods.get(namespace, name)
    container = _container_for(pod, request.query.get("container"))
    if not pod.get("spec", {}).get("nodeName"):
        raise E.bad_request(f'container "{container}" in pod "{name}" is waiting to start: '
                            "ContainerCreating")
    ip = await _node_ip(nodes, pod)
    params = {k: v for k, v in request.query.items()
              if k in ("follow", "tailLines", "timestamps", "previous", "sinceSeconds",
                       "sinceTime", "limitBytes")}
    url = f"http://{ip}:{KUBELET_PORT}/containerLogs/{namespace}/{name}/{container}"
    timeout = aiohttp.ClientTimeout(total=None, connect=3, sock_read=None)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        try:
            upstream = await session.get(url, params=params)
        except aiohttp.ClientError as e:
            raise E.StatusError(500, "InternalError", f"Internal error occurred: Get \"{url}\": "
                                f"{e}") from None
        async with upstream:
            if upstream.status != 200:
                text = (await upstream.text()).strip() or upstream.reason
                raise E.bad_request(text)
            resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
            await resp.prepare(request)
            async for chunk in upstream.content.iter_any():
                await resp.write(chunk)
            await resp.write_eof()
            return resp


# ---- */scale ----------------------------------------------------------------------------------

def selector_string(selector: dict | None) -> str:
    parts = [f"{k}={v}" for k, v in sorted((selector or {}).get("matchLabels", {}).items())]
    for expr in (selector or {}).get("matchExpressions", []):
        op, key, values = expr.get("operator"), expr.get("key"), expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(sorted(values))})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(sorted(values))})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


def to_scale(obj: dict) -> dict:
    meta = obj["metadata"]
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                              "creationTimestamp") if k in meta},
            "spec": {"replicas": obj.get("spec", {}).get("replicas", 0)},
            "status": {"replicas": obj.get("status", {}).get("replicas", 0),
                       "selector": selector_string(obj.get("spec", {}).get("selector"))}}


async def scale(request: web.Request, storage: ResourceStorage, namespace: str, name: str,
                body: bytes) -> web.Response:
    from nanokube.api import patch as P
    if request.method == "GET":
        return web.json_response(to_scale(await storage.get(namespace, name)))
    if request.method not in ("PUT", "PATCH"):
        raise E.method_not_allowed(request.method, "scale")
    try:
        incoming = json.loads(body or b"{}")
    except ValueError as e:
        raise E.bad_request(f"error decoding body: {e}") from None
    ctype = request.headers.get("Content-Type", "").split(";")[0].strip()

    def apply(obj: dict) -> dict:
        current = to_scale(obj)
        if request.method == "PUT":
            new = incoming
            want_rv = (new.get("metadata") or {}).get("resourceVersion")
            if want_rv and want_rv != obj["metadata"]["resourceVersion"]:
                raise E.conflict_error(storage.strategy.plural, storage.strategy.group, name)
        elif ctype == "application/json-patch+json":
            new = P.json_patch(current, incoming)
        elif ctype == "application/strategic-merge-patch+json":
            new = P.strategic_merge_patch(current, incoming, None)
        else:
            new = P.json_merge_patch(current, incoming)
        replicas = (new.get("spec") or {}).get("replicas", 0)
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise E.invalid_error("Scale", "autoscaling", name, [E.invalid(
                "spec.replicas", replicas, "must be greater than or equal to 0")])
        obj = copy.deepcopy(obj)
        obj["spec"]["replicas"] = replicas
        return obj
    try:
        updated = await storage.guaranteed_update(namespace, name, apply)
    except P.PatchError as e:
        raise E.StatusError(e.code, "BadRequest", e.message) from None
    return web.json_response(to_scale(updated))
