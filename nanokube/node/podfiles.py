"""The files a pod sees over its /etc: resolv.conf and hosts, as the kubelet writes them."""
from __future__ import annotations

HOSTS_HEADER = """# Kubernetes-managed hosts file.
127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
fe00::0\tip6-localnet
fe00::0\tip6-mcastprefix
fe00::1\tip6-allnodes
fe00::2\tip6-allrouters
"""


def pod_hostname(pod: dict) -> str:
    """spec.hostname when set, else the pod's name (truncated to a DNS label, as the kubelet
    does)."""
    spec = pod.get("spec") or {}
    name = spec.get("hostname") or pod["metadata"]["name"]
    return name[:63].rstrip("-.")


def pod_fqdn(pod: dict, cluster_domain: str) -> str | None:
    """hostname.subdomain.namespace.svc.domain when the pod has a subdomain."""
    spec = pod.get("spec") or {}
    if not spec.get("subdomain"):
        return None
    return (f"{pod_hostname(pod)}.{spec['subdomain']}.{pod['metadata']['namespace']}"
            f".svc.{cluster_domain}")


def hosts_file(pod: dict, pod_ip: str, cluster_domain: str) -> str:
    """managedHostsFileContent: localhost, the pod's own IP and name, then hostAliases."""
    text = HOSTS_HEADER
    if pod_ip:
        fqdn = pod_fqdn(pod, cluster_domain)
        names = f"{fqdn}\t{pod_hostname(pod)}" if fqdn else pod_hostname(pod)
        text += f"{pod_ip}\t{names}\n"
    aliases = (pod.get("spec") or {}).get("hostAliases") or []
    if aliases:
        text += "\n# Entries added by HostAliases.\n"
        for alias in aliases:
            text += f"{alias.get('ip', '')}\t{chr(9).join(alias.get('hostnames') or [])}\n"
    return text


def _parse_resolv(text: str) -> tuple[list[str], list[str], list[str]]:
    nameservers, searches, options = [], [], []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if fields[0] == "nameserver" and len(fields) > 1:
            nameservers.append(fields[1])
        elif fields[0] in ("search", "domain"):
            searches = fields[1:]
        elif fields[0] == "options":
            options.extend(fields[1:])
    return nameservers, searches, options


def _merge_options(options: list[str], extra: list[dict]) -> list[str]:
    """dnsConfig.options override options of the same name."""
    merged: dict[str, str] = {}
    for opt in options:
        name, _, value = opt.partition(":")
        merged[name] = opt
    for opt in extra:
        name = opt.get("name", "")
        merged[name] = f"{name}:{opt['value']}" if opt.get("value") is not None else name
    return list(merged.values())


def resolv_conf(pod: dict, cluster_dns: str, cluster_domain: str, host_resolv: str = "") -> str:
    """The pod's resolv.conf for its dnsPolicy (ClusterFirst, Default, None) and dnsConfig."""
    spec = pod.get("spec") or {}
    namespace = pod["metadata"]["namespace"]
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    if policy == "ClusterFirstWithHostNet" or (policy == "ClusterFirst"
                                               and not spec.get("hostNetwork")):
        nameservers = [cluster_dns]
        searches = [f"{namespace}.svc.{cluster_domain}", f"svc.{cluster_domain}", cluster_domain]
        options = ["ndots:5"]
    elif policy == "None":
        nameservers, searches, options = [], [], []
    else:   # Default, or ClusterFirst with hostNetwork: the node's own resolver
        nameservers, searches, options = _parse_resolv(host_resolv)
    dns_config = spec.get("dnsConfig") or {}
    nameservers = nameservers + [n for n in dns_config.get("nameservers") or []
                                 if n not in nameservers]
    searches = searches + [s for s in dns_config.get("searches") or [] if s not in searches]
    options = _merge_options(options, dns_config.get("options") or [])
    lines = [f"nameserver {n}" for n in nameservers[:3]]
    if searches:
        lines.append("search " + " ".join(searches[:32]))
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"
