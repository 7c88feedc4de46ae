"""Throughput of forwarded traffic with the failure tracepoints attached (route, neigh,
icmp, tcp, sock), as a ratio against the untraced run in the same session.

    client ── veth ── node (forwards; traced) ── veth ── server

Forwarding is the worst case for these programs: fib:fib_table_lookup fires for every
forwarded packet (and the fib6, neigh, icmp, tcp, sock and syscall hooks for what
they see), so the node's per-packet path carries a program run even though nothing
fails.  Only the failure families are built (`--families`), so the ratio is theirs,
not the tc or drop programs'.  Untraced and traced runs alternate and each pair gives
a ratio, so drift cancels out.  Also counts the programs' runs and run time, from one
more traced run (bpf_stats slow every program run down: not in the ratio's runs).
`--families sock` measures one family alone: the sock family's syscall tracepoints
put every syscall of the machine on the kernel's slow path, a cost no program run
shows (bench/syscall_tax.py measures it).
The order of a pair is swapped every other pair; `--control` adds untraced/untraced
pairs, whose ratios show the noise floor.

    sudo .venv/bin/python -m bench.explain_throughput [--runs 5] [--seconds 4]
                                                      [--families route,sock]
                                                      [--configs tcp,tcp-gso-off,udp64] [--control]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from collections.abc import Callable

from bench.iperf import add_run_options, configs, iperf, paired, summary
from tracer.kernel.progstats import loaded_programs, stats_enabled
from tracer.lab.netns import Netns, veth

C_IP, N_C_IP, N_S_IP, S_IP = "10.99.8.2", "10.99.8.1", "10.99.9.1", "10.99.9.2"
FAMILIES = ("route", "neigh", "icmp", "tcp", "sock")


def prog_stats() -> dict[str, tuple[int, int]]:
    """name -> (run_cnt, run_time_ns) of our tracepoint programs."""
    return {p["name"]: (int(p.get("run_cnt", 0)), int(p.get("run_time_ns", 0)))
            for p in loaded_programs()
            if p.get("type") in ("tracepoint", "raw_tracepoint") and "run_cnt" in p}


class Tracer:
    """The failure families' programs, compiled once and attached for the whole session; their
    attach state is what alternates (attach/detach per run is ~0.05 s, a compile 1 s)."""

    def __init__(self, families: frozenset[str]) -> None:
        from tracer.kernel.loader import BuildSpec, Module

        self.module = Module(BuildSpec(families=families))
        self.module.load()

    def traced(self, fn: Callable[[], float]) -> tuple[float, dict[str, object]]:
        self.module.set_scope(None)
        before = prog_stats()
        self.module.attach_all()
        try:
            value = fn()
        finally:
            self._detach()
        after = prog_stats()
        runs = {n: (after[n][0] - before.get(n, (0, 0))[0],
                    after[n][1] - before.get(n, (0, 0))[1]) for n in after}
        runs = {n: r for n, r in runs.items() if r[0]}
        return value, {n: {"runs": r[0], "ns_per_run": round(r[1] / r[0], 1)}
                       for n, r in runs.items()}

    def _detach(self) -> None:
        bpf = self.module.bpf
        for tp in list(bpf.tracepoint_fds):
            bpf.detach_tracepoint(tp)
        for tp in list(bpf.raw_tracepoint_fds):
            bpf.detach_raw_tracepoint(tp)
        self.module.attached.clear()

    def close(self) -> None:
        self.module.close()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--seconds", type=float, default=4)
    p.add_argument("--families", default=",".join(FAMILIES),
                   help=f"comma-separated, of {', '.join(FAMILIES)}")
    add_run_options(p)
    args = p.parse_args()
    chosen = configs(p, args.configs)
    families = frozenset(args.families.split(","))
    if not families <= set(FAMILIES):
        p.error(f"--families: expected some of {', '.join(FAMILIES)}")
    client, node, server = Netns("nt-t5-bench-c"), Netns("nt-t5-bench-n"), Netns("nt-t5-bench-s")
    for ns in (client, node, server):
        ns.delete()
        ns.create()
    srv = None
    tracer = None
    try:
        veth(client, "eth0", node, "eth0")
        veth(node, "eth1", server, "eth0")
        client.ip("addr", "add", f"{C_IP}/24", "dev", "eth0")
        node.ip("addr", "add", f"{N_C_IP}/24", "dev", "eth0")
        node.ip("addr", "add", f"{N_S_IP}/24", "dev", "eth1")
        server.ip("addr", "add", f"{S_IP}/24", "dev", "eth0")
        client.ip("route", "add", "default", "via", N_C_IP)
        server.ip("route", "add", "default", "via", N_S_IP)
        node.sysctl("net.ipv4.ip_forward", "1")
        srv = server.popen("iperf3", "-s", "-B", S_IP, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        tracer = Tracer(families)
        results: dict[str, object] = {}
        for name, extra in chosen.items():
            def run(extra: list[str] = extra) -> float:
                return iperf(client, S_IP, extra, args.seconds)

            base, traced = paired(args.runs, run, lambda: tracer.traced(run)[0])
            control = summary(*paired(args.runs, run, run)) if args.control else None
            # bpf_stats from one more run: stats add two clock reads to every program
            # run, which the ratio's runs must not pay
            with stats_enabled():
                programs = tracer.traced(run)[1]
            results[name] = {**summary(base, traced), "programs_stats_run": programs,
                             **({"control": control} if control is not None else {})}
        results["families"] = sorted(families)
        print(json.dumps(results, indent=2))
    finally:
        if tracer is not None:
            tracer.close()
        if srv is not None:
            srv.terminate()
            srv.wait(timeout=10)
        for ns in (client, node, server):
            ns.delete()


if __name__ == "__main__":
    main()
