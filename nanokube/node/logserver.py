"""The kubelet's log endpoint, plain HTTP on <node-ip>:10250:

    GET /containerLogs/{namespace}/{pod}/{container}
        ?follow=true&tailLines=N&timestamps=true&previous=true&sinceSeconds=N&sinceTime=T
        &limitBytes=N

The API server proxies `pods/NAME/log` here. With follow, the answer streams until the
container instance ends (or is replaced by a restart). `pods/NAME/exec` goes to /exec
(execserver.py).
"""
from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from nanokube.node.execserver import ExecServer, api_server_addresses, pid_from_state
from nanokube.node.httpserver import HTTPServer, Request, Response, Router, StreamResponse
from nanokube.node.logs import LogParser, parse_since_time, render, select_lines, timestamp_of

FOLLOW_POLL = 0.1
PORT = 10250


@dataclass
class ContainerLog:
    """Where a container's logs are and whether its current instance still runs."""
    path: Path
    previous_path: Path
    running: Callable[[], bool]


# (namespace, pod, container) -> ContainerLog, or a str saying why there is none
Finder = Callable[[str, str, str], "ContainerLog | str"]


def _bool(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


def _int(value: str | None) -> int | None:
    if value in (None, ""):
        return None
    return int(value)


class LogServer:
    def __init__(self, finder: Finder, host: str, port: int = PORT,
                 more_routes: Callable[[Router], None] | None = None):
        self.finder = finder
        self.host = host
        self.port = port
        self.more_routes = more_routes      # other kubelet endpoints on this server
        self._server: HTTPServer | None = None

    def router(self) -> Router:
        router = Router()
        router.add_get("/containerLogs/{namespace}/{pod}/{container}", self.container_logs)
        router.add_get("/healthz", self.healthz)
        ExecServer(pid_from_state(self.finder), api_server_addresses(self.host)).add_routes(router)
        if self.more_routes is not None:
            self.more_routes(router)
        return router

    async def start(self) -> None:
        self._server = HTTPServer(self.router(), self.host, self.port)
        await self._server.start()
        self.port = self._server.addresses[0][1]      # the kernel's choice for port 0

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.close()

    async def healthz(self, request: Request) -> Response:
        return Response(text="ok")

    async def container_logs(self, request: Request) -> StreamResponse | Response:
        m, q = request.match_info, request.query
        found = self.finder(m["namespace"], m["pod"], m["container"])
        if isinstance(found, str):
            return Response(status=404, text=found + "\n")
        try:
            tail = _int(q.get("tailLines"))
            limit = _int(q.get("limitBytes"))
            since = None
            if q.get("sinceSeconds"):
                since = timestamp_of(time.time() - int(q["sinceSeconds"]))
            elif q.get("sinceTime"):
                since = parse_since_time(q["sinceTime"])
        except ValueError as e:
            return Response(status=400, text=f"{e}\n")
        previous = _bool(q.get("previous"))
        path = found.previous_path if previous else found.path
        if previous and not path.exists():
            return Response(status=400, text=f'previous terminated container '
                            f'"{m["container"]}" in pod "{m["pod"]}" not found\n')
        follow = _bool(q.get("follow")) and not previous
        timestamps = _bool(q.get("timestamps"))
        resp = StreamResponse(headers={"Content-Type": "text/plain"})
        await resp.prepare(request)
        writer = _LimitedWriter(resp, limit)
        parser = LogParser()
        try:
            with open(path, "rb") as f:
                inode = os.fstat(f.fileno()).st_ino
                lines = select_lines(parser.feed(f.read()), tail, since)
                await writer.write(b"".join(render(line, timestamps) for line in lines))
                while follow and not writer.full:
                    data = f.read()
                    if data:
                        lines = select_lines(parser.feed(data), None, since)
                        await writer.write(b"".join(render(l, timestamps) for l in lines))
                        continue
                    if not found.running() or _replaced(path, inode):
                        break
                    await asyncio.sleep(FOLLOW_POLL)
                # The kubelet shows a last line without newline as it is (`wget -qO-`).
                rest = select_lines(parser.flush(), None, since)
                await writer.write(b"".join(render(l, timestamps)[:-1] for l in rest))
        except FileNotFoundError:
            pass     # no output yet
        except (ConnectionResetError, asyncio.CancelledError):
            return resp
        await resp.write_eof()
        return resp


def _replaced(path: Path, inode: int) -> bool:
    """A restart moved the file aside: this instance's log is complete."""
    try:
        return path.stat().st_ino != inode
    except FileNotFoundError:
        return True


class _LimitedWriter:
    def __init__(self, resp: StreamResponse, limit: int | None):
        self.resp = resp
        self.left = limit

    @property
    def full(self) -> bool:
        return self.left is not None and self.left <= 0

    async def write(self, data: bytes) -> None:
        if not data or self.full:
            return
        if self.left is not None:
            data = data[:self.left]
            self.left -= len(data)
        await self.resp.write(data)
