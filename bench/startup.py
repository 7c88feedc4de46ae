"""How long `nodetrace trace` takes to start and to stop, and its peak memory, on a
node namespace with 1 and with 50 pod veths (each peer in a pod namespace of its own).

Per run: seconds from exec to the ready file (everything attached, the first event
could be read), seconds from SIGTERM to exit (drained, detached), peak RSS (VmHWM).
Also, once per shape, BCC's compile and load alone (a child that only runs
Module.load()), so the start-up's compile share is seen apart from attaching.
Reported: the median and spread over --rounds.

    python -m bench.startup [--pods 1,50] [--rounds 3] [--tracer-root DIR]

Creates namespaces nt-bstart-*, removed at the end; needs root and the kernel lock.
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
from pathlib import Path
from typing import Any

from tracer.lab.netns import Netns, batch

COMPILE_ONLY = """
import time
from tracer.kernel.loader import BuildSpec, Module
t = time.monotonic()
with Module(BuildSpec()) as m:
    m.load()
    print(time.monotonic() - t)
"""


def _node(pods: int) -> list[Netns]:
    node = Netns(f"nt-bstart-node-{os.getpid()}")
    spaces = [node] + [Netns(f"nt-bstart-p{i}-{os.getpid()}") for i in range(pods)]
    for ns in spaces:
        ns.delete()
        ns.create()
    batch(node, [f"link add name veth{i} type veth peer name eth0 netns {ns.name}"
                 for i, ns in enumerate(spaces[1:])]
          + [f"link set veth{i} up" for i in range(pods)]
          + ["link set lo up"])
    return spaces


def _hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _run(node: Netns, root: Path) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="nt-bstart-") as tmp:
        ready = Path(tmp) / "ready"
        cmd = ["ip", "netns", "exec", node.name, sys.executable, "-m", "tracer.cli.main",
               "trace", "-o", "jsonl", "--ready-file", str(ready)]
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                cwd=root, env=dict(os.environ, PYTHONPATH=str(root)))
        try:
            while not ready.exists():
                if proc.poll() is not None or time.monotonic() - t0 > 120:
                    raise RuntimeError("the tracer did not start")
                time.sleep(0.01)
            start = time.monotonic() - t0
            time.sleep(1.0)
            rss = _hwm_mib(proc.pid)
            t1 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
            stop = time.monotonic() - t1
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return {"start_s": start, "exit_s": stop, "peak_rss_mib": rss}


def _compile_s(node: Netns) -> float:
    # the checkout this runs from (python -m bench.startup): its loader
    out = node.exec(sys.executable, "-c", COMPILE_ONLY, timeout=120).stdout
    return float(out.split()[-1])


def _summary(runs: list[dict[str, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in runs[0]:
        vals = [r[k] for r in runs]
        out[k] = {"median": round(statistics.median(vals), 3),
                  "min": round(min(vals), 3), "max": round(max(vals), 3)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pods", default="1,50")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tracer-root", type=Path, default=Path.cwd())
    a = ap.parse_args()
    report: dict[str, Any] = {"rounds": a.rounds, "tracer_root": str(a.tracer_root)}
    for pods in (int(p) for p in a.pods.split(",")):
        spaces = _node(pods)
        try:
            runs = [_run(spaces[0], a.tracer_root) for _ in range(a.rounds)]
            report[f"pods_{pods}"] = {**_summary(runs),
                                      "compile_and_load_s": round(_compile_s(spaces[0]), 3)}
            print(json.dumps({f"pods_{pods}": report[f"pods_{pods}"]}), flush=True)
        finally:
            for ns in spaces:
                ns.delete()
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
