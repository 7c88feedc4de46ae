"""lost: events the pipeline knows it did not deliver, by layer.  Not a kernel
record: the live source reads the kernel's per-CPU loss counters (`enum loss_slot`,
BPF_PERCPU_ARRAY "loss") and its own decode errors, and reports what grew."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from tracer.events.common import NO_LABELS, Labels
from tracer.events.family import Family
from tracer.util.timefmt import rfc3339_ns


class LossSlot(IntEnum):
    """enum loss_slot: per-CPU kernel-side loss counters."""

    RINGBUF_RESERVE = 0
    FLOW_MAP_FULL = 1
    RATE_LIMITED = 2      # tcp reset_sent records suppressed by bpf/tcp.c's rate limit


LOSS_SLOTS = 8            # the counters' array size (LOSS_SLOTS in events.h)


@dataclass(frozen=True, slots=True)
class LostEvent:
    """Events the pipeline knows it did not deliver, by layer."""

    wall_ns: int
    layer: str            # "ringbuf_reserve" (kernel), "decode"
    count: int            # since the previous lost record of this layer
    total: int

    kind = "lost"


def lost_record(ev: LostEvent) -> dict[str, Any]:
    return {"kind": "lost", "time": rfc3339_ns(ev.wall_ns), "layer": ev.layer,
            "count": ev.count, "total": ev.total}


def lost_line(ev: LostEvent, labels: Labels = NO_LABELS) -> tuple[str, str]:
    return ("-", f"!! LOST {ev.count} events ({ev.layer}); {ev.total} in total")


def parse_lost(rec: dict[str, Any], t: int) -> LostEvent:
    return LostEvent(t, rec["layer"], rec["count"], rec["total"])


FAMILY = Family(name="lost", model=LostEvent, record=lost_record, line=lost_line,
                parse=parse_lost, c_enums=(("LOSS", LossSlot),))
