"""Typed, frozen records the pipeline passes around (decoded, not yet enriched)."""

from __future__ import annotations

import errno
from dataclasses import dataclass

PROTO_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6"}
TCP_FLAG_NAMES = ((0x01, "FIN"), (0x02, "SYN"), (0x04, "RST"), (0x08, "PSH"),
                  (0x10, "ACK"), (0x20, "URG"), (0x40, "ECE"), (0x80, "CWR"))


def proto_name(proto: int) -> str:
    return PROTO_NAMES.get(proto, str(proto))


# every value of the flags byte, spelled out once (twice per flow line in -o jsonl)
_FLAG_NAMES = tuple(tuple(name for bit, name in TCP_FLAG_NAMES if flags & bit)
                    for flags in range(256))


def tcp_flag_names(flags: int) -> list[str]:
    if 0 <= flags < 256:
        return list(_FLAG_NAMES[flags])
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
    forwarding: Forwarding | None = None  # forwarded traffic: the node's sysctls

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


# --- failures that are not drops ---------------------------------------------------

def errno_name(err: int) -> str:
    """The kernel's name for a (positive) errno: "ECONNREFUSED"."""
    return errno.errorcode.get(err, f"errno_{err}")


TCP_STATES = ("", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2",
              "TIME_WAIT", "CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING",
              "NEW_SYN_RECV", "BOUND_INACTIVE")  # include/net/tcp_states.h


def tcp_state_name(state: int) -> str:
    return TCP_STATES[state] if 0 < state < len(TCP_STATES) else f"state_{state}"


NUD_STATES = ((0x01, "INCOMPLETE"), (0x02, "REACHABLE"), (0x04, "STALE"), (0x08, "DELAY"),
              (0x10, "PROBE"), (0x20, "FAILED"), (0x40, "NOARP"), (0x80, "PERMANENT"))


def nud_state_name(state: int) -> str:
    """include/uapi/linux/neighbour.h NUD_* bits, as `ip neigh` prints them."""
    names = [name for bit, name in NUD_STATES if state & bit]
    return "|".join(names) if names else "NONE"


@dataclass(frozen=True, slots=True)
class Process:
    pid: int
    comm: str
    cgroup_id: int        # cgroup2 inode (bpf_get_current_cgroup_id); 0 when unknown


@dataclass(frozen=True, slots=True)
class PodRef:
    """A pod as its cgroup path names it (tracer/node/podmap.py)."""

    uid: str
    container_id: str | None
    runtime: str | None   # "containerd", "crio", "docker", or None (cgroupfs: unnamed)
    qos: str | None       # "guaranteed", "burstable", "besteffort"
    cgroup: str           # the path below the cgroup2 mount


@dataclass(frozen=True, slots=True)
class Forwarding:
    """The node's forwarding sysctls when the event happened (read every 2 s)."""

    ip_forward: int           # net.ipv4.ip_forward (net.ipv6.conf.all.forwarding for v6)
    rp_filter: int | None     # effective for `iface`: max(conf.all, conf.<iface>); v4 only
    iface: str | None         # the interface the packet came in on


@dataclass(frozen=True, slots=True)
class PortHolder:
    """Who holds an address another process failed to bind (EADDRINUSE)."""

    proto: str                # "tcp" | "udp"
    addr: Endpoint
    state: str                # "LISTEN", "ESTABLISHED", ... ("" for udp)
    pid: int | None           # None: no process has the socket open (kernel-held)
    comm: str | None
    pod: PodRef | None


@dataclass(frozen=True, slots=True)
class RouteEvent:
    ts_ns: int
    wall_ns: int
    netns: int
    family: int
    proto: int
    src: Endpoint
    dst: Endpoint
    gateway: str | None
    table: int
    error: str            # "ENETUNREACH": what the lookup's caller gets
    error_raw: int        # the tracepoint's err (-11 EAGAIN: a miss in the main table)
    oif: int
    iif: int              # > 1: a received packet (forwarded traffic)
    count: int = 1
    forwarding: Forwarding | None = None

    kind = "route"


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


@dataclass(frozen=True, slots=True)
class IcmpEvent:
    """An ICMP error: one the node sent (IPv4, icmp_send) or an ICMPv6 error that
    crossed one of its interfaces (tc); src/dst/proto: the offending packet's."""

    ts_ns: int
    wall_ns: int
    netns: int
    icmp_type: int
    icmp_code: int
    meaning: str          # "port-unreachable"
    family: int
    proto: int
    src: Endpoint
    dst: Endpoint
    ifindex: int
    ifname: str
    length: int
    via: str = "icmp_send"         # "icmp_send" (IPv4) | "tc" (ICMPv6, seen on the wire)
    direction: str | None = None   # via tc: "ingress" | "egress"
    mtu: int | None = None         # packet-too-big: the MTU it announces
    count: int = 1                 # errors of this key this record stands for (tc)

    kind = "icmp"


@dataclass(frozen=True, slots=True)
class TcpEvent:
    ts_ns: int
    wall_ns: int
    netns: int
    event: str            # connect | established | failed | reset_sent | reset_received | error
    family: int
    src: Endpoint         # this socket's end
    dst: Endpoint         # the peer
    state: str
    old_state: str | None
    error: str | None     # "ECONNREFUSED", "ETIMEDOUT"
    error_raw: int
    duration_ns: int | None   # connect() to established/failed
    syn_retransmits: int
    process: Process | None   # the connect() caller; None when not known
    pod: PodRef | None = None

    kind = "tcp"


@dataclass(frozen=True, slots=True)
class SockEvent:
    ts_ns: int
    wall_ns: int
    netns: int
    op: str               # bind | connect | listen
    via: str              # "return": the call's own errno; "so_error": a non-blocking
                          # connect's outcome, as getsockopt(SO_ERROR) told it
    family: int
    addr: Endpoint        # the sockaddr passed in (bind: local, connect: remote)
    error: str
    error_raw: int
    fd: int
    process: Process
    pod: PodRef | None = None
    holder: PortHolder | None = None   # EADDRINUSE on bind/listen: who has the port

    kind = "sock"
# --- end of the failures that are not drops -------------------------------------------


Event = (DropEvent | FlowEvent | NatEvent | LostEvent
         | RouteEvent | NeighEvent | IcmpEvent | TcpEvent | SockEvent)
