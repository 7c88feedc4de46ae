"""Storm aggregation, shared by the drop and flow families: when one drop point or
one tc hook sees more new flows than its budget, the kernel folds them by destination
(bpf/include/common.h, "Storms"); a folded record carries an Aggregation, with
distinct sources and flows as HyperLogLog sketches (their registers on the wire)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

SKETCH_REGS = 32    # STORM_SKETCH_REGS: HyperLogLog registers a sketch


def merge_sketch(a: bytes, b: bytes) -> bytes:
    """The sketch of the union of two sets: registers' maxima."""
    return bytes(map(max, a, b))


@dataclass(frozen=True, slots=True)
class Aggregation:
    """A record standing for the packets of many flows (bpf/drops.c, bpf/tc.c)."""

    by: tuple[str, ...]   # the fields kept; the source and its port are summarised
    flows: int            # distinct (source, port) folded since the key began (sketch)
    sources: int          # distinct source addresses folded since the key began
    exact_sources: bool   # `sources` counted (one source), not estimated
    interval_ms: int      # the time since the key's previous record
    packets: int          # packets folded since the key began (exact)


def sketch_estimate(regs: bytes) -> int:
    """Distinct items in a HyperLogLog of len(regs) registers (bpf/include/common.h:
    sketch_add); linear counting while registers are empty, as the small-range
    correction says.  Standard error 1.04/sqrt(32): about 18 %."""
    m = len(regs)
    if not any(regs):
        return 0
    est = 0.697 * m * m / sum(2.0 ** -r for r in regs)
    zeros = regs.count(0)
    if est <= 2.5 * m and zeros:
        est = m * math.log(m / zeros)
    return max(1, round(est))


def aggregation(by: tuple[str, ...], src_multi: int, src_regs: bytes, flow_regs: bytes,
                window_ms: int, packets: int) -> Aggregation:
    one = not src_multi
    # a fold cannot hold more flows (or sources) than packets: the sketch's error
    # would otherwise claim them (32 registers overshoot a few thousand by half)
    cap = max(1, packets)
    return Aggregation(by=by,
                       flows=min(cap, max(1, sketch_estimate(flow_regs))),
                       sources=1 if one else min(cap, max(2, sketch_estimate(src_regs))),
                       exact_sources=one, interval_ms=window_ms, packets=packets)


def aggregation_record(a: Aggregation) -> dict[str, Any]:
    return {"by": list(a.by), "flows": a.flows, "sources": a.sources,
            "exact_sources": a.exact_sources, "interval_ms": a.interval_ms,
            "packets": a.packets}


def parse_aggregation(rec: Any) -> Aggregation | None:
    if not isinstance(rec, dict):
        return None
    return Aggregation(tuple(rec.get("by") or ()), rec.get("flows", 0), rec.get("sources", 0),
                       bool(rec.get("exact_sources")), rec.get("interval_ms", 0),
                       rec.get("packets", 0))
