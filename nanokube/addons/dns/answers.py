"""Answers prepared ahead in wire format, and the hot path that serves them.

Every RRset of the `RecordIndex` becomes a ready response keyed by the question as it is on the
wire: the lower-cased name, the type and the class. A response is built once with dnspython for
the lower-case question; serving it copies the query's id, its RD bit and its own question bytes
(same length whatever the case, so the compression pointers to offset 12 stay valid and the
client's 0x20 case is echoed). Each entry holds four headers (RD off/on x without/with EDNS) and
two tails (what follows the question, without and with our OPT record).

Answers that are not RRsets of the index (NXDOMAIN, NODATA, REFUSED, CNAMEs, pod addresses) are
worked out on the first query and kept in a cache of misses, emptied on every change; NXDOMAIN,
NODATA and REFUSED share one template per zone since their tail does not depend on the name.
Anything unusual (compressed question, several questions, EDNS version > 0, other opcodes) is
parsed by dnspython and either rewritten into a plain query or answered with an error.
"""
from __future__ import annotations

import struct
from typing import Iterable

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rrset

from nanokube.addons.dns.records import A, AAAA, CNAME, SOA, SRV, RecordIndex, pod_address

EDNS_PAYLOAD = 1232            # what we advertise (DNS flag day 2020)
MAX_MISSES = 20000             # the miss cache is a cache: forget everything past this
ANY = 255
IN = 1
NOERROR, FORMERR, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 3, 4, 5
QR, AA, TC, RD = 0x8000, 0x0400, 0x0200, 0x0100

OPT_RECORD = b"\x00" + struct.pack("!HHIH", 41, EDNS_PAYLOAD, 0, 0)

# (hdr plain RD0, hdr plain RD1, hdr EDNS RD0, hdr EDNS RD1, tail plain, tail EDNS); a header is
# the 10 bytes after the id: flags and the four counts.
Entry = tuple[bytes, bytes, bytes, bytes, bytes, bytes]


def name_wire(name: str) -> bytes:
    return dns.name.from_text(name).to_wire()


def _variants(hdr_plain: bytes, hdr_edns: bytes, tail_plain: bytes, tail_edns: bytes) -> Entry:
    def rd(h: bytes, on: bool) -> bytes:
        return bytes([(h[0] | 0x01) if on else (h[0] & 0xFE)]) + h[1:]
    return (rd(hdr_plain, False), rd(hdr_plain, True), rd(hdr_edns, False), rd(hdr_edns, True),
            tail_plain, tail_edns)


def message_entry(qname: str, qtype: int, answer: Iterable[dns.rrset.RRset] = (),
                  additional: Iterable[dns.rrset.RRset] = (), rcode: int = NOERROR) -> Entry:
    """A whole authoritative response for the lower-case question, split for the hot path."""
    name = dns.name.from_text(qname)
    msg = dns.message.Message(id=0)
    msg.flags = QR | AA
    msg.set_rcode(rcode)
    msg.find_rrset(msg.question, name, IN, qtype, create=True, force_unique=True)
    msg.answer.extend(answer)
    msg.additional.extend(additional)
    qlen = len(name.to_wire()) + 4
    plain = msg.to_wire(max_size=65535)     # truncation is the hot path's business
    msg.use_edns(0, 0, EDNS_PAYLOAD)
    edns = msg.to_wire(max_size=65535)
    return _variants(plain[2:12], edns[2:12], plain[12 + qlen:], edns[12 + qlen:])


def template_entry(flags: int, rcode: int, authority: dns.rrset.RRset | None = None) -> Entry:
    """A response whose sections after the question do not depend on the question:
    NXDOMAIN/NODATA with the zone's SOA in authority, REFUSED with nothing."""
    tail = b""
    if authority is not None:
        tail = _rrset_wire(authority)
    ns = 1 if authority is not None else 0
    plain = struct.pack("!HHHHH", flags | rcode, 1, 0, ns, 0)
    edns = struct.pack("!HHHHH", flags | rcode, 1, 0, ns, 1)
    return _variants(plain, edns, tail, tail + OPT_RECORD)


def _rrset_wire(rrset: dns.rrset.RRset) -> bytes:
    import io
    out = io.BytesIO()
    rrset.to_wire(out)              # no compression: it must stand anywhere in a message
    return out.getvalue()


class Answers:
    """The prepared responses of an index, rebuilt per changed RRset."""

    def __init__(self, index: RecordIndex, ttl: int = 5):
        self.index = index
        self.ttl = ttl
        self.table: dict[bytes, Entry] = {}
        self._misses: dict[bytes, Entry] = {}
        self._negative: dict[tuple[str, int], Entry] = {}
        self._refused = template_entry(QR, REFUSED)

    # ---- keeping the table -------------------------------------------------------------------
    def update(self, changed: Iterable[tuple[str, int]]) -> None:
        """Rebuild the answers of the changed RRsets (SRV answers carry their targets'
        addresses, which come from the same Service, so they are in `changed` too)."""
        for name, rdtype in changed:
            key = name_wire(name) + struct.pack("!HH", rdtype, IN)
            if self.index.rrset(name, rdtype):
                self.table[key] = self._positive(name, rdtype)
            else:
                self.table.pop(key, None)
            if rdtype == SOA:
                self._negative.clear()
        self._misses.clear()

    def rebuild(self) -> None:
        self.table.clear()
        self.update(self.index.keys())

    def _rrset(self, name: str, rdtype: int, owner: str | None = None) -> dns.rrset.RRset | None:
        values = self.index.rrset(name, rdtype)
        if not values:
            return None
        return dns.rrset.from_text_list(owner or name, self.ttl, IN, rdtype, values)

    def _positive(self, name: str, rdtype: int) -> Entry:
        additional = []
        if rdtype == SRV:
            targets = {v.split()[-1] for v in self.index.rrset(name, SRV)}
            for target in sorted(targets):
                for t in (A, AAAA):
                    rr = self._rrset(target, t)
                    if rr is not None:
                        additional.append(rr)
        return message_entry(name, rdtype, [self._rrset(name, rdtype)], additional)

    # ---- answers that are not RRsets -----------------------------------------------------------
    def _negative_entry(self, zone: str, rcode: int) -> Entry:
        entry = self._negative.get((zone, rcode))
        if entry is None:
            soa = self._rrset(zone, SOA)
            entry = template_entry(QR | AA, rcode, soa)
            self._negative[(zone, rcode)] = entry
        return entry

    def resolve(self, key: bytes) -> Entry | None:
        """The answer to a question not in the table; None if the name is not valid."""
        try:
            qname, _ = dns.name.from_wire(key, 0)
        except dns.exception.DNSException:
            return None
        qtype, qclass = struct.unpack("!HH", key[-4:])
        name = qname.to_text().lower()
        zone = self.index.zone_of(name)
        if qclass != IN or zone is None:
            entry = self._refused              # nothing leaves this machine
        else:
            entry = self._in_zone(name, qtype, zone)
        if len(self._misses) >= MAX_MISSES:
            self._misses.clear()
        self._misses[key] = entry
        return entry

    def _in_zone(self, name: str, qtype: int, zone: str) -> Entry:
        cname = self._rrset(name, CNAME)
        if cname is not None:
            answer = [cname]
            target = self.index.rrset(name, CNAME)[0].lower()
            chased = self._rrset(target, qtype) if qtype != CNAME else None
            if chased is not None:              # an ExternalName pointing inside the zone
                answer.append(chased)
            return message_entry(name, qtype, answer)
        pod_ip = pod_address(name, zone)
        if pod_ip is not None and qtype in (A, ANY):
            rr = dns.rrset.from_text_list(name, self.ttl, IN, A, [pod_ip])
            return message_entry(name, qtype, [rr])
        if qtype == ANY and self.index.exists(name):
            answer = [self._rrset(name, t) for t in self.index.types_at(name)]
            if answer:
                return message_entry(name, qtype, answer)
        if self.index.exists(name) or pod_ip is not None or self._pod_branch(name, zone):
            return self._negative_entry(zone, NOERROR)        # NODATA
        return self._negative_entry(zone, NXDOMAIN)

    @staticmethod
    def _pod_branch(name: str, zone: str) -> bool:
        """`pod.<zone>` and `<ns>.pod.<zone>` exist: pod names live below them."""
        suffix = "pod." + zone
        return name == suffix or (name.endswith("." + suffix) and
                                  "." not in name[: -len(suffix) - 1])

    # ---- the hot path ------------------------------------------------------------------------
    def respond(self, q: bytes, tcp: bool = False) -> bytes | None:
        """The response to one query message, or None to send nothing (not a query)."""
        try:
            # one question, no answer/authority records, QR=0, opcode QUERY
            if q[4:10] == b"\x00\x01\x00\x00\x00\x00" and not q[2] & 0xF8:
                i = 12
                n = q[12]
                while n:
                    if n > 63:                  # a compression pointer or a bad label
                        raise IndexError
                    i += n + 1
                    n = q[i]
                end = i + 1
                qend = end + 4
                ar = q[10:12]
                if ar == b"\x00\x00" and len(q) >= qend:
                    edns, limit = 0, 512
                elif (ar == b"\x00\x01" and q[qend:qend + 3] == b"\x00\x00\x29"
                      and q[qend + 6] == 0):   # one OPT record, EDNS version 0
                    edns, limit = 2, max(512, q[qend + 3] << 8 | q[qend + 4])
                else:
                    raise IndexError
                key = q[12:end].lower() + q[end:qend]
                entry = self.table.get(key) or self._misses.get(key) or self.resolve(key)
                if entry is not None:
                    resp = q[:2] + entry[edns | (q[2] & 1)] + q[12:qend] + entry[4 + (edns >> 1)]
                    if len(resp) > limit and not tcp:
                        return self._truncated(q, qend, entry[edns | (q[2] & 1)], edns)
                    return resp
        except IndexError:
            pass
        return self._unusual(q, tcp)

    @staticmethod
    def _truncated(q: bytes, qend: int, hdr: bytes, edns: int) -> bytes:
        """TC set, no records but our OPT: the client retries over TCP."""
        flags = bytes([hdr[0] | (TC >> 8), hdr[1]])
        counts = b"\x00\x01\x00\x00\x00\x00" + (b"\x00\x01" if edns else b"\x00\x00")
        return q[:2] + flags + counts + q[12:qend] + (OPT_RECORD if edns else b"")

    def _unusual(self, q: bytes, tcp: bool) -> bytes | None:
        """Queries the hot path does not take: parse them properly."""
        if len(q) < 12:
            return None
        try:
            msg = dns.message.from_wire(q, ignore_trailing=True)
        except dns.message.ShortHeader:
            return None
        except Exception:
            if q[2] & 0x80:
                return None
            # the id and RD of the query, QR, FORMERR, no sections
            return q[:2] + bytes([0x80 | (q[2] & 0x79), FORMERR]) + b"\x00" * 8
        if msg.flags & dns.flags.QR:
            return None
        if msg.opcode() != dns.opcode.QUERY:
            return self._error(msg, dns.rcode.NOTIMP)
        if len(msg.question) != 1:
            return self._error(msg, dns.rcode.FORMERR)
        if msg.edns > 0:
            return self._error(msg, dns.rcode.BADVERS)
        question = msg.question[0]
        plain = (q[:2] + bytes([q[2] & 0x79, q[3]]) + b"\x00\x01\x00\x00\x00\x00"
                 + (b"\x00\x01" if msg.edns == 0 else b"\x00\x00")
                 + question.name.to_wire() + struct.pack("!HH", question.rdtype,
                                                           question.rdclass))
        if msg.edns == 0:
            plain += b"\x00" + struct.pack("!HHIH", 41, max(512, msg.payload), 0, 0)
        if plain == q:       # it was plain already and still not answered: the name is bad
            return self._error(msg, dns.rcode.FORMERR)
        return self.respond(plain, tcp)

    @staticmethod
    def _error(msg: dns.message.Message, rcode: int) -> bytes:
        resp = dns.message.make_response(msg, our_payload=EDNS_PAYLOAD)
        resp.set_rcode(rcode)
        return resp.to_wire()
