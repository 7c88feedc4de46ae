"""The Python mirror of bpf/include/events.h, as tables of fields.

tests/unit/test_schema_layout.py compiles events.h and checks every offset and size
declared here, so the two cannot drift apart silently.  Keep the C struct and its
table side by side when changing either (docs/events.md documents both).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum


class EvKind(IntEnum):
    """enum ev_kind — never renumber: recordings store these values."""

    DROP = 1
    FLOW = 2
    NAT = 3
    ROUTE = 4
    NEIGH = 5
    ICMP = 6
    TCP = 7
    SOCK = 8


class LossSlot(IntEnum):
    """enum loss_slot — per-CPU kernel-side loss counters."""

    RINGBUF_RESERVE = 0
    FLOW_MAP_FULL = 1
    RATE_LIMITED = 2


LOSS_SLOTS = 8


@dataclass(frozen=True)
class Field:
    name: str
    fmt: str  # one struct module code, optionally with a count ("16s")

    @property
    def size(self) -> int:
        return struct.calcsize("<" + self.fmt)


class WireStruct:
    """A C struct with explicit padding, laid out field after field."""

    def __init__(self, c_name: str, *fields: Field | WireStruct, prefix: str = "") -> None:
        self.c_name = c_name
        flat: list[Field] = []
        for f in fields:
            if isinstance(f, WireStruct):
                flat.extend(f.fields)
            else:
                flat.append(f)
        self.fields: tuple[Field, ...] = tuple(Field(prefix + f.name, f.fmt) for f in flat)
        self.struct = struct.Struct("<" + "".join(f.fmt for f in self.fields))
        self.size = self.struct.size
        offsets: dict[str, int] = {}
        pos = 0
        for f in self.fields:
            offsets[f.name] = pos
            pos += f.size
        self.offsets = offsets
        self.names = tuple(f.name for f in self.fields)

    def nested(self, member: str) -> WireStruct:
        """This struct embedded as `member` of another (field names gain `member.`)."""
        return WireStruct(self.c_name, *self.fields, prefix=member + ".")


# struct ev_hdr
HDR = WireStruct("ev_hdr", Field("ts_ns", "Q"), Field("netns_ino", "I"),
                 Field("kind", "H"), Field("len", "H"))

# struct ev_tuple
TUPLE = WireStruct("ev_tuple", Field("saddr", "16s"), Field("daddr", "16s"),
                   Field("sport", "H"), Field("dport", "H"), Field("family", "B"),
                   Field("proto", "B"), Field("tcp_flags", "B"), Field("_pad", "B"))

# struct ev_drop
DROP = WireStruct("ev_drop", HDR.nested("hdr"), TUPLE.nested("tuple"),
                  Field("location", "Q"), Field("reason_raw", "I"), Field("ifindex", "I"),
                  Field("skb_len", "I"), Field("l3_proto", "H"), Field("_pad", "H"),
                  Field("ifname", "16s"), Field("count", "I"), Field("_pad2", "I"))

DROP_KEY = WireStruct("drop_key", Field("netns_ino", "I"), Field("ifindex", "I"),
                      Field("reason", "I"), TUPLE.nested("tuple"))
DROP_VAL = WireStruct("drop_val", Field("reported_ns", "Q"), Field("unreported", "Q"))

# --- tc flows: struct flow_key / flow_val (map entries) and struct ev_flow ---------
class FlowDirection(IntEnum):
    INGRESS = 0
    EGRESS = 1


class FlowReport(IntEnum):
    NEW = 1
    TCP_CONTROL = 2
    UPDATE = 3
    FINAL = 4


FLOW_KEY = WireStruct("flow_key", Field("ifindex", "I"), Field("saddr", "16s"),
                      Field("daddr", "16s"), Field("sport", "H"), Field("dport", "H"),
                      Field("family", "B"), Field("proto", "B"), Field("direction", "B"),
                      Field("_pad", "B"))

FLOW_VAL = WireStruct("flow_val", Field("first_ns", "Q"), Field("last_ns", "Q"),
                      Field("reported_ns", "Q"), Field("packets", "Q"), Field("bytes", "Q"),
                      Field("tcp_flags_seen", "Q"), Field("reported_packets", "Q"))

FLOW_PENDING = WireStruct("flow_pending", FLOW_KEY.nested("key"), Field("_pad", "I"),
                          Field("packets", "Q"), Field("bytes", "Q"), Field("tcp_flags", "Q"),
                          Field("last_ns", "Q"))

FLOW = WireStruct("ev_flow", HDR.nested("hdr"), TUPLE.nested("tuple"),
                  Field("first_ns", "Q"), Field("last_ns", "Q"), Field("packets", "Q"),
                  Field("bytes", "Q"), Field("ifindex", "I"), Field("direction", "B"),
                  Field("report", "B"), Field("tcp_flags_seen", "B"), Field("_pad", "B"))

# --- netfilter NAT (kprobes): struct ev_nat ------------------------------------------
NAT = WireStruct("ev_nat", HDR.nested("hdr"), TUPLE.nested("orig"), TUPLE.nested("reply"),
                 Field("status", "I"), Field("manip", "B"), Field("dir", "B"),
                 Field("_pad", "H"))

# --- failures that are not drops ----------------------------------------------------
# LossSlot.RATE_LIMITED counts tcp reset_sent records suppressed by bpf/tcp.c.
class NeighEv(IntEnum):
    FAILED = 1
    UPDATE_FAILED = 2
    SEND_DEAD = 3


class TcpEv(IntEnum):
    CONNECT = 1
    ESTABLISHED = 2
    FAILED = 3
    RESET_SENT = 4
    RESET_RECEIVED = 5
    ERROR = 6


class SockOp(IntEnum):
    BIND = 1
    CONNECT = 2
    LISTEN = 3
    CONNECT_ASYNC = 4   # a non-blocking connect's outcome, read with SO_ERROR


ROUTE = WireStruct("ev_route", HDR.nested("hdr"), TUPLE.nested("tuple"),
                   Field("gateway", "16s"), Field("tb_id", "I"), Field("err", "i"),
                   Field("oif", "I"), Field("iif", "I"), Field("count", "I"),
                   Field("_pad", "I"))
ROUTE_KEY = WireStruct("route_key", Field("netns_ino", "I"), Field("tb_id", "I"),
                       Field("err", "i"), Field("iif", "I"), Field("saddr", "16s"),
                       Field("daddr", "16s"), Field("family", "B"), Field("_pad", "3s"))
NEIGH = WireStruct("ev_neigh", HDR.nested("hdr"), Field("addr", "16s"), Field("ifindex", "I"),
                   Field("family", "B"), Field("nud_state", "B"), Field("old_state", "B"),
                   Field("event", "B"), Field("ifname", "16s"), Field("probes", "I"),
                   Field("_pad", "I"))
class IcmpVia(IntEnum):
    """enum icmp_via: 0 is icmp_send, as every record before the tc source."""

    ICMP_SEND = 0
    TC = 1


ICMP = WireStruct("ev_icmp", HDR.nested("hdr"), TUPLE.nested("inner"), Field("type", "B"),
                  Field("code", "B"), Field("via", "B"), Field("direction", "B"),
                  Field("ifindex", "I"), Field("ifname", "16s"), Field("skb_len", "I"),
                  Field("mtu", "I"), Field("count", "I"), Field("_pad", "I"))
ICMP6_KEY = WireStruct("icmp6_key", TUPLE.nested("inner"), Field("ifindex", "I"),
                       Field("direction", "B"), Field("type", "B"), Field("code", "B"),
                       Field("_pad", "B"))
TCP_HANDSHAKE = WireStruct("tcp_handshake", Field("start_ns", "Q"), Field("cgroup_id", "Q"),
                           Field("pid", "I"), Field("syn_retransmits", "I"),
                           Field("comm", "16s"))
TCP = WireStruct("ev_tcp", HDR.nested("hdr"), TUPLE.nested("tuple"), Field("duration_ns", "Q"),
                 Field("cgroup_id", "Q"), Field("pid", "I"), Field("err", "I"),
                 Field("comm", "16s"), Field("event", "B"), Field("state", "B"),
                 Field("old_state", "B"), Field("syn_retransmits", "B"), Field("_pad", "I"))
SOCK = WireStruct("ev_sock", HDR.nested("hdr"), Field("addr", "16s"), Field("port", "H"),
                  Field("family", "B"), Field("op", "B"), Field("err", "I"), Field("pid", "I"),
                  Field("fd", "I"), Field("cgroup_id", "Q"), Field("comm", "16s"))
SOCK_CALL = WireStruct("sock_call", Field("uaddr", "Q"), Field("fd", "I"), Field("op", "B"),
                       Field("_pad", "3s"))
# --- end of the failures that are not drops --------------------------------------------

# Every kernel record by kind; the decoder dispatches on hdr.kind.
RECORDS: dict[EvKind, WireStruct] = {EvKind.DROP: DROP, EvKind.FLOW: FLOW, EvKind.NAT: NAT,
                                     EvKind.ROUTE: ROUTE, EvKind.NEIGH: NEIGH,
                                     EvKind.ICMP: ICMP, EvKind.TCP: TCP, EvKind.SOCK: SOCK}
# Map entries user space reads directly (checked against events.h like the records).
MAP_STRUCTS: tuple[WireStruct, ...] = (FLOW_KEY, FLOW_VAL, FLOW_PENDING, DROP_KEY, DROP_VAL,
                                       ROUTE_KEY, ICMP6_KEY, TCP_HANDSHAKE, SOCK_CALL)
