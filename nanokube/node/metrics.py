"""The kubelet's resource usage summary, served with the logs on <node-ip>:10250:

    GET /stats/summary      (only from the API server addresses, like exec and port-forward)

What it reports, and why this way. `kubectl top` shows CPU as a rate (cores) and memory as the
working set, metrics.k8s.io's NodeMetrics and PodMetrics (nanokube/api/metrics.py). A rate
needs two samples of a cumulative counter; metrics-server scrapes the kubelets every
--metric-resolution (15 s) and keeps the last two scrapes. Here the agent does the keeping:
every resolution it samples its containers and the node, holds the last two samples of each
(bounded: two small records per container, dropped when the container goes) and serves the
rate between them, in the shape of the kubelet's Summary API (stats/v1alpha1: node and pods,
cpu.usageNanoCores and usageCoreNanoSeconds, memory.workingSetBytes, which metrics-server
itself read before it moved to /metrics/resource). So the API server needs no scrape loop and
no state of its own: it asks the agents when asked, and any of several API servers answers
the same. One addition to the Summary API: "window", the time between the two samples, which
metrics.k8s.io reports with every item (all rates of one answer share it: each round samples
everything at once).

What is counted. A container is a plain process (runtime.py), perhaps a shell with children,
in no cgroup of its own; its usage is that of its process tree (parent links from
/proc/PID/stat): CPU is utime+stime+cutime+cstime summed over the live processes of the tree
(a child's time moves into its parent's cutime/cstime when it is reaped, so the sum only grows
while the tree stays whole), memory the sum of their resident sets (field 24 of the same
stat line, so one read a process; shared pages count in each, as a cgroup charges them once:
a small overestimate we accept). A restarted container is a new pid and start time: its
series starts anew. The node is this machine, as a kubelet in a VM reports its host: CPU from
/proc/stat (all but idle and iowait), memory working set as MemTotal - MemAvailable from
/proc/meminfo (the kubelet's root cgroup working set, usage minus inactive file pages, is
close to that).

Cost. One round reads /proc/*/stat once for every process of the machine (about a
millisecond for a hundred processes) in the event loop: no thread, no new imports.
"""
from __future__ import annotations

import asyncio
import datetime
import json
import os
import time
from dataclasses import dataclass
from typing import Callable, Iterable

from nanokube.node.httpserver import Request, Response, Router

DEFAULT_RESOLUTION = 15.0               # metrics-server's --metric-resolution
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
NS_PER_TICK = 1_000_000_000 // CLOCK_TICKS


@dataclass(frozen=True)
class ProcStat:
    pid: int
    ppid: int
    start_ticks: int
    cpu_ticks: int          # utime + stime + cutime + cstime
    rss_pages: int


def parse_stat(pid: int, text: str) -> ProcStat | None:
    """One /proc/PID/stat line (the command name, in parentheses, may hold spaces); None for a
    zombie, whose time is about to move to its parent."""
    fields = text[text.rfind(")") + 2:].split()
    try:
        if fields[0] == "Z":
            return None
        cpu = sum(int(fields[i]) for i in (11, 12, 13, 14))
        return ProcStat(pid, int(fields[1]), int(fields[19]), cpu, int(fields[21]))
    except (IndexError, ValueError):
        return None


def read_processes(proc: str = "/proc") -> dict[int, ProcStat]:
    out = {}
    for name in os.listdir(proc):
        if not name.isdigit():
            continue
        try:
            with open(f"{proc}/{name}/stat") as f:
                stat = parse_stat(int(name), f.read())
        except OSError:          # it ended meanwhile
            continue
        if stat is not None:
            out[stat.pid] = stat
    return out


def children_index(procs: dict[int, ProcStat]) -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for p in procs.values():
        children.setdefault(p.ppid, []).append(p.pid)
    return children


@dataclass(frozen=True)
class Sample:
    """Cumulative CPU and current memory at one moment: wall time for the API's timestamps,
    monotonic time for the rate (a clock step must not make one up)."""
    time: float
    monotonic: float
    cpu_ns: int
    memory_bytes: int


def tree_sample(root: int, start_ticks: int | None, procs: dict[int, ProcStat],
                children: dict[int, list[int]], now: float, mono: float) -> Sample | None:
    """The container's process tree; None when its process is gone (or its pid reused)."""
    top = procs.get(root)
    if top is None or (start_ticks is not None and top.start_ticks != start_ticks):
        return None
    cpu = rss = 0
    stack, seen = [root], set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        p = procs[pid]
        cpu += p.cpu_ticks
        rss += p.rss_pages
        stack.extend(children.get(pid, ()))
    return Sample(now, mono, cpu * NS_PER_TICK, rss * PAGE_SIZE)


def node_sample(stat: str, meminfo: str, now: float, mono: float) -> Sample:
    """The machine's CPU time (the "cpu" line of /proc/stat without idle and iowait) and its
    working set, MemTotal - MemAvailable."""
    cpu = 0
    for line in stat.splitlines():
        if line.startswith("cpu "):
            values = [int(v) for v in line.split()[1:]]
            # user nice system idle iowait irq softirq steal (guest is inside user already)
            cpu = sum(values[:8]) - values[3] - values[4]
            break
    mem = {}
    for line in meminfo.splitlines():
        key, _, rest = line.partition(":")
        if key in ("MemTotal", "MemAvailable"):
            mem[key] = int(rest.split()[0]) * 1024
    working_set = mem.get("MemTotal", 0) - mem.get("MemAvailable", mem.get("MemTotal", 0))
    return Sample(now, mono, cpu * NS_PER_TICK, working_set)


def usage_nano_cores(older: Sample | None, newer: Sample) -> int | None:
    """The CPU rate between two samples, in nanocores; None without two samples. A counter
    that went down (a child left the tree unreaped) reads as no use, not a negative one."""
    if older is None:
        return None
    elapsed = newer.monotonic - older.monotonic
    if elapsed <= 0:
        return None
    return max(0, int((newer.cpu_ns - older.cpu_ns) / elapsed))


def rfc3339(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc) \
        .strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ContainerRef:
    """A running container instance of this node, as the pod workers know it."""
    namespace: str
    pod: str
    uid: str
    name: str
    pid: int
    start_ticks: int | None
    started_at: str


class Series:
    """The last two samples, no more."""
    __slots__ = ("older", "newer")

    def __init__(self, newer: Sample):
        self.older: Sample | None = None
        self.newer = newer

    def add(self, sample: Sample) -> None:
        self.older, self.newer = self.newer, sample

    def stats(self) -> dict:
        cpu = {"time": rfc3339(self.newer.time), "usageCoreNanoSeconds": self.newer.cpu_ns}
        rate = usage_nano_cores(self.older, self.newer)
        if rate is not None:
            cpu["usageNanoCores"] = rate
        return {"cpu": cpu, "memory": {"time": rfc3339(self.newer.time),
                                       "workingSetBytes": self.newer.memory_bytes}}


class Sampler:
    def __init__(self, node_name: str, containers: Callable[[], Iterable[ContainerRef]],
                 allowed_peers: frozenset[str] | None, resolution: float = DEFAULT_RESOLUTION,
                 proc: str = "/proc"):
        self.node_name = node_name
        self.containers = containers
        self.allowed_peers = allowed_peers      # None: anyone (tests)
        self.resolution = resolution
        self.proc = proc
        self.node: Series | None = None
        self.series: dict[tuple, tuple[ContainerRef, Series]] = {}

    def sample_once(self) -> None:
        now, mono = time.time(), time.monotonic()
        procs = read_processes(self.proc)
        children = children_index(procs)
        with open(f"{self.proc}/stat") as f, open(f"{self.proc}/meminfo") as g:
            node = node_sample(f.read(), g.read(), now, mono)
        if self.node is None:
            self.node = Series(node)
        else:
            self.node.add(node)
        current: dict[tuple, tuple[ContainerRef, Series]] = {}
        for ref in self.containers():
            sample = tree_sample(ref.pid, ref.start_ticks, procs, children, now, mono)
            if sample is None:
                continue
            key = (ref.uid, ref.name, ref.pid, ref.start_ticks)
            known = self.series.get(key)
            if known is None:
                current[key] = (ref, Series(sample))
            else:
                known[1].add(sample)
                current[key] = (ref, known[1])
        self.series = current                   # containers that went are forgotten

    async def run(self) -> None:
        while True:
            try:
                self.sample_once()
            except OSError:
                pass               # /proc unreadable for a moment: the next round
            await asyncio.sleep(self.resolution)

    def summary(self) -> dict:
        """The Summary API's node and pods (only what metrics.k8s.io needs), plus "window"."""
        node = {"nodeName": self.node_name}
        window = None
        if self.node is not None:
            node.update(self.node.stats())
            if self.node.older is not None:
                window = self.node.newer.monotonic - self.node.older.monotonic
        pods: dict[str, dict] = {}
        for ref, series in self.series.values():
            pod = pods.setdefault(ref.uid, {
                "podRef": {"name": ref.pod, "namespace": ref.namespace, "uid": ref.uid},
                "containers": []})
            pod["containers"].append({"name": ref.name, "startTime": ref.started_at,
                                      **series.stats()})
        out = {"node": node, "pods": list(pods.values())}
        if window is not None:
            out["window"] = round(window, 3)
        return out

    def add_routes(self, router: Router) -> None:
        router.add_get("/stats/summary", self.stats_summary)

    async def stats_summary(self, request: Request) -> Response:
        if self.allowed_peers is not None and request.remote not in self.allowed_peers:
            return Response(status=403, text="Forbidden\n")
        return Response(body=json.dumps(self.summary(), separators=(",", ":")).encode(),
                        headers={"Content-Type": "application/json"})
