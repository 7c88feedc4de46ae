"""Drop storms against the untraced limit, in one run: a pod namespace floods the node
namespace's DROP rule (tracer/lab/demo.py) with every packet a new flow (random source
address and port, as a scanner or a crowd of retrying pods) at several offered rates,
and with one flow as fast as it can; each untraced twice (the control pair: their
spread is the noise floor) and traced once per round, interleaved.

Per traced run: the sender's rate, records delivered per second, records lost, the
tracer's CPU (% of one core), findings and finding updates emitted, the drops the
output counts against the rule's own counter.  Reported: medians over --rounds, the
traced/untraced ratio of the sender's median rate, the control pair's spread.

    python -m bench.storm [--rates 20000,50000,0] [--seconds 4] [--rounds 3]
        [--storm-flows 64] [--tracer-root DIR]      # rate 0: as fast as it can

Creates namespaces nt-bstorm-*, removed at the end; needs root and the kernel lock.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from bench.drop_path_cost import flood, median_of, traced
from tracer.kernel.progstats import stats_enabled
from tracer.lab.demo import DropDemo

MAX_RATE_PACKETS = 400_000    # as fast as it can: this many packets (~2-4 s here)


def _scenario(demo: DropDemo, same_flow: bool, rate: float, packets: int, rounds: int,
              root: Path, storm_flows: int) -> dict[str, Any]:
    base_a: list[float] = []
    base_b: list[float] = []
    runs: list[dict[str, float]] = []
    for _ in range(rounds):
        base_a.append(flood(demo, packets, same_flow, rate))
        runs.append(traced(demo, packets, same_flow, root, storm_flows, rate))
        base_b.append(flood(demo, packets, same_flow, rate))
    a, b = statistics.median(base_a), statistics.median(base_b)
    base = statistics.median(base_a + base_b)
    med = median_of(runs)
    return {
        "offered_pps": rate or "max", "packets": packets,
        "untraced_pps": round(base),
        "control_ratio": round(b / a, 3),      # untraced/untraced: the noise floor
        "rate_ratio": round(statistics.median(r["rate_pps"] for r in runs) / base, 3),
        "traced": med,
        "exact_totals": all(r["drops_counted"] == r["rule_counted"] for r in runs
                            if not r["lost"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", default="20000,50000,0",
                    help="offered packets/s of the random-flow storms, 0: as fast as it can")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--storm-flows", type=int, default=64)
    ap.add_argument("--tracer-root", type=Path, default=Path.cwd())
    a = ap.parse_args()
    rates = [float(r) for r in a.rates.split(",")]
    demo = DropDemo(prefix="nt-bstorm").up()
    for key in ("all", "default", "veth-pod"):
        demo.node.sysctl(f"net.ipv4.conf.{key}.rp_filter", "0")
    report: dict[str, Any] = {"rounds": a.rounds, "seconds": a.seconds,
                              "storm_flows": a.storm_flows, "tracer_root": str(a.tracer_root)}
    try:
        with stats_enabled():
            shapes = [("random_flow", False, r) for r in rates] + [("single_flow", True, 0.0)]
            for name, same, rate in shapes:
                packets = int(rate * a.seconds) if rate else MAX_RATE_PACKETS
                label = f"{name}@{int(rate) if rate else 'max'}"
                report[label] = _scenario(demo, same, rate, packets, a.rounds,
                                          a.tracer_root, a.storm_flows)
                print(json.dumps({label: report[label]}), flush=True)
    finally:
        demo.down()
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
