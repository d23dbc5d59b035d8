"""Reading container logs in the CRI format the launcher writes:

    2026-01-01T00:00:00.123456789Z stdout F a whole line
    2026-01-01T00:00:00.123456789Z stderr P the start of a line that goes on in the next record

as the kubelet's ReadLogs does: partial records are joined, `tailLines`, `sinceTime`,
`limitBytes` and `timestamps` applied.
"""
from __future__ import annotations

import datetime
import time
from dataclasses import dataclass


@dataclass
class LogLine:
    timestamp: str          # RFC 3339 with 9 fraction digits, as written
    stream: str
    text: bytes             # without the newline


class LogParser:
    """Turns the bytes of a log file, fed in pieces, into whole lines."""

    def __init__(self) -> None:
        self._buffer = b""                       # an unfinished record
        self._pending: dict[str, LogLine] = {}   # a line still being assembled, per stream

    def feed(self, data: bytes) -> list[LogLine]:
        self._buffer += data
        *records, self._buffer = self._buffer.split(b"\n")
        lines = []
        for record in records:
            parts = record.split(b" ", 3)
            if len(parts) < 3:
                continue
            ts, stream, tag = parts[0].decode(errors="replace"), parts[1].decode(), parts[2]
            text = parts[3] if len(parts) > 3 else b""
            if stream in self._pending:
                self._pending[stream].text += text
            else:
                self._pending[stream] = LogLine(ts, stream, text)
            if tag == b"F":
                lines.append(self._pending.pop(stream))
        return lines

    def flush(self) -> list[LogLine]:
        """Lines left unfinished at the end of the log (no newline was written after them)."""
        lines = list(self._pending.values())
        self._pending.clear()
        return lines


def parse_records(data: bytes) -> list[LogLine]:
    return LogParser().feed(data)


def rfc3339_nano_out(ts: str) -> str:
    """Go's RFC3339Nano (what `kubectl logs --timestamps` shows) drops trailing zeros."""
    if "." not in ts:
        return ts
    head, frac = ts.rstrip("Z").split(".", 1)
    frac = frac.rstrip("0")
    return f"{head}.{frac}Z" if frac else f"{head}Z"


def timestamp_of(epoch: float) -> str:
    secs = int(epoch)
    nanos = int((epoch - secs) * 1e9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{nanos:09d}Z"


def parse_since_time(value: str) -> str:
    """An RFC 3339 time in the fixed 9-digit form, comparable with the records as text."""
    dt = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return timestamp_of(dt.timestamp())


def render(line: LogLine, timestamps: bool) -> bytes:
    if timestamps:
        return rfc3339_nano_out(line.timestamp).encode() + b" " + line.text + b"\n"
    return line.text + b"\n"


def select_lines(lines: list[LogLine], tail_lines: int | None = None,
                 since: str | None = None) -> list[LogLine]:
    if since:
        lines = [line for line in lines if line.timestamp >= since]
    if tail_lines is not None:
        lines = lines[-tail_lines:] if tail_lines > 0 else []
    return lines
