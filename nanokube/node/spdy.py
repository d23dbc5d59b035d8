"""SPDY/3.1 framing, as Go's moby/spdystream speaks it (the stream multiplexer under kubectl's
port-forward and the kubelet's streaming server).

A frame is an 8-byte header and a payload:

    data:     0 | stream id (31 bits)         flags (8) | length (24)   payload
    control:  1 | version (15) | type (16)    flags (8) | length (24)   payload

Header blocks (SYN_STREAM, SYN_REPLY, HEADERS) are a count and length-prefixed lowercase
name/value pairs (several values of one name joined by NUL), compressed with zlib primed with
the SPDY/3 dictionary; each direction of a connection is ONE zlib stream, flushed (sync flush)
at the end of every block, so the compressor and decompressor live as long as the connection.

Flow control: SPDY/3 defines WINDOW_UPDATE, but spdystream neither sends nor honours it (it
ignores WINDOW_UPDATE and SETTINGS), so between two spdystream peers the only backpressure is
TCP's: a receiver that stops reading the connection stops the sender. We do the same.
"""
from __future__ import annotations

import asyncio
import struct
import zlib
from dataclasses import dataclass, field

VERSION = 3

# control frame types
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS = 1, 2, 3, 4
PING, GOAWAY, HEADERS, WINDOW_UPDATE = 6, 7, 8, 9

FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02

# RST_STREAM status codes
PROTOCOL_ERROR, INVALID_STREAM, REFUSED_STREAM, UNSUPPORTED_VERSION, CANCEL = 1, 2, 3, 4, 5
INTERNAL_ERROR, FLOW_CONTROL_ERROR, STREAM_IN_USE, STREAM_ALREADY_CLOSED = 6, 7, 8, 9

MAX_FRAME_LENGTH = (1 << 24) - 1
MAX_HEADER_BLOCK = 1 << 20          # a decompressed header block (a zip bomb stops here)


def _dictionary() -> bytes:
    """The SPDY/3 header dictionary (draft 3, section 2.6.10.1): length-prefixed words, then
    a run of status codes, reason phrases, dates and media types without prefixes."""
    words = ("options head post put delete trace accept accept-charset accept-encoding "
             "accept-language accept-ranges age allow authorization cache-control connection "
             "content-base content-encoding content-language content-length content-location "
             "content-md5 content-range content-type date etag expect expires from host "
             "if-match if-modified-since if-none-match if-range if-unmodified-since "
             "last-modified location max-forwards pragma proxy-authenticate "
             "proxy-authorization range referer retry-after server te trailer "
             "transfer-encoding upgrade user-agent vary via warning www-authenticate method "
             "get status").split() + ["200 OK", "version", "HTTP/1.1", "url", "public",
                                     "set-cookie", "keep-alive", "origin"]
    prefixed = b"".join(struct.pack(">I", len(w)) + w.encode() for w in words)
    tail = ("100101201202205206300302303304305306307402405406407408409410411412413414415416"
            "417502504505203 Non-Authoritative Information204 No Content301 Moved "
            "Permanently400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 "
            "Internal Server Error501 Not Implemented503 Service UnavailableJan Feb Mar Apr "
            "May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, "
            "GMTchunked,text/html,image/png,image/jpg,image/gif,application/xml,"
            "application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=gzip,"
            "deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.")
    return prefixed + tail.encode()


DICTIONARY = _dictionary()


class ProtocolError(Exception):
    """The peer sent something that is not SPDY/3: the connection ends (GOAWAY)."""


# ---- header blocks ---------------------------------------------------------------------------

Headers = dict[str, list[str]]


def encode_header_block(headers: Headers) -> bytes:
    out = [struct.pack(">I", len(headers))]
    for name, values in headers.items():
        n, v = name.lower().encode(), "\0".join(values).encode()
        out.append(struct.pack(">I", len(n)) + n + struct.pack(">I", len(v)) + v)
    return b"".join(out)


def decode_header_block(block: bytes) -> Headers:
    headers: Headers = {}
    try:
        (count,), pos = struct.unpack_from(">I", block), 4
        for _ in range(count):
            (n,) = struct.unpack_from(">I", block, pos)
            name = block[pos + 4:pos + 4 + n].decode()
            pos += 4 + n
            (n,) = struct.unpack_from(">I", block, pos)
            value = block[pos + 4:pos + 4 + n].decode()
            pos += 4 + n
            if pos > len(block):
                raise ProtocolError("header block truncated")
            headers.setdefault(name.lower(), []).extend(value.split("\0"))
    except (struct.error, UnicodeDecodeError) as e:
        raise ProtocolError(f"malformed header block: {e}") from None
    return headers


class HeaderCompressor:
    """One direction's zlib stream; compress() returns one block, sync-flushed."""

    def __init__(self) -> None:
        self._z = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY,
                                   zdict=DICTIONARY)

    def compress(self, headers: Headers) -> bytes:
        return self._z.compress(encode_header_block(headers)) + self._z.flush(zlib.Z_SYNC_FLUSH)


class HeaderDecompressor:
    def __init__(self) -> None:
        self._z = zlib.decompressobj(zdict=DICTIONARY)

    def decompress(self, data: bytes) -> Headers:
        try:
            block = self._z.decompress(data, MAX_HEADER_BLOCK)
        except zlib.error as e:
            raise ProtocolError(f"header decompression: {e}") from None
        if self._z.unconsumed_tail:
            raise ProtocolError("header block too large")
        return decode_header_block(block)


# ---- frames -------------------------------------------------------------------------------------

@dataclass
class DataFrame:
    stream_id: int
    data: bytes
    flags: int = 0


@dataclass
class SynStream:
    stream_id: int
    headers: Headers
    flags: int = 0
    associated_to: int = 0
    priority: int = 0


@dataclass
class SynReply:
    stream_id: int
    headers: Headers = field(default_factory=dict)
    flags: int = 0


@dataclass
class RstStream:
    stream_id: int
    status: int


@dataclass
class Ping:
    id: int


@dataclass
class GoAway:
    last_good_stream_id: int
    status: int = 0


@dataclass
class HeadersFrame:
    stream_id: int
    headers: Headers
    flags: int = 0


@dataclass
class WindowUpdate:
    stream_id: int
    delta: int


@dataclass
class Settings:
    entries: list[tuple[int, int, int]]      # (flags, id, value)
    flags: int = 0


@dataclass
class UnknownControl:
    """A control frame type SPDY/3 does not define: ignored, as the spec says."""
    type: int


Frame = (DataFrame | SynStream | SynReply | RstStream | Ping | GoAway | HeadersFrame
         | WindowUpdate | Settings | UnknownControl)


def _control(type_: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">HHI", 0x8000 | VERSION, type_, (flags << 24) | len(payload)) + payload


class FrameWriter:
    """Encodes frames for one connection direction (it owns that direction's compressor, so
    frames must go out in the order they are encoded)."""

    def __init__(self) -> None:
        self._compressor = HeaderCompressor()

    def encode(self, frame: Frame) -> bytes:
        if isinstance(frame, DataFrame):
            if len(frame.data) > MAX_FRAME_LENGTH:
                raise ValueError("data frame too long")
            return struct.pack(">II", frame.stream_id & 0x7FFFFFFF,
                               (frame.flags << 24) | len(frame.data)) + frame.data
        if isinstance(frame, SynStream):
            block = self._compressor.compress(frame.headers)
            return _control(SYN_STREAM, frame.flags, struct.pack(
                ">IIBB", frame.stream_id, frame.associated_to, (frame.priority & 7) << 5, 0)
                + block)
        if isinstance(frame, SynReply):
            return _control(SYN_REPLY, frame.flags, struct.pack(">I", frame.stream_id)
                            + self._compressor.compress(frame.headers))
        if isinstance(frame, HeadersFrame):
            return _control(HEADERS, frame.flags, struct.pack(">I", frame.stream_id)
                            + self._compressor.compress(frame.headers))
        if isinstance(frame, RstStream):
            return _control(RST_STREAM, 0, struct.pack(">II", frame.stream_id, frame.status))
        if isinstance(frame, Ping):
            return _control(PING, 0, struct.pack(">I", frame.id))
        if isinstance(frame, GoAway):
            return _control(GOAWAY, 0, struct.pack(">II", frame.last_good_stream_id,
                                                   frame.status))
        if isinstance(frame, WindowUpdate):
            return _control(WINDOW_UPDATE, 0, struct.pack(">II", frame.stream_id, frame.delta))
        if isinstance(frame, Settings):
            entries = b"".join(struct.pack(">II", (f << 24) | i, v)
                               for f, i, v in frame.entries)
            return _control(SETTINGS, frame.flags,
                            struct.pack(">I", len(frame.entries)) + entries)
        raise TypeError(f"cannot encode {frame!r}")


class FrameReader:
    """Decodes the frames of one connection direction (it owns that direction's
    decompressor)."""

    def __init__(self) -> None:
        self._decompressor = HeaderDecompressor()

    async def read(self, reader: asyncio.StreamReader) -> Frame | None:
        """The next frame; None at a clean end of the connection (between frames)."""
        try:
            head = await reader.readexactly(8)
        except asyncio.IncompleteReadError as e:
            if e.partial:
                raise ProtocolError("connection ended inside a frame header") from None
            return None
        word, flags_length = struct.unpack(">II", head)
        length = flags_length & 0xFFFFFF
        try:
            payload = await reader.readexactly(length)
        except asyncio.IncompleteReadError:
            raise ProtocolError("connection ended inside a frame") from None
        return self.parse(word, flags_length >> 24, payload)

    def parse(self, word: int, flags: int, payload: bytes) -> Frame:
        if not word & 0x80000000:
            if word == 0:
                raise ProtocolError("data frame on stream 0")
            return DataFrame(word, payload, flags)
        version, type_ = (word >> 16) & 0x7FFF, word & 0xFFFF
        if version != VERSION:
            raise ProtocolError(f"unsupported SPDY version {version}")
        try:
            return self._control(type_, flags, payload)
        except struct.error:
            raise ProtocolError(f"control frame {type_} too short") from None

    def _control(self, type_: int, flags: int, payload: bytes) -> Frame:
        if type_ == SYN_STREAM:
            sid, assoc, prio, _slot = struct.unpack_from(">IIBB", payload)
            return SynStream(sid & 0x7FFFFFFF, self._decompressor.decompress(payload[10:]),
                             flags, assoc & 0x7FFFFFFF, prio >> 5)
        if type_ in (SYN_REPLY, HEADERS):
            (sid,) = struct.unpack_from(">I", payload)
            headers = self._decompressor.decompress(payload[4:])
            cls = SynReply if type_ == SYN_REPLY else HeadersFrame
            return cls(sid & 0x7FFFFFFF, headers, flags)
        if type_ == RST_STREAM:
            sid, status = struct.unpack_from(">II", payload)
            return RstStream(sid & 0x7FFFFFFF, status)
        if type_ == PING:
            return Ping(struct.unpack_from(">I", payload)[0])
        if type_ == GOAWAY:
            sid, status = struct.unpack_from(">II", payload)
            return GoAway(sid & 0x7FFFFFFF, status)
        if type_ == WINDOW_UPDATE:
            sid, delta = struct.unpack_from(">II", payload)
            return WindowUpdate(sid & 0x7FFFFFFF, delta & 0x7FFFFFFF)
        if type_ == SETTINGS:
            (count,) = struct.unpack_from(">I", payload)
            entries = []
            for i in range(count):
                fid, value = struct.unpack_from(">II", payload, 4 + 8 * i)
                entries.append((fid >> 24, fid & 0xFFFFFF, value))
            return Settings(entries, flags)
        return UnknownControl(type_)
