"""`nodetrace diagnose`: named root causes, with their evidence and the fix."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from tracer.cli.trace_cmd import (
    add_session_options,
    install_stop_signals,
    live_diagnoser,
    trace_options,
)
from tracer.diagnosis.engine import Diagnoser
from tracer.diagnosis.nodefacts import NodeFacts
from tracer.events.finding import Finding
from tracer.events.records import Output
from tracer.sinks.table import finding_lines
from tracer.util.errors import UsageError

EXAMPLES = """examples:
  nodetrace diagnose --duration 30 --metadata objects.json   30 s of this node, explained
  kubectl get pods,svc,endpointslices,nodes -A -o json > objects.json
  nodetrace diagnose --from node.ntrec -o json                 a recording, anywhere, no root
  nodetrace diagnose --from trace.jsonl --metadata objects.json
"""


def register(sub: Any) -> None:
    p = sub.add_parser("diagnose", help="name the root causes of failing connections",
                       description="Trace (or read a recording) and turn what happens to "
                       "packets into named root causes, with the evidence each rests on and "
                       "the change that fixes it.  Findings are printed as soon as their "
                       "evidence is complete.  Kinds: docs/findings.md.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--output", choices=("text", "json"), default="text",
                   help="text (default): findings as they appear; json: one document at the "
                   "end, {\"findings\": [...], \"coverage\": {...}}")
    p.add_argument("--from", dest="from_file", type=Path, metavar="FILE",
                   help="diagnose a recording (nodetrace record) or `trace -o jsonl` output "
                   "instead of tracing live (no privileges needed)")
    p.add_argument("--node-state", type=Path, metavar="FILE",
                   help="with --from a JSON-lines file: the node's routes, addresses and "
                   "sysctls as tracer/recording/nodestate.py snapshots them (JSON)")
    add_session_options(p)   # with --metadata, --node and the pod selection
    p.set_defaults(func=main)


class FindingSink:
    """Only findings: text as they come, or kept for the JSON document."""

    def __init__(self, out: TextIO, output: str) -> None:
        self.out = out
        self.output = output

    def write(self, batch: Sequence[Output]) -> None:
        if self.output != "text":
            return
        for f in batch:
            if isinstance(f, Finding):
                self.out.write("\n".join(finding_lines(f)) + "\n\n")
                self.out.flush()

    def close(self) -> None:
        self.out.flush()


def load_node_state(path: Path, node: str | None) -> NodeFacts:
    try:
        snap = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read node state from {path}: {exc}") from None
    if not isinstance(snap, dict):
        raise UsageError(f"{path}: not a node-state snapshot (a JSON object)")
    if node:
        snap["node"] = node
    return NodeFacts.from_snapshot(snap)


def report(diag: Diagnoser, output: str, out: TextIO) -> None:
    findings = diag.all_findings()
    if output == "json":
        json.dump({"findings": [f.record() for f in findings],
                   "coverage": diag.coverage.record()}, out, indent=2)
        out.write("\n")
        return
    cov = diag.coverage.record()
    counts = ", ".join(f"{f.kind} x{f.count}" for f in findings) or "no findings"
    out.write(f"{len(findings)} finding(s): {counts}\n")
    for note in cov["notes"]:
        out.write(f"note: {note}\n")
    for c in cov["unexplained"][:5]:
        out.write(f"unexplained: {c['proto']} {c['src']} → {c['dst']}: {c['stopped']}\n")


def main(args: argparse.Namespace) -> int:
    sink = FindingSink(sys.stdout, args.output)
    if args.from_file is not None:
        if args.ready_file or args.duration:
            raise UsageError("--from reads a file: --duration and --ready-file are for live "
                             "tracing")
        if not args.from_file.is_file():
            raise UsageError(f"no such file: {args.from_file}")
        from tracer.diagnosis.offline import diagnose_file

        stop = threading.Event()
        install_stop_signals(stop)
        facts = load_node_state(args.node_state, args.node) if args.node_state else None
        diag = diagnose_file(args.from_file, metadata=args.metadata, facts=facts,
                             node=args.node, service_cidrs=args.service_cidr,
                             cluster_cidrs=args.cluster_cidr,
                             emit=lambda fs: sink.write(fs), stop=stop)
        report(diag, args.output, sys.stdout)
        return 0
    from tracer.session.run import run

    diag = live_diagnoser(args.metadata, args.node)
    stop = threading.Event()
    install_stop_signals(stop)
    stats = run(trace_options(args, None), sink, stop, diagnoser=diag)
    report(diag, args.output, sys.stdout)
    lost = sum(stats.lost.values())
    if args.fail_on_loss and lost:
        print(f"nodetrace: error: {lost} event(s) lost (--fail-on-loss)", file=sys.stderr)
        return 1
    return 0
