"""The kernel's cost per dropped packet under a drop flood, and what it does to the
sender: a pod namespace floods the node namespace's DROP rule (tracer/lab/demo.py)
through a raw socket, with one flow or with every packet a new flow (random source
address and port, tracer/lab/flood.py), untraced and traced (`nodetrace trace -o jsonl`
scoped to the node namespace, with bpf_stats on).

Per run: the sender's rate; traced, also the ns per run of the kfree_skb program and
of the tc ingress program (bpf_stats: run time / run count, the kernel's own figures),
records delivered per second, records lost, the tracer's CPU.  Reported: the median
over --rounds of each, and the ratio traced/untraced of the sender's median rate.

    python -m bench.drop_path_cost [--packets 200000] [--rounds 3] [--storm-flows 64]
        [--tracer-root DIR]   # run the tracer of another checkout (a before/after)

Creates namespaces nt-bcost-*, removed at the end; needs root and the kernel lock.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tracer.kernel.progstats import programs_of, stats, stats_enabled
from tracer.lab.demo import DROPPED_TCP_PORT, DropDemo


def flood(demo: DropDemo, packets: int, same_flow: bool, rate: float = 0) -> float:
    """The sender's rate (packets/s) of one flood; `rate` 0: as fast as it can."""
    out = demo.pod.exec(sys.executable, "-m", "tracer.lab.flood", demo.node_addr.v4,
                        str(DROPPED_TCP_PORT), "--count", str(packets), "--flags", "A",
                        "--rate", str(rate),
                        *(["--same-flow"] if same_flow else []), timeout=600).stdout
    doc = json.loads(out)
    return float(doc["sent"]) / float(doc["seconds"])


def rule_packets(demo: DropDemo) -> int:
    """The DROP rule's own packet counter (the kernel's count of what it dropped)."""
    out = demo.node.exec("iptables", "-L", "INPUT", "-v", "-x", "-n").stdout
    return sum(int(line.split()[0]) for line in out.splitlines()
               if " DROP " in f" {line} " and f"dpt:{DROPPED_TCP_PORT}" in line)


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def traced(demo: DropDemo, packets: int, same_flow: bool, root: Path,
           storm_flows: int, rate: float = 0) -> dict[str, float]:
    """One flood under `nodetrace trace -o jsonl`: the sender's rate, the programs'
    cost, records delivered and lost, the tracer's CPU, and what the output held."""
    with tempfile.TemporaryDirectory(prefix="nt-bcost-") as tmp:
        ready, out = Path(tmp) / "ready", Path(tmp) / "out.jsonl"
        cmd = ["ip", "netns", "exec", demo.node.name, sys.executable, "-m",
               "tracer.cli.main", "trace", "-o", "jsonl", "--ready-file", str(ready)]
        if storm_flows != 64:
            cmd += ["--storm-flows", str(storm_flows)]
        env = dict(os.environ, PYTHONPATH=str(root))
        with out.open("wb") as sink:
            proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.DEVNULL, cwd=root,
                                    env=env)
            try:
                deadline = time.monotonic() + 60
                while not ready.exists():
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("the tracer did not start")
                    time.sleep(0.05)
                ids = programs_of(proc.pid)
                before, cpu0, t0 = stats(ids), cpu_s(proc.pid), time.monotonic()
                counter0 = rule_packets(demo)
                sent_pps = flood(demo, packets, same_flow, rate)
                time.sleep(1.5)   # the records of the storm's last second
                after, cpu1, t1 = stats(ids), cpu_s(proc.pid), time.monotonic()
                counter1 = rule_packets(demo)
            finally:
                proc.send_signal(signal.SIGINT)
                proc.wait(timeout=60)
        kinds: Counter[str] = Counter()
        lost = dropped = 0
        for line in out.read_bytes().splitlines():
            rec = json.loads(line)
            kinds[rec.get("kind", "?")] += 1
            if rec.get("kind") == "lost":
                lost += int(rec["count"])
            elif rec.get("kind") == "drop" and (rec.get("dst") or {}).get("port") == \
                    DROPPED_TCP_PORT:
                dropped += int(rec.get("count", 1))
    res = {"rate_pps": sent_pps,
           "records_per_s": (kinds["drop"] + kinds["flow"]) / (t1 - t0),
           "drop_records": kinds["drop"], "flow_records": kinds["flow"], "lost": lost,
           "drops_counted": dropped, "rule_counted": counter1 - counter0,
           "findings": kinds["finding"],
           "finding_updates": kinds["finding-update"],
           "tracer_cpu_pct": 100 * (cpu1 - cpu0) / (t1 - t0)}
    for pid_, a in after.items():
        b = before.get(pid_)
        runs = a.run_cnt - (b.run_cnt if b else 0)
        if runs and a.name in ("kfree_skb", "raw_tracepoint__kfree_skb", "ingress",
                               "tc_ingress"):
            key = "drop_hook" if "kfree" in a.name else "tc_ingress"
            res[f"{key}_ns_per_run"] = (a.run_time_ns - (b.run_time_ns if b else 0)) / runs
            res[f"{key}_runs"] = runs
    return res


def median_of(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(statistics.median(r[k] for r in rows), 1)
            for k in rows[0] if all(k in r for r in rows)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=200000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--storm-flows", type=int, default=64)
    ap.add_argument("--tracer-root", type=Path, default=Path.cwd())
    a = ap.parse_args()
    demo = DropDemo(prefix="nt-bcost").up()
    for key in ("all", "default", "veth-pod"):
        demo.node.sysctl(f"net.ipv4.conf.{key}.rp_filter", "0")
    report: dict[str, Any] = {"packets": a.packets, "rounds": a.rounds,
                              "tracer_root": str(a.tracer_root), "storm_flows": a.storm_flows}
    try:
        with stats_enabled():
            for name, same in (("single_flow", True), ("random_flow", False)):
                untraced, traced_runs = [], []
                for _ in range(a.rounds):   # interleaved: drift hits both alike
                    untraced.append(flood(demo, a.packets, same))
                    traced_runs.append(traced(demo, a.packets, same, a.tracer_root,
                                              a.storm_flows))
                base = statistics.median(untraced)
                report[name] = {
                    "untraced_pps": round(base),
                    "untraced_spread_pct": round(100 * (max(untraced) - min(untraced)) / base, 1),
                    "traced": median_of(traced_runs),
                    "rate_ratio": round(
                        statistics.median(t["rate_pps"] for t in traced_runs) / base, 3)}
    finally:
        demo.down()
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
