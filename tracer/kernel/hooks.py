"""Which kernel hooks each program family attaches to, declared as data.

A family is switched on in the C module with -D WITH_<FAMILY>; its entry points are
in bpf/nodetrace.c.  Per-interface tc hooks are attached separately (they follow
interfaces, not the module).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Tracepoint:
    category: str
    event: str
    required: bool = True   # False: a kernel without it degrades, tracing goes on

    @property
    def fn_name(self) -> str:
        return f"tracepoint__{self.category}__{self.event}"

    @property
    def label(self) -> str:
        return f"tracepoint/{self.category}:{self.event}"


@dataclass(frozen=True)
class Kprobe:
    function: str
    fn_name: str
    required: bool = False  # kprobes refine what tracepoints already show
    # the same handler as an fentry program: used instead where fentry programs load
    # (doctor's fentry check), the kprobe otherwise
    fentry_fn: str | None = None

    @property
    def label(self) -> str:
        return f"kprobe/{self.function}"

    @property
    def fentry_label(self) -> str:
        return f"fentry/{self.function}"


@dataclass(frozen=True)
class RawTracepoint:
    """A raw tracepoint: the program gets the tracepoint's C arguments (kernel objects
    such as a `struct neighbour *`), where the formatted event lacks what it needs."""

    category: str          # the tracefs directory, only to check that it exists
    event: str
    required: bool = True

    @property
    def fn_name(self) -> str:
        return f"raw_tracepoint__{self.event}"

    @property
    def label(self) -> str:
        return f"raw_tracepoint/{self.event}"


Hook = Tracepoint | Kprobe | RawTracepoint

FAMILY_HOOKS: dict[str, tuple[Hook, ...]] = {
    "drops": (RawTracepoint("skb", "kfree_skb"),),
    # tc programs follow interfaces, so the module attaches none itself: see
    # tracer/kernel/tc.py (tc_ingress / tc_egress on pod veths and uplinks)
    "tc": (),
    # per-packet NAT decisions; built only where fentry or kprobes exist (conntrack
    # events report NAT everywhere else)
    "nat": (Kprobe("nf_nat_manip_pkt", "kp_nf_nat_manip_pkt",
                   fentry_fn="fe_nf_nat_manip_pkt"),),
    # --- failures that are not drops (bpf/route.c, neigh.c, icmp.c, tcp.c,
    # sockets.c).  A family is built where its required hooks exist; an optional hook
    # the kernel lacks is reported as unavailable and the rest goes on.
    "route": (RawTracepoint("fib", "fib_table_lookup"),
              Tracepoint("fib6", "fib6_table_lookup", required=False)),
    "neigh": (RawTracepoint("neigh", "neigh_timer_handler"),
              RawTracepoint("neigh", "neigh_update"),
              RawTracepoint("neigh", "neigh_event_send_dead", required=False)),
    # icmp:icmp_send appeared in 6.9 (IPv4 only); ICMPv6 errors have no tracepoint
    # and are read off the wire by the tc programs (bpf/tc.c)
    "icmp": (Tracepoint("icmp", "icmp_send"),),
    "tcp": (Tracepoint("sock", "inet_sock_set_state"),
            Tracepoint("tcp", "tcp_retransmit_skb"),
            RawTracepoint("tcp", "tcp_send_reset", required=False),
            Tracepoint("tcp", "tcp_receive_reset", required=False),
            RawTracepoint("sock", "inet_sk_error_report", required=False)),
    "sock": tuple(Tracepoint("syscalls", f"sys_{edge}_{call}")
                  for call in ("bind", "connect", "listen", "getsockopt")
                  for edge in ("enter", "exit")),
}

FAMILIES = tuple(FAMILY_HOOKS)

# what each hook label ends with (the event or the probed function), by family: the
# same probe was a tracepoint in older versions and a raw tracepoint now, so a label is
# matched on its event, not on its whole text
_FAMILY_OF_EVENT = {(h.function if isinstance(h, Kprobe) else h.event): family
                    for family, hooks in FAMILY_HOOKS.items() for h in hooks}


def family_of(label: str) -> str | None:
    """The family of an attached probe, from the label the loader gave it; None for a
    label it does not know.  Recordings made before their header listed the families
    are read with it."""
    kind, _, where = label.partition("/")
    if kind == "tc":                 # "tc/tcx: eth0(uplink), ...": the per-interface programs
        return "tc"
    return _FAMILY_OF_EVENT.get(where.rpartition(":")[2])


def families_of(labels: Iterable[str]) -> list[str]:
    """The families that have at least one of `labels` attached, sorted."""
    return sorted({f for f in map(family_of, labels) if f is not None})
