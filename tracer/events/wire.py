"""The pieces of bpf/include/events.h every family shares: the field-table types, the
record header, the address tuple, `enum ev_kind` and the tc hook direction.

A family's own struct is declared in its module (tracer/events/drop.py, flow.py, ...)
as a `WireStruct` next to its decoder, with the C struct's name;
tests/unit/test_schema_layout.py compiles events.h and checks every offset, size and
enum value the registry (tracer/events/registry.py) lists, so the two sides cannot
drift apart silently.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum


class EvKind(IntEnum):
    """enum ev_kind: the number in every record's header.  Never renumber: recordings
    store these values.  A new family takes the next number here and in events.h."""

    DROP = 1
    FLOW = 2
    NAT = 3
    ROUTE = 4
    NEIGH = 5
    ICMP = 6
    TCP = 7
    SOCK = 8


class FlowDirection(IntEnum):
    """enum flow_direction: the tc hook's side, in flow and icmp (via tc) records."""

    INGRESS = 0
    EGRESS = 1


DIRECTIONS = {int(d): d.name.lower() for d in FlowDirection}


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
        # field name -> its position in an unpacked tuple (decoding.Fields reads by it)
        self.index = {n: i for i, n in enumerate(self.names)}

    def nested(self, member: str) -> WireStruct:
        """This struct embedded as `member` of another (field names gain `member.`)."""
        return WireStruct(self.c_name, *self.fields, prefix=member + ".")


# struct ev_hdr: the start of every record
HDR = WireStruct("ev_hdr", Field("ts_ns", "Q"), Field("netns_ino", "I"),
                 Field("kind", "H"), Field("len", "H"))

# struct ev_tuple: addresses (IPv4 in the first 4 bytes), ports in host order (ICMP:
# type and code), family 4/6 (0: not parsed)
TUPLE = WireStruct("ev_tuple", Field("saddr", "16s"), Field("daddr", "16s"),
                   Field("sport", "H"), Field("dport", "H"), Field("family", "B"),
                   Field("proto", "B"), Field("tcp_flags", "B"), Field("_pad", "B"))
