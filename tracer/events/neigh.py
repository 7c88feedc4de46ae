"""neigh: a next hop that could not be resolved (bpf/neigh.c: neighbour entries that
fail, and packets sent through a dead one)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from tracer.events.common import NO_LABELS, Labels, family_text, parse_family
from tracer.events.decoding import DecodeContext, Fields, addr, cstr
from tracer.events.family import Family
from tracer.events.wire import HDR, EvKind, Field, WireStruct
from tracer.util.timefmt import rfc3339_ns

# --- wire layout: struct ev_neigh ----------------------------------------------------

class NeighEv(IntEnum):
    """enum neigh_event."""

    FAILED = 1
    UPDATE_FAILED = 2
    SEND_DEAD = 3


NEIGH = WireStruct("ev_neigh", HDR.nested("hdr"), Field("addr", "16s"), Field("ifindex", "I"),
                   Field("family", "B"), Field("nud_state", "B"), Field("old_state", "B"),
                   Field("event", "B"), Field("ifname", "16s"), Field("probes", "I"),
                   Field("_pad", "I"))

NUD_STATES = ((0x01, "INCOMPLETE"), (0x02, "REACHABLE"), (0x04, "STALE"), (0x08, "DELAY"),
              (0x10, "PROBE"), (0x20, "FAILED"), (0x40, "NOARP"), (0x80, "PERMANENT"))


def nud_state_name(state: int) -> str:
    """include/uapi/linux/neighbour.h NUD_* bits, as `ip neigh` prints them."""
    names = [name for bit, name in NUD_STATES if state & bit]
    return "|".join(names) if names else "NONE"


# --- model -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class NeighEvent:
    ts_ns: int
    wall_ns: int
    netns: int
    family: int
    addr: str | None      # the next hop that got no answer
    ifindex: int
    ifname: str
    event: str            # "failed" | "update_failed" | "send_dead"
    state: str            # NUD state now
    old_state: str | None
    probes: int

    kind = "neigh"


# --- decode --------------------------------------------------------------------------

_NEIGH_EVENTS = {int(e): e.name.lower() for e in NeighEv}


def decode_neigh(v: Fields, ctx: DecodeContext) -> NeighEvent:
    ts_ns = v["hdr.ts_ns"]
    old = v["old_state"]
    return NeighEvent(
        ts_ns=ts_ns, wall_ns=ts_ns + ctx.mono_to_wall_ns, netns=v["hdr.netns_ino"],
        family=v["family"], addr=addr(v["family"], v["addr"]), ifindex=v["ifindex"],
        ifname=cstr(v["ifname"]), event=_NEIGH_EVENTS.get(v["event"], str(v["event"])),
        state=nud_state_name(v["nud_state"]),
        old_state=nud_state_name(old) if v["event"] == NeighEv.UPDATE_FAILED else None,
        probes=v["probes"])


# --- JSON record, table line, parse --------------------------------------------------

def neigh_record(ev: NeighEvent) -> dict[str, Any]:
    return {"kind": "neigh", "time": rfc3339_ns(ev.wall_ns), "netns": ev.netns,
            "family": family_text(ev.family), "addr": ev.addr, "ifname": ev.ifname or None,
            "ifindex": ev.ifindex, "event": ev.event, "state": ev.state,
            "old_state": ev.old_state, "probes": ev.probes}


def neigh_line(ev: NeighEvent, labels: Labels = NO_LABELS) -> tuple[str, str]:
    return (ev.ifname or "-", f"next hop {ev.addr} unresolved ({ev.event}, {ev.state}, "
            f"{ev.probes} probes)")


def parse_neigh(rec: dict[str, Any], t: int) -> NeighEvent:
    return NeighEvent(0, t, rec["netns"], parse_family(rec.get("family")), rec.get("addr"),
                      rec.get("ifindex") or 0, rec.get("ifname") or "", rec["event"],
                      rec["state"], rec.get("old_state"), rec.get("probes", 0))


FAMILY = Family(name="neigh", model=NeighEvent, record=neigh_record, line=neigh_line,
                parse=parse_neigh, ev_kind=EvKind.NEIGH, wire=NEIGH, decode=decode_neigh,
                c_enums=(("NEIGH_EV", NeighEv),))
