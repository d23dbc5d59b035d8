"""A Job's `wget -qO-` prints without a final newline: the log keeps that last line."""
from nanokube.node.logs import LogParser


def test_a_last_line_without_newline_is_flushed():
    parser = LogParser()
    lines = parser.feed(b"2026-01-01T00:00:00.000000000Z stdout F first\n"
                        b"2026-01-01T00:00:01.000000000Z stdout P we\n"
                        b"2026-01-01T00:00:01.100000000Z stdout P b\n")
    assert [line.text for line in lines] == [b"first"]
    assert [line.text for line in parser.flush()] == [b"web"]
    assert parser.flush() == []
