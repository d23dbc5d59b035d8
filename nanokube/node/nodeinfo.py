"""What the agent says about its Node: labels, addresses, capacity, nodeInfo, conditions;
and which routes to the other nodes' pod CIDRs the Node objects call for."""
from __future__ import annotations

import datetime
import os
import platform
import shutil
from pathlib import Path

KUBELET_VERSION = "v1.32.0-nanokube"
RUNTIME_VERSION = "nanokube://0.1"
MAX_PODS = 110


def micro_time() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def architecture() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)


def _os_image() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def _memory_kib() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def read_text(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def node_conditions(now: str, previous: list[dict] | None = None) -> list[dict]:
    prev = {c.get("type"): c for c in previous or []}
    wanted = [
        ("MemoryPressure", "False", "KubeletHasSufficientMemory",
         "kubelet has sufficient memory available"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
    ]
    out = []
    for ctype, status, reason, message in wanted:
        before = prev.get(ctype) or {}
        since = before.get("lastTransitionTime") if before.get("status") == status else None
        out.append({"type": ctype, "status": status, "lastHeartbeatTime": now,
                    "lastTransitionTime": since or now, "reason": reason, "message": message})
    return out


def node_status(node_ip: str, node_name: str, now: str,
                previous_conditions: list[dict] | None = None) -> dict:
    capacity = {"cpu": str(os.cpu_count() or 1), "memory": f"{_memory_kib()}Ki",
                "pods": str(MAX_PODS), "ephemeral-storage": "0"}
    usage = shutil.disk_usage("/")
    capacity["ephemeral-storage"] = f"{usage.total // 1024}Ki"
    return {
        "capacity": capacity,
        "allocatable": dict(capacity),
        "conditions": node_conditions(now, previous_conditions),
        "addresses": [{"type": "InternalIP", "address": node_ip},
                      {"type": "Hostname", "address": node_name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "machineID": read_text("/etc/machine-id"),
            "systemUUID": read_text("/sys/class/dmi/id/product_uuid"),
            "bootID": read_text("/proc/sys/kernel/random/boot_id"),
            "kernelVersion": platform.release(),
            "osImage": _os_image(),
            "containerRuntimeVersion": RUNTIME_VERSION,
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": architecture(),
        },
    }


def node_labels(node_name: str) -> dict[str, str]:
    arch = architecture()
    return {"kubernetes.io/hostname": node_name, "kubernetes.io/os": "linux",
            "kubernetes.io/arch": arch, "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": arch}


def internal_ip(node: dict) -> str:
    for addr in (node.get("status") or {}).get("addresses") or []:
        if addr.get("type") == "InternalIP":
            return addr.get("address") or ""
    return ""


def routes_to_others(nodes: list[dict], self_name: str) -> dict[str, str]:
    """{podCIDR: node IP} of every other node that has both (host-gw routing)."""
    routes = {}
    for node in nodes:
        if node["metadata"]["name"] == self_name:
            continue
        cidr, ip = (node.get("spec") or {}).get("podCIDR"), internal_ip(node)
        if cidr and ip:
            routes[cidr] = ip
    return routes


def node_ready(node: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])
