"""nat: a connection the node's netfilter translates.  Two origins: conntrack events
read from netlink on every kernel (tracer/node/conntrack.py builds these events
itself), and, where the kernel has kprobes or fentry, nf_nat_manip_pkt
(bpf/nat.c, struct ev_nat, decoded here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tracer.events.common import (
    NO_LABELS,
    Endpoint,
    Labels,
    endpoint,
    ep,
    parse_endpoint,
    parse_family,
    parse_proto,
    proto_name,
)
from tracer.events.decoding import DecodeContext, Fields, tuple_endpoints
from tracer.events.family import Family
from tracer.events.wire import HDR, TUPLE, EvKind, Field, WireStruct
from tracer.util.timefmt import rfc3339_ns

# --- wire layout: struct ev_nat ------------------------------------------------------

NAT = WireStruct("ev_nat", HDR.nested("hdr"), TUPLE.nested("orig"), TUPLE.nested("reply"),
                 Field("status", "I"), Field("manip", "B"), Field("dir", "B"),
                 Field("_pad", "H"))

# ip_conntrack_status bits (uapi/linux/netfilter/nf_conntrack_common.h)
IPS_SEEN_REPLY = 1 << 1
IPS_ASSURED = 1 << 2
IPS_SRC_NAT = 1 << 4
IPS_DST_NAT = 1 << 5
IPS_CONFIRMED = 1 << 3


def nat_translation(status: int) -> tuple[str, ...]:
    return tuple(name for bit, name in ((IPS_DST_NAT, "dnat"), (IPS_SRC_NAT, "snat"))
                 if status & bit)


# --- model -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class NatEvent:
    """A connection the node's netfilter translates: the tuple as the client sent it
    (orig) and as the reply is expected (reply)."""

    ts_ns: int
    wall_ns: int
    netns: int
    family: int
    proto: int
    orig_src: Endpoint
    orig_dst: Endpoint
    reply_src: Endpoint
    reply_dst: Endpoint
    status: int           # IPS_* bits
    origin: str           # "conntrack" (netlink events) | "kprobe" (per packet, in the kernel)
    manip: str | None     # kprobe only: "src" | "dst"
    ct_event: str | None  # conntrack only: "new" | "update" | "destroy"

    kind = "nat"

    @property
    def translation(self) -> tuple[str, ...]:
        return nat_translation(self.status)

    @property
    def replied(self) -> bool:
        return bool(self.status & IPS_SEEN_REPLY)


# --- decode --------------------------------------------------------------------------

def decode_nat(v: Fields, ctx: DecodeContext) -> NatEvent:
    osrc, odst, _, _ = tuple_endpoints(v, "orig.")
    rsrc, rdst, _, _ = tuple_endpoints(v, "reply.")
    ts_ns = v["hdr.ts_ns"]
    return NatEvent(
        ts_ns=ts_ns, wall_ns=ts_ns + ctx.mono_to_wall_ns, netns=v["hdr.netns_ino"],
        family=v["orig.family"], proto=v["orig.proto"], orig_src=osrc, orig_dst=odst,
        reply_src=rsrc, reply_dst=rdst, status=v["status"], origin="kprobe",
        manip="dst" if v["manip"] else "src", ct_event=None)


# --- JSON record, table line, parse --------------------------------------------------
# -o jsonl writes nat lines from cached parts (tracer/sinks/fragments.py), byte for
# byte this record with its names.

def nat_record(ev: NatEvent) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "kind": "nat",
        "time": rfc3339_ns(ev.wall_ns),
        "netns": ev.netns,
        "proto": proto_name(ev.proto),
        "family": f"ipv{ev.family}",
        "orig": {"src": endpoint(ev.orig_src), "dst": endpoint(ev.orig_dst)},
        "reply": {"src": endpoint(ev.reply_src), "dst": endpoint(ev.reply_dst)},
        "translation": list(ev.translation),
        "replied": ev.replied,
        "origin": ev.origin,
    }
    if ev.manip is not None:
        rec["manip"] = ev.manip
    if ev.ct_event is not None:
        rec["ct_event"] = ev.ct_event
    return rec


def nat_line(ev: NatEvent, labels: Labels = NO_LABELS) -> tuple[str, str]:
    # orig: what the client sent; reply tuple reversed: where it really went / came from
    text = (f"{proto_name(ev.proto)} {ep(ev.orig_src, labels.get('orig_src', ''))} → "
            f"{ep(ev.orig_dst, labels.get('orig_dst', ''))}")
    if "dnat" in ev.translation:
        text += f" ⇒ {ep(ev.reply_src, labels.get('reply_src', ''))}"
    text += f" [{','.join(ev.translation)}]"
    if "snat" in ev.translation:
        text += f" as {ep(ev.reply_dst, labels.get('reply_dst', ''))}"
    state = {"destroy": "ended"}.get(ev.ct_event or "", "")
    text += "  " + ("replied" if ev.replied else "no reply yet") + (f", {state}" if state else "")
    return ("node", text)


def parse_nat(rec: dict[str, Any], t: int) -> NatEvent:
    tr = rec.get("translation") or []
    status = ((IPS_DST_NAT if "dnat" in tr else 0) | (IPS_SRC_NAT if "snat" in tr else 0)
              | (IPS_SEEN_REPLY if rec.get("replied") else 0))
    return NatEvent(0, t, rec["netns"], parse_family(rec.get("family")),
                    parse_proto(rec["proto"]),
                    parse_endpoint(rec["orig"]["src"]), parse_endpoint(rec["orig"]["dst"]),
                    parse_endpoint(rec["reply"]["src"]), parse_endpoint(rec["reply"]["dst"]),
                    status, rec.get("origin", "conntrack"), rec.get("manip"),
                    rec.get("ct_event"))


FAMILY = Family(name="nat", model=NatEvent, record=nat_record, line=nat_line,
                parse=parse_nat, ev_kind=EvKind.NAT, wire=NAT, decode=decode_nat)
