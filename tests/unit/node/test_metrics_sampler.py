"""The agent's usage sampler: /proc parsing, process trees, CPU rates and the summary it serves,
from fake /proc trees."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from nanokube.node import metrics as m
from nanokube.node.httpserver import Query

TICK_NS = m.NS_PER_TICK


def stat_line(pid: int, ppid: int, ticks: tuple[int, int, int, int], rss: int,
              start: int = 100, state: str = "S", comm: str = "sh") -> str:
    utime, stime, cutime, cstime = ticks
    # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
    # utime stime cutime cstime priority nice threads itrealvalue starttime vsize rss ...
    return (f"{pid} ({comm}) {state} {ppid} {pid} {pid} 0 -1 0 0 0 0 0 "
            f"{utime} {stime} {cutime} {cstime} 20 0 1 0 {start} 1000 {rss} 0 0\n")


def write_proc(root: Path, procs: list[str], cpu_busy: int, mem_avail_kib: int) -> None:
    for line in procs:
        pid = line.split()[0]
        (root / pid).mkdir(exist_ok=True)
        (root / pid / "stat").write_text(line)
    (root / "stat").write_text(f"cpu  {cpu_busy} 0 0 5000 7 0 0 0 0 0\ncpu0 1 0 0 0 0 0 0 0\n")
    (root / "meminfo").write_text(f"MemTotal:  1000000 kB\nMemFree: 1 kB\n"
                                  f"MemAvailable:  {mem_avail_kib} kB\n")


def test_parse_stat_with_spaces_in_the_name_and_zombies():
    got = m.parse_stat(7, stat_line(7, 1, (1, 2, 3, 4), 50, start=9, comm="a ) b"))
    assert got == m.ProcStat(7, 1, 9, 10, 50)
    assert m.parse_stat(8, stat_line(8, 1, (1, 2, 3, 4), 5, state="Z")) is None
    assert m.parse_stat(9, "9 (x) S") is None


def test_tree_counts_children_and_not_strangers():
    procs = {p.pid: p for p in [
        m.ProcStat(10, 1, 100, 5, 10),       # the container
        m.ProcStat(11, 10, 101, 7, 20),      # its child
        m.ProcStat(12, 11, 102, 1, 30),      # a grandchild
        m.ProcStat(13, 1, 103, 1000, 999),   # someone else
    ]}
    sample = m.tree_sample(10, 100, procs, m.children_index(procs), 1.0, 2.0)
    assert sample.cpu_ns == 13 * TICK_NS
    assert sample.memory_bytes == 60 * m.PAGE_SIZE
    # gone, or the pid now names another process
    assert m.tree_sample(14, None, procs, {}, 1.0, 2.0) is None
    assert m.tree_sample(10, 99, procs, {}, 1.0, 2.0) is None


def test_rate_over_the_window():
    older = m.Sample(0.0, 10.0, 1_000_000_000, 0)
    newer = m.Sample(15.0, 25.0, 1_000_000_000 + 3_000_000_000, 0)   # 3 s of CPU in 15 s
    assert m.usage_nano_cores(older, newer) == 200_000_000
    assert m.usage_nano_cores(None, newer) is None
    assert m.usage_nano_cores(newer, newer) is None
    # a child that left the tree makes the counter go down: no use, never negative
    assert m.usage_nano_cores(newer, m.Sample(30.0, 40.0, 0, 0)) == 0


def test_node_sample_from_proc_stat_and_meminfo():
    stat = "cpu  100 20 30 9999 50 4 6 8 0 0\n"
    meminfo = "MemTotal: 2048 kB\nMemAvailable: 512 kB\n"
    s = m.node_sample(stat, meminfo, 1.0, 1.0)
    assert s.cpu_ns == (100 + 20 + 30 + 4 + 6 + 8) * TICK_NS      # not idle, not iowait
    assert s.memory_bytes == (2048 - 512) * 1024


def test_sampler_keeps_two_samples_and_forgets_ended_containers(tmp_path, monkeypatch):
    clock = iter([0.0, 15.0, 30.0, 45.0])
    monkeypatch.setattr(m.time, "monotonic", lambda: next(clock))
    refs = [m.ContainerRef("default", "web", "uid-1", "main", 10, 100, "2026-01-01T00:00:00Z")]
    sampler = m.Sampler("node-1", lambda: refs, None, proc=str(tmp_path))
    write_proc(tmp_path, [stat_line(10, 1, (0, 0, 0, 0), 100),
                          stat_line(11, 10, (0, 0, 0, 0), 28, start=150)], 0, 600000)
    sampler.sample_once()
    first = sampler.summary()
    assert "window" not in first
    assert "usageNanoCores" not in first["pods"][0]["containers"][0]["cpu"]
    # 15 s later: the shell used 3 s, its child 1.5 s (in ticks)
    ticks = m.CLOCK_TICKS
    write_proc(tmp_path, [stat_line(10, 1, (3 * ticks, 0, 0, 0), 100),
                          stat_line(11, 10, (ticks, ticks // 2, 0, 0), 28, start=150)],
               15 * ticks, 500000)
    sampler.sample_once()
    summary = sampler.summary()
    assert summary["window"] == 15.0
    assert summary["node"]["cpu"]["usageNanoCores"] == 1_000_000_000
    assert summary["node"]["memory"]["workingSetBytes"] == 500000 * 1024
    pod = summary["pods"][0]
    assert pod["podRef"] == {"name": "web", "namespace": "default", "uid": "uid-1"}
    container = pod["containers"][0]
    assert container["name"] == "main" and container["startTime"] == "2026-01-01T00:00:00Z"
    assert container["cpu"]["usageNanoCores"] == 300_000_000
    assert container["memory"]["workingSetBytes"] == 128 * m.PAGE_SIZE
    # only two samples are kept, and a container that ended is forgotten
    series = sampler.series[("uid-1", "main", 10, 100)][1]
    assert (series.older.monotonic, series.newer.monotonic) == (0.0, 15.0)
    (tmp_path / "10" / "stat").unlink()
    sampler.sample_once()
    assert sampler.series == {} and sampler.summary()["pods"] == []


class FakeRequest:
    def __init__(self, remote: str):
        self.remote = remote
        self.query = Query([])


def test_summary_only_for_the_api_servers(tmp_path):
    write_proc(tmp_path, [], 0, 1000)
    sampler = m.Sampler("node-1", lambda: [], frozenset({"10.0.0.1"}), proc=str(tmp_path))
    sampler.sample_once()
    denied = asyncio.run(sampler.stats_summary(FakeRequest("10.0.0.9")))
    assert denied.status == 403
    allowed = asyncio.run(sampler.stats_summary(FakeRequest("10.0.0.1")))
    assert allowed.status == 200 and allowed.headers["Content-Type"] == "application/json"
    assert b'"nodeName":"node-1"' in allowed.body


def test_sampling_this_machine_is_cheap():
    """One round over the real /proc: well under the resolution (a loose bound: CI is busy)."""
    import os
    import time
    refs = [m.ContainerRef("default", "self", "u", "c", os.getpid(), None, "")]
    sampler = m.Sampler("n", lambda: refs, None)
    t0 = time.process_time()
    for _ in range(5):
        sampler.sample_once()
    assert (time.process_time() - t0) / 5 < 0.1
    assert sampler.summary()["pods"][0]["containers"][0]["memory"]["workingSetBytes"] > 0


@pytest.mark.parametrize("t,text", [(0, "1970-01-01T00:00:00Z"),
                                    (86400.7, "1970-01-02T00:00:00Z")])
def test_rfc3339(t, text):
    assert m.rfc3339(t) == text
