"""CRI log records, the launcher's log pump format, and the /containerLogs endpoint."""
import asyncio
import os

import aiohttp

from nanokube.node.launcher import pump
from nanokube.node.logs import LogParser, parse_records, rfc3339_nano_out, select_lines
from nanokube.node.logserver import ContainerLog, LogServer

RECORDS = (b"2026-01-01T00:00:01.100000000Z stdout F first\n"
           b"2026-01-01T00:00:02.000000000Z stderr P par\n"
           b"2026-01-01T00:00:02.500000000Z stdout F second\n"
           b"2026-01-01T00:00:03.000000000Z stderr F tial\n"
           b"2026-01-01T00:00:04.000000000Z stdout F \n")


def test_partial_records_are_joined():
    lines = parse_records(RECORDS)
    assert [(l.stream, l.text) for l in lines] == [
        ("stdout", b"first"), ("stdout", b"second"), ("stderr", b"partial"), ("stdout", b"")]
    assert lines[2].timestamp == "2026-01-01T00:00:02.000000000Z"


def test_parser_fed_in_pieces():
    parser = LogParser()
    out = []
    for i in range(0, len(RECORDS), 7):
        out += parser.feed(RECORDS[i:i + 7])
    assert [l.text for l in out] == [b"first", b"second", b"partial", b""]


def test_tail_since_and_timestamp_format():
    lines = parse_records(RECORDS)
    assert [l.text for l in select_lines(lines, tail_lines=2)] == [b"partial", b""]
    assert select_lines(lines, tail_lines=0) == []
    # a joined line has the time of its first record
    assert [l.text for l in select_lines(lines, since="2026-01-01T00:00:02.100000000Z")] == \
        [b"second", b""]
    assert rfc3339_nano_out("2026-01-01T00:00:01.100000000Z") == "2026-01-01T00:00:01.1Z"
    assert rfc3339_nano_out("2026-01-01T00:00:01.000000000Z") == "2026-01-01T00:00:01Z"


def test_pump_writes_cri_records(tmp_path):
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    os.write(out_w, b"hello\nwor")
    os.write(err_w, b"oops\n")
    os.close(out_w)
    os.close(err_w)
    log = tmp_path / "c.log"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    pump({out_r: b"stdout", err_r: b"stderr"}, fd)
    os.close(fd)
    lines = parse_records(log.read_bytes())
    assert sorted((l.stream, l.text) for l in lines) == [("stderr", b"oops"),
                                                         ("stdout", b"hello")]
    assert b" stdout P wor\n" in log.read_bytes()


async def test_container_logs_endpoint(tmp_path):
    log = tmp_path / "c.log"
    log.write_bytes(RECORDS)
    running = {"yes": True}
    found = ContainerLog(log, tmp_path / "c.log.previous", lambda: running["yes"])

    def finder(ns, pod, container):
        return found if (ns, pod, container) == ("default", "p", "c") else "pod not found"

    server = LogServer(finder, "127.0.0.1", 0)
    await server.start()
    async with aiohttp.ClientSession(f"http://127.0.0.1:{server.port}") as client:
        resp = await client.get("/containerLogs/default/p/c")
        assert resp.status == 200
        assert await resp.text() == "first\nsecond\npartial\n\n"
        resp = await client.get("/containerLogs/default/p/c?timestamps=true&tailLines=1")
        assert await resp.text() == "2026-01-01T00:00:04Z \n"
        resp = await client.get("/containerLogs/default/p/c?limitBytes=3")
        assert await resp.text() == "fir"
        resp = await client.get("/containerLogs/default/p/c?previous=true")
        assert resp.status == 400
        (tmp_path / "c.log.previous").write_bytes(b"2026-01-01T00:00:00.0Z stdout F old\n")
        resp = await client.get("/containerLogs/default/p/c?previous=true")
        assert await resp.text() == "old\n"
        resp = await client.get("/containerLogs/default/q/c")
        assert resp.status == 404

        # follow: new records stream until the container stops running
        resp = await client.get("/containerLogs/default/p/c?follow=true&tailLines=0")
        with open(log, "ab") as f:
            f.write(b"2026-01-01T00:00:05.000000000Z stdout F later\n")
        assert await asyncio.wait_for(resp.content.readline(), 3) == b"later\n"
        running["yes"] = False
        assert await asyncio.wait_for(resp.text(), 3) == ""
    await server.stop()
