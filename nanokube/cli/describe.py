"""`nanokube describe`: kubectl's Service describer and its generic describer
(k/kubectl pkg/describe/describe.go)."""
from __future__ import annotations

import datetime as dt
import sys
import unicodedata

from nanokube.api.errors import StatusError
from nanokube.api.tables import since
from nanokube.apitime import parse_datetime
from nanokube.cli.apply import LAST_APPLIED
from nanokube.cli.printers import go_sprint, go_tabwriter

_EPOCH = dt.datetime.fromtimestamp(0, dt.timezone.utc)
MAX_ANNOTATION_LEN = 140
SKIP_ANNOTATIONS = {LAST_APPLIED}


class PrefixWriter:
    """describe's writer: lines with tab-separated cells, indented two spaces a level."""

    def __init__(self):
        self.parts: list[str] = []

    def write(self, level: int, text: str) -> None:
        self.parts.append("  " * level + text)

    def text(self) -> str:
        return go_tabwriter("".join(self.parts))


def labels_multiline(w: PrefixWriter, title: str, labels: dict | None) -> None:
    w.write(0, f"{title}:\t")
    if not labels:
        w.write(0, "<none>\n")
        return
    for i, key in enumerate(sorted(labels)):
        if i:
            w.write(0, "\t")
        w.write(0, f"{key}={labels[key]}\n")


def _shorten(s: str, n: int) -> str:
    return s[:n] + "..." if len(s) > n else s


def annotations_multiline(w: PrefixWriter, title: str, annotations: dict | None) -> None:
    w.write(0, f"{title}:\t")
    keys = sorted(k for k in (annotations or {}) if k not in SKIP_ANNOTATIONS)
    if not keys:
        w.write(0, "<none>\n")
        return
    for i, key in enumerate(keys):
        if i:
            w.write(0, "\t")
        value = annotations[key].removesuffix("\n")
        if len(value) + len(key) + 2 > MAX_ANNOTATION_LEN or "\n" in value:
            w.write(0, f"{key}:\n")
            for line in value.split("\n"):
                w.write(0, f"\t  {_shorten(line, MAX_ANNOTATION_LEN - 2)}\n")
        else:
            w.write(0, f"{key}: {value}\n")


def format_labels(labels: dict | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items())) or "<none>"


def _join_host_port(host: str, port) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def format_endpoint_slices(slices: list[dict] | None, port_name: str) -> str:
    """formatEndpointSlices for one service port: ready addresses, at most 3, then `+ N more...`."""
    if not slices:
        return "<none>"
    found: list[str] = []
    for s in slices:
        ready = [e for e in s.get("endpoints") or []
                 if (e.get("conditions") or {}).get("ready") is not False]
        if not s.get("ports"):
            found += [e["addresses"][0] for e in ready]
            continue
        for p in s["ports"]:
            if (p.get("name") or "") == port_name:
                found += [_join_host_port(e["addresses"][0], p.get("port")) for e in ready]
    if len(found) > 3:
        return ",".join(found[:3]) + f" + {len(found) - 3} more..."
    return ",".join(found)


def load_balancer_ingress(ingress: list[dict]) -> str:
    parts = []
    for ing in ingress:
        text = ing.get("ip") or ing.get("hostname", "")
        if ing.get("ipMode"):
            text += f" ({ing['ipMode']})"
        parts.append(text)
    return ", ".join(parts)


def describe_events(w: PrefixWriter, events: dict | None) -> None:
    if events is None:
        return
    items = events.get("items") or []
    if not items:
        w.write(0, "Events:\t<none>\n")
        return
    items = sorted(items, key=lambda e: parse_datetime(e.get("lastTimestamp")) or _EPOCH)
    w.write(0, "Events:\n  Type\tReason\tAge\tFrom\tMessage\n")
    w.write(1, "----\t------\t----\t----\t-------\n")
    for e in items:
        first = since(e.get("eventTime")) if e.get("eventTime") else since(e.get("firstTimestamp"))
        series = e.get("series")
        if series:
            interval = (f"{since(series.get('lastObservedTime'))} "
                        f"(x{series.get('count', 0)} over {first})")
        elif (e.get("count") or 0) > 1:
            interval = f"{since(e.get('lastTimestamp'))} (x{e['count']} over {first})"
        else:
            interval = first
        source = (e.get("source") or {}).get("component") or e.get("reportingComponent", "")
        w.write(1, f"{e.get('type', '')}\t{e.get('reason', '')}\t{interval}\t{source}\t"
                   f"{(e.get('message') or '').strip()}\n")


def describe_service(svc: dict, slices: list[dict] | None, events: dict | None) -> str:
    meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
    status = svc.get("status") or {}
    w = PrefixWriter()
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    w.write(0, f"Namespace:\t{meta.get('namespace', '')}\n")
    labels_multiline(w, "Labels", meta.get("labels"))
    annotations_multiline(w, "Annotations", meta.get("annotations"))
    w.write(0, f"Selector:\t{format_labels(spec.get('selector'))}\n")
    w.write(0, f"Type:\t{spec.get('type', '')}\n")
    if spec.get("ipFamilyPolicy"):
        w.write(0, f"IP Family Policy:\t{spec['ipFamilyPolicy']}\n")
    w.write(0, f"IP Families:\t{','.join(spec.get('ipFamilies') or []) or '<none>'}\n")
    w.write(0, f"IP:\t{spec.get('clusterIP', '')}\n")
    w.write(0, f"IPs:\t{','.join(spec.get('clusterIPs') or []) or '<none>'}\n")
    if spec.get("externalIPs"):
        w.write(0, f"External IPs:\t{','.join(spec['externalIPs'])}\n")
    if spec.get("loadBalancerIP"):
        w.write(0, f"Desired LoadBalancer IP:\t{spec['loadBalancerIP']}\n")
    if spec.get("externalName"):
        w.write(0, f"External Name:\t{spec['externalName']}\n")
    ingress = (status.get("loadBalancer") or {}).get("ingress") or []
    if ingress:
        w.write(0, f"LoadBalancer Ingress:\t{load_balancer_ingress(ingress)}\n")
    for port in spec.get("ports") or []:
        name = port.get("name") or "<unset>"
        proto = port.get("protocol", "")
        w.write(0, f"Port:\t{name}\t{port.get('port')}/{proto}\n")
        w.write(0, f"TargetPort:\t{port.get('targetPort', '')}/{proto}\n")
        if port.get("nodePort"):
            w.write(0, f"NodePort:\t{name}\t{port['nodePort']}/{proto}\n")
        w.write(0, f"Endpoints:\t{format_endpoint_slices(slices, port.get('name') or '')}\n")
    w.write(0, f"Session Affinity:\t{spec.get('sessionAffinity', '')}\n")
    if spec.get("externalTrafficPolicy"):
        w.write(0, f"External Traffic Policy:\t{spec['externalTrafficPolicy']}\n")
    if spec.get("internalTrafficPolicy"):
        w.write(0, f"Internal Traffic Policy:\t{spec['internalTrafficPolicy']}\n")
    if spec.get("healthCheckNodePort"):
        w.write(0, f"HealthCheck NodePort:\t{spec['healthCheckNodePort']}\n")
    if spec.get("loadBalancerSourceRanges"):
        w.write(0, f"LoadBalancer Source Ranges:\t{','.join(spec['loadBalancerSourceRanges'])}\n")
    if spec.get("trafficDistribution"):
        w.write(0, f"Traffic Distribution:\t{spec['trafficDistribution']}\n")
    describe_events(w, events)
    return w.text()


# ---- generic describer --------------------------------------------------------------------------

def _rune_class(ch: str) -> int:
    if ch.islower():
        return 1
    if ch.isupper():
        return 2
    if ch.isdigit():
        return 3
    return 4


def camelcase_split(word: str) -> list[str]:
    """fatih/camelcase.Split: runs of one character class; an upper-case letter that starts a
    lower-case run moves to it (`PDFLoader` -> PDF, Loader)."""
    runs: list[list[str]] = []
    last = 0
    for ch in word:
        cls = _rune_class(ch)
        if runs and cls == last:
            runs[-1].append(ch)
        else:
            runs.append([ch])
        last = cls
    for i in range(len(runs) - 1):
        if runs[i] and runs[i][0].isupper() and runs[i + 1][0].islower():
            runs[i + 1].insert(0, runs[i].pop())
    return ["".join(r) for r in runs if r]


ACRONYMS = {"API", "URL", "UID", "OSB", "GUID"}


def smart_label(field: str) -> str:
    """smartLabelFor: `clusterIP` -> `Cluster IP`, `apiVersion` -> `API Version`."""
    if any(not (unicodedata.category(c).startswith("L") or c == "-") for c in field):
        return field
    parts = []
    for part in camelcase_split(field):
        if part == "_":
            continue
        parts.append(part.upper() if part.upper() in ACRONYMS else part[:1].upper() + part[1:])
    return " ".join(parts)


GENERIC_SKIP = {".metadata.managedFields", ".metadata.name", ".metadata.namespace",
                ".metadata.labels", ".metadata.annotations"}


def unstructured_content(w: PrefixWriter, level: int, content: dict, prefix: str = "") -> None:
    for field in sorted(content):
        value = content[field]
        path = f"{prefix}.{field}"
        if path in GENERIC_SKIP:
            continue
        if isinstance(value, dict):
            w.write(level, f"{smart_label(field)}:\n")
            unstructured_content(w, level + 1, value, path)
        elif isinstance(value, list):
            w.write(level, f"{smart_label(field)}:\n")
            for child in value:
                if isinstance(child, dict):
                    unstructured_content(w, level + 1, child, path)
                else:
                    w.write(level + 1, f"{go_sprint(child)}\n")
        else:
            w.write(level, f"{smart_label(field)}:\t{go_sprint(value)}\n")


def describe_generic(obj: dict, events: dict | None) -> str:
    meta = obj.get("metadata") or {}
    w = PrefixWriter()
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    w.write(0, f"Namespace:\t{meta.get('namespace', '')}\n")
    labels_multiline(w, "Labels", meta.get("labels"))
    annotations_multiline(w, "Annotations", meta.get("annotations"))
    unstructured_content(w, 0, obj)
    describe_events(w, events)
    return w.text()


# ---- the command ------------------------------------------------------------------------------

async def search_events(client, obj: dict, kind: str) -> dict | None:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    selector = ",".join([f"involvedObject.name={meta.get('name', '')}",
                         f"involvedObject.namespace={ns or ''}",
                         f"involvedObject.kind={kind}",
                         f"involvedObject.uid={meta.get('uid', '')}"])
    try:
        return await client.list(client.resource_path("", "v1", "events", ns),
                                 fieldSelector=selector, limit=500)
    except StatusError:
        return None


async def run(args, client) -> int:
    from nanokube.cli.common import resolve
    kind_arg, name = args.kind, args.name
    if "/" in kind_arg and name is None:
        kind_arg, name = kind_arg.split("/", 1)
    if not name:
        from nanokube.cli.errors import CLIError
        raise CLIError("you must specify the name of the resource to describe")
    res, kind = await resolve(client, kind_arg)
    ns = client.namespace if res.namespaced else None
    obj = await client.get(client.resource_path(res.group, res.version, res.plural, ns, name))
    events = await search_events(client, obj, obj.get("kind") or kind)
    if res.group == "" and res.plural == "services":
        slices = None
        try:
            found = await client.list(
                client.resource_path("discovery.k8s.io", "v1", "endpointslices", ns),
                labelSelector=f"kubernetes.io/service-name={name}")
            slices = found.get("items") or []
        except StatusError:
            pass
        text = describe_service(obj, slices, events)
    else:
        text = describe_generic(obj, events)
    sys.stdout.write(text)
    return 0


def main(args) -> int:
    from nanokube.cli.common import run_command
    return run_command(args, run)
