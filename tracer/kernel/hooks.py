"""Which kernel hooks each program family attaches to, declared as data.

A family is switched on in the C module with -D WITH_<FAMILY>; its entry points are
in bpf/nodetrace.c.  Per-interface tc hooks are attached separately (they follow
interfaces, not the module).
"""

from __future__ import annotations

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

    @property
    def label(self) -> str:
        return f"kprobe/{self.function}"


Hook = Tracepoint | Kprobe

FAMILY_HOOKS: dict[str, tuple[Hook, ...]] = {
    "drops": (Tracepoint("skb", "kfree_skb"),),
    # tc programs follow interfaces, so the module attaches none itself: see
    # tracer/kernel/tc.py (tc_ingress / tc_egress on pod veths and uplinks)
    "tc": (),
    # per-packet NAT decisions; built only where kprobes exist (conntrack events
    # report NAT everywhere else)
    "nat": (Kprobe("nf_nat_manip_pkt", "kp_nf_nat_manip_pkt"),),
}

FAMILIES = tuple(FAMILY_HOOKS)
