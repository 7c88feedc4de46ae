"""Throughput across a traced veth pair, as a ratio against the untraced run.

Two namespaces joined by a veth; `nodetrace trace` runs in one of them, so its tc
programs sit on that end (ingress and egress) together with every tracepoint it
attaches.  Untraced and traced runs alternate, and the ratio of each pair is taken,
so drift between runs cancels out.  Also reports each tc program's own cost per run
(BPF_PROG_TEST_RUN, 100 000 repeats), and, from the kernel's run-time statistics
(bpf_stats) during one more traced run, every program that ran: runs/s, ns/run, and the
share of one CPU they took together; and the tracer process's own CPU seconds.
The order of a pair is swapped every other pair; `--control` adds untraced/untraced
pairs, whose ratios show the noise floor.

    sudo .venv/bin/python -m bench.tc_throughput [--runs 5] [--seconds 4]
                                                 [--configs tcp,tcp-gso-off,udp64] [--control]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.iperf import add_run_options, configs, iperf, paired, summary
from tracer.kernel.progstats import programs_of, stats, stats_enabled
from tracer.lab.netns import Netns, veth

A_IP, B_IP = "10.99.7.1", "10.99.7.2"


def cpu_s(pid: int) -> float:
    """Time on CPU of a process's threads, in seconds, to the nanosecond
    (/proc/PID/task/*/schedstat; utime+stime count 10 ms ticks, too coarse for a
    tracer that should take a few ms a second)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue   # a thread that just ended
    return total / 1e9


TRACER_CPU: list[float] = []   # the tracer's own CPU during each traced run
PROG_RUNS: dict[str, list[int]] = {}   # program name -> [runs, ns] over the traced runs


def with_tracer(a: Netns, fn: object) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        ready = Path(tmp) / "ready"
        tracer = a.popen(sys.executable, "-m", "tracer.cli.main", "trace", "-o", "jsonl",
                         "--ready-file", str(ready), stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while not ready.exists():
                if tracer.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("tracer did not attach")
                time.sleep(0.05)
            ids = programs_of(tracer.pid)   # `ip netns exec` execs: the tracer's pid
            before, progs = cpu_s(tracer.pid), stats(ids)
            result: float = fn()  # type: ignore[operator]
            TRACER_CPU.append(cpu_s(tracer.pid) - before)
            for pid, after in stats(ids).items():
                runs = PROG_RUNS.setdefault(after.name, [0, 0])
                runs[0] += after.run_cnt - progs[pid].run_cnt
                runs[1] += after.run_time_ns - progs[pid].run_time_ns
            return result
        finally:
            tracer.terminate()
            tracer.wait(timeout=30)


def prog_costs() -> dict[str, float]:
    import socket
    import struct

    from tracer.kernel.libbpf import prog_test_run
    from tracer.kernel.loader import BuildSpec, Module

    eth = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00"
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 1, 0, 64, 6, 0,
                     socket.inet_aton(A_IP), socket.inet_aton(B_IP))
    tcp = struct.pack("!HHIIBBHHH", 40000, 5201, 1, 1, 0x50, 0x10, 1000, 0, 0)
    with Module(BuildSpec(families=frozenset({"tc"}))) as m:
        m.load()
        return {f"tc_{d}": float(prog_test_run(p.fd, eth + ip + tcp, repeat=100_000).duration_ns)
                for d, p in m.tc_programs().items()}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--seconds", type=float, default=4)
    add_run_options(p)
    args = p.parse_args()
    chosen = configs(p, args.configs)
    a, b = Netns("nt-bench-a"), Netns("nt-bench-b")
    for ns in (a, b):
        ns.delete()
        ns.create()
    server = None
    try:
        veth(a, "eth0", b, "eth0")
        a.ip("addr", "add", f"{A_IP}/24", "dev", "eth0")
        b.ip("addr", "add", f"{B_IP}/24", "dev", "eth0")
        server = b.popen("iperf3", "-s", "-B", B_IP, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        results: dict[str, dict[str, object]] = {}
        for name, extra in chosen.items():
            def untraced(extra: list[str] = extra) -> float:
                return iperf(a, B_IP, extra, args.seconds)

            base, traced = paired(args.runs, untraced, lambda: with_tracer(a, untraced))
            results[name] = summary(base, traced)
            if args.control:
                results[name]["control"] = summary(*paired(args.runs, untraced, untraced))
            # on 2 cores both are busy with iperf: what the tracer uses comes off them
            results[name]["tracer_cpu_s"] = [round(c, 4) for c in TRACER_CPU]
            # in-kernel cost (bpf_stats) from one more traced run: not from the ratio's
            # runs, since stats add two clock reads (~40 ns here) to every program run
            PROG_RUNS.clear()
            with stats_enabled():
                with_tracer(a, untraced)
            traced_s = args.seconds
            results[name]["bpf_stats"] = {
                prog: {"runs_per_s": round(n / traced_s), "ns_per_run": round(ns / n, 1)}
                for prog, (n, ns) in sorted(PROG_RUNS.items()) if n}
            results[name]["bpf_cpu_share"] = round(
                sum(ns for _, ns in PROG_RUNS.values()) / (traced_s * 1e9), 4)
            TRACER_CPU.clear()
            PROG_RUNS.clear()
        results["prog_ns_per_run"] = prog_costs()  # type: ignore[assignment]
        print(json.dumps(results, indent=2))
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        for ns in (a, b):
            ns.delete()


if __name__ == "__main__":
    main()
