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
                      Field("tcp_flags_seen", "Q"))

FLOW = WireStruct("ev_flow", HDR.nested("hdr"), TUPLE.nested("tuple"),
                  Field("first_ns", "Q"), Field("last_ns", "Q"), Field("packets", "Q"),
                  Field("bytes", "Q"), Field("ifindex", "I"), Field("direction", "B"),
                  Field("report", "B"), Field("tcp_flags_seen", "B"), Field("_pad", "B"))

# --- netfilter NAT (kprobes): struct ev_nat ------------------------------------------
NAT = WireStruct("ev_nat", HDR.nested("hdr"), TUPLE.nested("orig"), TUPLE.nested("reply"),
                 Field("status", "I"), Field("manip", "B"), Field("dir", "B"),
                 Field("_pad", "H"))

# Every kernel record by kind; the decoder dispatches on hdr.kind.
RECORDS: dict[EvKind, WireStruct] = {EvKind.DROP: DROP, EvKind.FLOW: FLOW, EvKind.NAT: NAT}
# Map entries user space reads directly (checked against events.h like the records).
MAP_STRUCTS: tuple[WireStruct, ...] = (FLOW_KEY, FLOW_VAL, DROP_KEY, DROP_VAL)
