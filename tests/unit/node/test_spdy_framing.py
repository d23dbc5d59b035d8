"""SPDY/3.1 frames and header blocks, as moby/spdystream reads and writes them."""
from __future__ import annotations

import asyncio
import struct
import zlib

import pytest

from nanokube.node import spdy


def test_dictionary_is_the_spdy3_one():
    d = spdy.DICTIONARY
    assert len(d) == 1423
    assert d.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert b"\x00\x00\x00\x08HTTP/1.1" in d and b"\x00\x00\x00\x06origin100101" in d
    assert d.endswith(b"charset=iso-8859-1,utf-,*,enq=0.")


def test_header_block_layout():
    block = spdy.encode_header_block({"Port": ["8080"], "streamtype": ["data"],
                                      "x": ["a", "b"]})
    assert block == (struct.pack(">I", 3) + b"\x00\x00\x00\x04port\x00\x00\x00\x048080"
                     + b"\x00\x00\x00\x0astreamtype\x00\x00\x00\x04data"
                     + b"\x00\x00\x00\x01x\x00\x00\x00\x03a\x00b")
    assert spdy.decode_header_block(block) == {"port": ["8080"], "streamtype": ["data"],
                                               "x": ["a", "b"]}


def test_header_compression_is_one_stream_per_direction():
    out, back = spdy.HeaderCompressor(), spdy.HeaderDecompressor()
    first = out.compress({"streamtype": ["error"], "port": ["80"], "requestid": ["0"]})
    second = out.compress({"streamtype": ["data"], "port": ["80"], "requestid": ["0"]})
    # a zlib header naming the dictionary (FDICT, with its Adler-32) opens the stream only
    assert first[0] == 0x78 and first[1] & 0x20
    assert first[2:6] == struct.pack(">I", zlib.adler32(spdy.DICTIONARY))
    assert first.endswith(b"\x00\x00\xff\xff")          # sync flush: each block stands
    assert len(second) < len(first)                    # the second reuses the first
    assert back.decompress(first)["streamtype"] == ["error"]
    assert back.decompress(second) == {"streamtype": ["data"], "port": ["80"],
                                       "requestid": ["0"]}
    # a fresh decompressor cannot read a block out of its stream
    with pytest.raises(spdy.ProtocolError):
        spdy.HeaderDecompressor().decompress(second)


def test_header_block_needs_the_dictionary():
    plain = zlib.compressobj(9)
    data = plain.compress(spdy.encode_header_block({"a": ["b"]})) + plain.flush(zlib.Z_SYNC_FLUSH)
    assert spdy.HeaderDecompressor().decompress(data) == {"a": ["b"]}   # no FDICT: fine
    with pytest.raises(spdy.ProtocolError):
        spdy.HeaderDecompressor().decompress(b"\x78\xf9garbage")


FRAMES = [
    spdy.DataFrame(1, b"hello"),
    spdy.DataFrame(3, b"", spdy.FLAG_FIN),
    spdy.SynStream(5, {"streamtype": ["data"], "port": ["8080"]}, spdy.FLAG_FIN, 0, 3),
    spdy.SynReply(5),
    spdy.SynReply(7, {"a": ["1"]}, spdy.FLAG_FIN),
    spdy.HeadersFrame(7, {"b": ["2"]}),
    spdy.RstStream(9, spdy.CANCEL),
    spdy.Ping(1),
    spdy.GoAway(11, 0),
    spdy.WindowUpdate(1, 65536),
    spdy.Settings([(0, 7, 65536), (1, 4, 100)]),
]


async def test_frames_round_trip():
    writer, reader = spdy.FrameWriter(), spdy.FrameReader()
    stream = asyncio.StreamReader()
    stream.feed_data(b"".join(writer.encode(f) for f in FRAMES))
    stream.feed_eof()
    got = [await reader.read(stream) for _ in FRAMES]
    assert got == FRAMES
    assert await reader.read(stream) is None           # a clean end between frames


def test_frame_headers_on_the_wire():
    w = spdy.FrameWriter()
    assert w.encode(spdy.DataFrame(1, b"hi", spdy.FLAG_FIN)) == \
        b"\x00\x00\x00\x01\x01\x00\x00\x02hi"
    assert w.encode(spdy.Ping(7)) == b"\x80\x03\x00\x06\x00\x00\x00\x04\x00\x00\x00\x07"
    assert w.encode(spdy.RstStream(3, spdy.CANCEL)) == \
        b"\x80\x03\x00\x03\x00\x00\x00\x08\x00\x00\x00\x03\x00\x00\x00\x05"
    syn = w.encode(spdy.SynStream(1, {}, priority=2))
    assert syn[:4] == b"\x80\x03\x00\x01" and syn[8:18] == \
        b"\x00\x00\x00\x01\x00\x00\x00\x00\x40\x00"


async def test_bad_input():
    reader = spdy.FrameReader()
    with pytest.raises(spdy.ProtocolError, match="version 2"):
        reader.parse(0x80020001, 0, b"")
    with pytest.raises(spdy.ProtocolError, match="stream 0"):
        reader.parse(0, 0, b"x")
    with pytest.raises(spdy.ProtocolError, match="too short"):
        reader.parse(0x80030006, 0, b"\x00")
    assert reader.parse(0x8003000a, 0, b"credential") == spdy.UnknownControl(10)
    truncated = asyncio.StreamReader()
    truncated.feed_data(b"\x00\x00\x00\x01\x00\x00\x00\x09abc")
    truncated.feed_eof()
    with pytest.raises(spdy.ProtocolError, match="inside a frame"):
        await reader.read(truncated)
