"""`nodetrace diagnose`: named root causes, with their evidence and the fix."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from tracer.cli.options import DOCUMENT_OUTPUTS, add_output_choice, write_document
from tracer.cli.trace_cmd import (
    StopSignals,
    add_session_options,
    install_stop_signals,
    live_diagnoser,
    parse_fields,
    parse_labels,
    trace_options,
)
from tracer.diagnosis.engine import Diagnoser
from tracer.diagnosis.nodefacts import NodeFacts
from tracer.events.finding import Finding, Found
from tracer.events.records import Output
from tracer.modes.build import PodQuery
from tracer.sinks.summary import Summary, SummarySink
from tracer.sinks.table import finding_lines
from tracer.util.errors import TracerError, UsageError

log = logging.getLogger(__name__)

EXAMPLES = """examples:
  nodetrace diagnose --duration 30s --metadata objects.json  30 s of this node, explained
  kubectl get pods,svc,endpointslices,nodes -A -o json > objects.json
  nodetrace diagnose --from node.ntrec -o json                 a recording, anywhere, no root
  nodetrace diagnose --from trace.jsonl --metadata objects.json
  nodetrace diagnose --from node.ntrec --exit-code -o yaml    exit 4 when it finds something
"""


def register(sub: Any) -> None:
    p = sub.add_parser("diagnose", help="name the root causes of failing connections",
                       description="Trace (or read a recording) and turn what happens to "
                       "packets into named root causes, with the evidence each rests on and "
                       "the change that fixes it.  Findings are printed as soon as their "
                       "evidence is complete.  Kinds: docs/findings.md.  Exit 0 when done "
                       "(whatever was found, unless --exit-code), 130 after Ctrl-C, 129 "
                       "after SIGHUP.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_output_choice(p, DOCUMENT_OUTPUTS, "table",
                      "table (default): findings as they appear; json, yaml: one document "
                      "at the end, {findings: [...], coverage: {...}, summary: {...}}")
    p.add_argument("--exit-code", action="store_true",
                   help="exit 4 when a finding was made (for scripts and CI), 0 when none")
    p.add_argument("--from", dest="from_file", type=Path, metavar="FILE",
                   help="diagnose a recording (nodetrace record) or `trace -o jsonl` output "
                   "instead of tracing live (no privileges needed); - reads standard input")
    p.add_argument("--node-state", type=Path, metavar="FILE",
                   help="with --from a JSON-lines file: the node's routes, addresses and "
                   "sysctls as `nodetrace record` snapshots them (JSON)")
    add_session_options(p)   # with --metadata, --node and the pod selection
    p.set_defaults(func=main)


class FindingSink:
    """Only findings: text as they come, or kept for the JSON document."""

    def __init__(self, out: TextIO, output: str) -> None:
        self.out = out
        self.output = output

    def write(self, batch: Sequence[Output]) -> None:
        if self.output != "table":
            return
        for f in batch:
            if isinstance(f, Finding):
                self.out.write("\n".join(finding_lines(f)) + "\n\n")
                self.out.flush()

    def close(self) -> None:
        self.out.flush()


def load_node_state(path: Path, node: str | None) -> NodeFacts:
    # a file that cannot be read is a runtime error (exit 1), as in every command
    try:
        snap = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise TracerError(f"cannot read node state from {path}: {exc}") from None
    if not isinstance(snap, dict):
        raise TracerError(f"{path}: not a node-state snapshot (a JSON object)")
    if node:
        snap["node"] = node
    return NodeFacts.from_snapshot(snap)


def report(diag: Diagnoser, output: str, out: TextIO,
           summary: dict[str, Any] | None = None) -> None:
    findings = diag.all_findings()
    if output in ("json", "yaml"):
        doc: dict[str, Any] = {"findings": [f.record() for f in findings],
                               "coverage": diag.coverage.record()}
        if summary is not None:
            doc["summary"] = summary
        write_document(doc, output, out)
        return
    cov = diag.coverage.record()
    counts = ", ".join(f"{f.kind} x{f.count}" for f in findings) or "no findings"
    out.write(f"{len(findings)} finding(s): {counts}\n")
    for f in findings:
        if f.affected.distinct > 1:
            out.write(f"{f.kind} [finding {f.id}]: from {f.affected.text()}\n")
    for note in cov["notes"]:
        out.write(f"note: {note}\n")
    for c in cov["unexplained"][:5]:
        out.write(f"unexplained: {c['proto']} {c['src']} → {c['dst']}: {c['stopped']}\n")


def exit_code(args: argparse.Namespace, diag: Diagnoser, signals: StopSignals) -> int:
    if signals.exit_code():
        return signals.exit_code()
    return 4 if args.exit_code and diag.all_findings() else 0


def from_file_selection(args: argparse.Namespace) -> PodQuery | None:
    """-l/--field-selector/--pod/-n/-A with --from: parsed as live (the same parser,
    the same error for an invalid selector), the pods looked up in the file's
    metadata.  Without -n, a selection means the `default` namespace, as `kubectl -l`
    does (a file has no kubeconfig context to take it from)."""
    if args.namespace and args.all_namespaces:
        raise UsageError("-n/--namespace and -A/--all-namespaces exclude each other")
    if not (args.selector is not None or args.field_selector or args.pod or args.namespace):
        return None
    return PodQuery(labels=parse_labels(args.selector) if args.selector is not None
                    else None,
                    fields=parse_fields(args.field_selector) if args.field_selector else None,
                    namespace=None if args.all_namespaces else (args.namespace or "default"),
                    name=args.pod)


def main(args: argparse.Namespace) -> int:
    sink = FindingSink(sys.stdout, args.output)
    if args.from_file is not None:
        if args.ready_file or args.duration:
            raise UsageError("--from reads a file: --duration and --ready-file are for live "
                             "tracing")
        query = from_file_selection(args)
        from tracer.modes.diagnose_file import diagnose_file

        stop = threading.Event()
        signals = install_stop_signals(stop)
        facts = load_node_state(args.node_state, args.node) if args.node_state else None
        found = Summary()

        def emit(findings: list[Found]) -> None:
            found.count(findings)
            sink.write(findings)

        diag = diagnose_file(args.from_file, metadata=args.metadata, facts=facts,
                             node=args.node, service_cidrs=args.service_cidr,
                             cluster_cidrs=args.cluster_cidr,
                             emit=emit, stop=stop, pods_query=query)
        if "pod selection" in diag.coverage.unavailable:
            log.warning("%s", diag.coverage.unavailable["pod selection"])
        found.lost.update(diag.coverage.lost)
        summary = found.record()
        # the file's events and span are its reader's to count, not known here
        summary["events"] = summary["duration_s"] = summary["time"] = None
        report(diag, args.output, sys.stdout, summary)
        return exit_code(args, diag, signals)
    from tracer.session.run import run

    diag = live_diagnoser(args.metadata, args.node)
    stop = threading.Event()
    signals = install_stop_signals(stop)
    counted = SummarySink(sink)
    stats = run(trace_options(args, None), counted, stop, diagnoser=diag)
    counted.summary.lost.update({k: v for k, v in stats.lost.items() if v})
    report(diag, args.output, sys.stdout, counted.summary.record())
    lost = sum(stats.lost.values())
    if args.fail_on_loss and lost:
        print(f"nodetrace: error: {lost} event(s) lost (--fail-on-loss)", file=sys.stderr)
        return 1
    return exit_code(args, diag, signals)
