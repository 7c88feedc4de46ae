"""Every event family, in one tuple, and the look-ups the rest of the code uses.

Adding a family is one line in FAMILIES and one in `Event` (docs/events.md, "Adding
an event family").  The order of FAMILIES is the order of the kinds in a recording's
header schema (tracer/recording/format.py): append, never reorder, or new recordings
stop matching the golden files byte for byte.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from tracer.events import drop, flow, icmp, lost, nat, neigh, route, sock, tcp
from tracer.events.drop import DropEvent
from tracer.events.family import Family
from tracer.events.flow import FlowEvent
from tracer.events.icmp import IcmpEvent
from tracer.events.lost import LostEvent
from tracer.events.nat import NatEvent
from tracer.events.neigh import NeighEvent
from tracer.events.route import RouteEvent
from tracer.events.sock import SockEvent
from tracer.events.tcp import TcpEvent
from tracer.events.wire import HDR, TUPLE, EvKind, FlowDirection, WireStruct

FAMILIES: tuple[Family[Any], ...] = (
    drop.FAMILY,
    flow.FAMILY,
    nat.FAMILY,
    lost.FAMILY,
    route.FAMILY,
    neigh.FAMILY,
    icmp.FAMILY,
    tcp.FAMILY,
    sock.FAMILY,
)

# what the pipeline passes around: one model class per family
Event = (DropEvent | FlowEvent | NatEvent | LostEvent
         | RouteEvent | NeighEvent | IcmpEvent | TcpEvent | SockEvent)

BY_NAME: dict[str, Family[Any]] = {f.name: f for f in FAMILIES}
BY_MODEL: dict[type, Family[Any]] = {f.model: f for f in FAMILIES}
# the kernel's records, by the kind number in their header
BY_EV_KIND: dict[EvKind, Family[Any]] = {f.ev_kind: f for f in FAMILIES
                                         if f.ev_kind is not None}

# what tests/unit/test_schema_layout.py compiles events.h against
WIRE_STRUCTS: tuple[WireStruct, ...] = (
    HDR, TUPLE, *(f.wire for f in FAMILIES if f.wire is not None),
    *(m for f in FAMILIES for m in f.map_structs))
C_ENUMS: tuple[tuple[str, type[IntEnum]], ...] = (
    ("EV", EvKind), ("FLOW", FlowDirection), *(e for f in FAMILIES for e in f.c_enums))


def _check() -> None:
    kernel = [f.ev_kind for f in FAMILIES if f.ev_kind is not None]
    if sorted(kernel) != sorted(EvKind):
        raise TypeError("every enum ev_kind value needs a family, and only one")
    if len(BY_NAME) != len(FAMILIES):
        raise TypeError("two families share a name")


_check()
