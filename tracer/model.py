"""Typed, frozen records the pipeline passes around (decoded, not yet enriched)."""

from __future__ import annotations

from dataclasses import dataclass

PROTO_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6"}
TCP_FLAG_NAMES = ((0x01, "FIN"), (0x02, "SYN"), (0x04, "RST"), (0x08, "PSH"),
                  (0x10, "ACK"), (0x20, "URG"), (0x40, "ECE"), (0x80, "CWR"))


def proto_name(proto: int) -> str:
    return PROTO_NAMES.get(proto, str(proto))


def tcp_flag_names(flags: int) -> list[str]:
    return [name for bit, name in TCP_FLAG_NAMES if flags & bit]


@dataclass(frozen=True, slots=True)
class Endpoint:
    ip: str | None
    port: int | None


@dataclass(frozen=True, slots=True)
class DropEvent:
    ts_ns: int            # CLOCK_MONOTONIC, as the kernel stamped it
    wall_ns: int          # the same instant on the wall clock
    netns: int
    ifindex: int
    ifname: str
    reason: str           # kernel name, e.g. "NETFILTER_DROP"
    reason_raw: int
    location: str         # symbol+offset
    location_raw: int
    family: int           # 4, 6, 0 when not parsed
    proto: int
    src: Endpoint
    dst: Endpoint
    tcp_flags: int
    icmp_type: int | None
    icmp_code: int | None
    length: int
    l3_proto: int
    count: int = 1                 # identical drops this record stands for (aggregated)
    marks: tuple[str, ...] = ()    # path findings added by tracer/pipeline/path.py

    kind = "drop"


@dataclass(frozen=True, slots=True)
class FlowEvent:
    """A report on one flow at one tc hook (aggregated in the kernel)."""

    ts_ns: int
    wall_ns: int
    netns: int
    ifindex: int
    ifname: str
    direction: str        # "ingress" | "egress"
    report: str           # "new" | "tcp_control" | "update" | "final"
    family: int
    proto: int
    src: Endpoint
    dst: Endpoint
    tcp_flags: int        # the reporting packet's flags
    tcp_flags_seen: int   # every packet's flags, OR-ed
    icmp_type: int | None
    icmp_code: int | None
    packets: int
    bytes: int
    first_wall_ns: int
    last_wall_ns: int
    role: str = ""                 # the hook's interface: "pod" veth or node "uplink"
    marks: tuple[str, ...] = ()    # path findings added by tracer/pipeline/path.py

    kind = "flow"


# ip_conntrack_status bits (uapi/linux/netfilter/nf_conntrack_common.h)
IPS_SEEN_REPLY = 1 << 1
IPS_ASSURED = 1 << 2
IPS_SRC_NAT = 1 << 4
IPS_DST_NAT = 1 << 5
IPS_CONFIRMED = 1 << 3


def nat_translation(status: int) -> tuple[str, ...]:
    return tuple(name for bit, name in ((IPS_DST_NAT, "dnat"), (IPS_SRC_NAT, "snat"))
                 if status & bit)


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


@dataclass(frozen=True, slots=True)
class LostEvent:
    """Events the pipeline knows it did not deliver, by layer."""

    wall_ns: int
    layer: str            # "ringbuf_reserve" (kernel), "decode"
    count: int            # since the previous lost record of this layer
    total: int

    kind = "lost"


Event = DropEvent | FlowEvent | NatEvent | LostEvent
