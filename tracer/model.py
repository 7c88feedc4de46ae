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

    kind = "drop"


@dataclass(frozen=True, slots=True)
class LostEvent:
    """Events the pipeline knows it did not deliver, by layer."""

    wall_ns: int
    layer: str            # "ringbuf_reserve" (kernel), "decode"
    count: int            # since the previous lost record of this layer
    total: int

    kind = "lost"


Event = DropEvent | LostEvent
