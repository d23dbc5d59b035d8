"""A container's environment, built as the kubelet builds it (makeEnvironmentVariables).

Order of precedence, lowest first: PATH and HOSTNAME (what a container runtime sets), the
Docker-link style variables of Services, `envFrom`, then `env` — each `env` entry may refer to
the ones before it with `$(NAME)`.
"""
from __future__ import annotations

from typing import Any, Callable

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class EnvError(Exception):
    """A reference that cannot be resolved (CreateContainerConfigError in the kubelet)."""


# ---- Services as environment variables -------------------------------------------------------

def _service_prefix(name: str) -> str:
    return name.upper().replace("-", "_")


def service_env(service: dict) -> dict[str, str]:
    """The variables one Service contributes (envvars.FromServices), {} for headless ones."""
    spec = service.get("spec") or {}
    ip = spec.get("clusterIP") or ""
    if not ip or ip == "None":
        return {}
    ports = spec.get("ports") or []
    if not ports:
        return {}
    prefix = _service_prefix(service["metadata"]["name"])
    env = {f"{prefix}_SERVICE_HOST": ip, f"{prefix}_SERVICE_PORT": str(ports[0]["port"])}
    for port in ports:
        if port.get("name"):
            env[f"{prefix}_SERVICE_PORT_{_service_prefix(port['name'])}"] = str(port["port"])
    first = ports[0]
    env[f"{prefix}_PORT"] = f"{first.get('protocol', 'TCP').lower()}://{ip}:{first['port']}"
    for port in ports:
        proto = port.get("protocol", "TCP")
        key = f"{prefix}_PORT_{port['port']}_{proto.upper()}"
        env[key] = f"{proto.lower()}://{ip}:{port['port']}"
        env[key + "_PROTO"] = proto.lower()
        env[key + "_PORT"] = str(port["port"])
        env[key + "_ADDR"] = ip
    return env


def services_env(services: list[dict], namespace: str, enable_service_links: bool) -> dict[str, str]:
    """The master `kubernetes` Service is always visible; the pod's namespace's Services only
    with enableServiceLinks, and they win over the master's (getServiceEnvVarMap)."""
    chosen: dict[str, dict] = {}
    for svc in services:
        meta = svc.get("metadata") or {}
        if meta.get("namespace") == "default" and meta.get("name") == "kubernetes":
            chosen.setdefault(meta["name"], svc)
    if enable_service_links:
        for svc in services:
            meta = svc.get("metadata") or {}
            if meta.get("namespace") == namespace:
                chosen[meta["name"]] = svc
    env: dict[str, str] = {}
    for name in sorted(chosen):
        env.update(service_env(chosen[name]))
    return env


# ---- $(VAR) expansion ----------------------------------------------------------------------------

def expand(text: str, lookup: Callable[[str], str | None]) -> str:
    """third_party/forked/golang/expansion: $(NAME) becomes NAME's value when it is defined,
    $$ becomes $, anything else (an unknown name, an unclosed reference) stays as written."""
    out = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "$" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = text.find(")", i + 2)
                if end != -1:
                    name = text[i + 2:end]
                    value = lookup(name)
                    out.append(value if value is not None else text[i:end + 1])
                    i = end + 1
                    continue
        out.append(c)
        i += 1
    return "".join(out)


# ---- downward API -------------------------------------------------------------------------------

def field_ref_value(pod: dict, path: str, pod_ip: str, host_ip: str) -> str:
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", "") or "",
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
    }
    if path in simple:
        return simple[path]
    for key in ("labels", "annotations"):
        prefix = f"metadata.{key}['"
        if path.startswith(prefix) and path.endswith("']"):
            return (meta.get(key) or {}).get(path[len(prefix):-2], "")
    raise EnvError(f"unsupported fieldPath: {path}")


# ---- the whole environment --------------------------------------------------------------------

SourceGetter = Callable[[str, str], dict | None]   # (kind, name) -> ConfigMap/Secret or None


def _source_data(obj: dict | None, kind: str) -> dict[str, str]:
    if obj is None:
        return {}
    if kind == "Secret":
        import base64
        return {k: base64.b64decode(v).decode(errors="replace")
                for k, v in (obj.get("data") or {}).items()}
    return dict(obj.get("data") or {})


def container_env(pod: dict, container: dict, *, pod_ip: str, host_ip: str, hostname: str,
                  services: list[dict], get_source: SourceGetter | None = None) -> dict[str, str]:
    """The environment the container's process gets. `get_source(kind, name)` fetches the
    ConfigMap or Secret that envFrom/valueFrom refer to (None when it does not exist)."""
    spec = pod.get("spec") or {}
    namespace = (pod.get("metadata") or {}).get("namespace", "default")
    env: dict[str, str] = {"PATH": DEFAULT_PATH, "HOSTNAME": hostname}
    links = services_env(services, namespace, spec.get("enableServiceLinks", True) is not False)
    env.update(links)
    defined: dict[str, str] = {}

    def defined_or_service(name: str) -> str | None:
        return defined.get(name, links.get(name))

    for source in container.get("envFrom") or []:
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            ref = source.get(key)
            if not ref:
                continue
            obj = get_source(kind, ref.get("name", "")) if get_source else None
            if obj is None and not ref.get("optional"):
                raise EnvError(f'{kind.lower()} "{ref.get("name", "")}" not found')
            for k, v in _source_data(obj, kind).items():
                defined[source.get("prefix", "") + k] = v
    for var in container.get("env") or []:
        name = var.get("name", "")
        if "valueFrom" not in var or var.get("value"):
            defined[name] = expand(var.get("value", "") or "", defined_or_service)
            continue
        value_from = var.get("valueFrom") or {}
        if "fieldRef" in value_from:
            defined[name] = field_ref_value(pod, value_from["fieldRef"].get("fieldPath", ""),
                                            pod_ip, host_ip)
        elif "resourceFieldRef" in value_from:
            defined[name] = _resource_value(container, value_from["resourceFieldRef"])
        else:
            for kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                ref = value_from.get(key)
                if ref is None:
                    continue
                obj = get_source(kind, ref.get("name", "")) if get_source else None
                data = _source_data(obj, kind)
                if ref.get("key") in data:
                    defined[name] = data[ref["key"]]
                elif not ref.get("optional"):
                    what = "configmap" if kind == "ConfigMap" else "secret"
                    if obj is None:
                        raise EnvError(f'{what} "{ref.get("name", "")}" not found')
                    raise EnvError(f"couldn't find key {ref.get('key')} in {kind} "
                                   f"{namespace}/{ref.get('name', '')}")
    env.update(defined)
    return env


def _resource_value(container: dict, ref: dict[str, Any]) -> str:
    """limits.*/requests.* as written; no limit means the node's capacity in Kubernetes, which a
    process sandbox does not enforce, so "0" stands for "unbounded" here."""
    resource = ref.get("resource", "")
    kind, _, name = resource.partition(".")
    value = ((container.get("resources") or {}).get(kind) or {}).get(name)
    return str(value) if value is not None else "0"


def expand_argv(argv: list[str], env: dict[str, str]) -> list[str]:
    """command/args may refer to the environment with $(NAME), as in Kubernetes."""
    return [expand(a, env.get) for a in argv]
