"""`nodetrace trace`: stream what happens to packets on this node."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

from tracer.cli.options import (
    add_output,
    add_recording_size,
    cidr,
    positive_float,
    positive_int,
    power_of_two,
    resolve_output,
    writable_path,
)
from tracer.recording.writer import RecordSpec
from tracer.session import Sink, TraceOptions, run
from tracer.sinks.jsonl import JsonlSink
from tracer.sinks.table import TableSink

EXAMPLES = """examples:
  nodetrace trace                                  drops on this node and its pods
  nodetrace trace -o jsonl --duration 30 > d.jsonl 30 s of drops as JSON lines
  ip netns exec NS nodetrace trace                 trace the node namespace NS
"""


def register(sub: Any) -> None:
    p = sub.add_parser("trace", help="trace packet drops on this node, live",
                       description="Trace what the kernel does to packets on this node: "
                       "drops with the kernel's reason, in the namespace nodetrace runs in "
                       "and its pods' namespaces.", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_output(p)
    add_session_options(p)
    p.add_argument("--record", type=writable_path, metavar="FILE",
                   help="also record the session to FILE (mode 0600) for `nodetrace replay`")
    add_recording_size(p)
    p.set_defaults(func=main)


def add_session_options(p: argparse.ArgumentParser) -> None:
    """What to trace and when to stop: shared by `trace` and `record`."""
    p.add_argument("--duration", type=positive_float, metavar="S",
                   help="stop S seconds after every probe is attached")
    p.add_argument("--ready-file", type=writable_path, metavar="F",
                   help="write F once every probe is attached (for scripts and tests)")
    p.add_argument("--stop-after", type=positive_int, metavar="N",
                   help="stop after N events")
    p.add_argument("--all-netns", action="store_true",
                   help="every network namespace on the host, not only this node and its pods")
    p.add_argument("--tc-mode", choices=("auto", "tcx", "legacy"), default="auto",
                   help="how tc programs attach: tcx links (kernel >= 6.6, removed by the "
                   "kernel if nodetrace dies) or legacy cls_bpf filters (default: auto)")
    p.add_argument("--nat-hook", choices=("auto", "fentry", "kprobe"), default="auto",
                   help="how the per-packet NAT hook attaches: fentry where doctor says "
                   "fentry loads, else kprobe (default: auto)")
    p.add_argument("--cluster-cidr", action="append", default=[], metavar="CIDR",
                   type=cidr, help="the cluster's pod network (repeatable; default: the "
                   "node's own pod networks, from its routes)")
    p.add_argument("--service-cidr", action="append", default=[], metavar="CIDR", type=cidr,
                   help="the cluster's Service network (repeatable)")
    p.add_argument("--ringbuf-pages", type=power_of_two, default=256, metavar="N",
                   help="ring buffer size in 4 KiB pages, a power of two (default 256 = 1 MiB)")
    p.add_argument("--fail-on-loss", action="store_true",
                   help="exit 1 if any event was lost (ring buffer full, flow table full, "
                   "decode errors, conntrack overflow)")
    p.add_argument("--include-unspecified", action="store_true",
                   help="also report frees with reason NOT_SPECIFIED (noisy: many are not "
                   "drops)")


def install_stop_signals(stop: threading.Event) -> None:
    def handler(_signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def trace_options(args: argparse.Namespace, record: RecordSpec | None) -> TraceOptions:
    return TraceOptions(duration_s=args.duration, ready_file=args.ready_file,
                        all_netns=args.all_netns, keep_not_specified=args.include_unspecified,
                        stop_after=args.stop_after, tc_mode=args.tc_mode,
                        nat_hook=args.nat_hook,
                        cluster_cidrs=tuple(args.cluster_cidr),
                        service_cidrs=tuple(args.service_cidr),
                        ringbuf_pages=args.ringbuf_pages, record=record)


def main(args: argparse.Namespace) -> int:
    output = resolve_output(args.output)
    sink: Sink = TableSink(sys.stdout) if output == "table" else JsonlSink(sys.stdout)
    stop = threading.Event()
    install_stop_signals(stop)
    record = None
    if args.record is not None:
        record = RecordSpec(args.record, max_size=args.max_size, rotate=args.rotate)
    stats = run(trace_options(args, record), sink, stop)
    lost = sum(stats.lost.values())
    if args.fail_on_loss and lost:
        print(f"nodetrace: error: {lost} event(s) lost (--fail-on-loss)", file=sys.stderr)
        return 1
    return 0
