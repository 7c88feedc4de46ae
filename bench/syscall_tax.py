"""What the sock family's syscall tracepoints cost every process on the node.

Attaching to any syscalls:sys_enter_*/sys_exit_* tracepoint puts every syscall of
every task on the kernel's slow path (syscall_trace_enter/exit and the raw
sys_enter/sys_exit tracepoints), not only bind/listen/connect/getsockopt, and no BPF
program run shows it.  A tight C loop of getppid() measures it: ns per syscall with
nothing attached, with the sock family, and with the other failure families (which
hook no syscall) for comparison.  Rounds alternate so drift cancels out.

    sudo .venv/bin/python -m bench.syscall_tax [--rounds 5] [--calls 2000000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
from pathlib import Path

from bench.explain_throughput import Tracer

LOOP_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
int main(int argc, char **argv) {
    long n = atol(argv[1]);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++)
        syscall(SYS_getppid);
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%.2f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n);
    return 0;
}
"""


def ns_per_call(binary: Path, calls: int) -> float:
    out = subprocess.run([str(binary), str(calls)], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    return float(out)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--calls", type=int, default=2_000_000)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src, binary = Path(tmp) / "loop.c", Path(tmp) / "loop"
        src.write_text(LOOP_C)
        subprocess.run(["gcc", "-O2", "-o", str(binary), str(src)], check=True)
        tracers = {"sock": Tracer(frozenset({"sock"})),
                   "route,neigh,icmp,tcp": Tracer(frozenset({"route", "neigh", "icmp", "tcp"}))}
        try:
            samples: dict[str, list[float]] = {"none": [], **{k: [] for k in tracers}}
            for _ in range(args.rounds):
                samples["none"].append(ns_per_call(binary, args.calls))
                for name, tracer in tracers.items():
                    value, _ = tracer.traced(lambda: ns_per_call(binary, args.calls))
                    samples[name].append(value)
        finally:
            for tracer in tracers.values():
                tracer.close()
    base = statistics.median(samples["none"])
    print(json.dumps({name: {"ns_per_syscall_median": statistics.median(v),
                             "added_ns": round(statistics.median(v) - base, 1),
                             "samples": v} for name, v in samples.items()}, indent=2))


if __name__ == "__main__":
    main()
