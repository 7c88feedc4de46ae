"""`nodetrace trace`: stream what happens to packets on this node."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracer.cli.options import (
    add_output,
    add_recording_size,
    cidr,
    directory,
    duration_s,
    positive_int,
    power_of_two,
    resolve_output,
    writable_path,
)
from tracer.diagnosis.engine import Diagnoser
from tracer.diagnosis.names import NoNames
from tracer.metadata.index import POD_FIELDS
from tracer.metadata.kube import KubeConfig, configured, context_namespace
from tracer.metadata.selectors import FieldSelector, LabelSelector, SelectorError
from tracer.metadata.setup import MetadataOptions
from tracer.recording.writer import RecordSpec
from tracer.session.pod_scope import Selection
from tracer.sinks.jsonl import JsonlSink
from tracer.sinks.summary import Summary, SummarySink
from tracer.sinks.table import TableSink
from tracer.util.errors import TracerError, UsageError

if TYPE_CHECKING:  # tracer.session.run pulls in tracer.kernel: only the commands that trace
    from tracer.session.run import TraceOptions

log = logging.getLogger(__name__)

EXAMPLES = """examples:
  nodetrace trace                                   this node and its pods, in the TUI
  nodetrace trace -o jsonl --duration 30s > t.jsonl 30 s of events as JSON lines
  ip netns exec NS nodetrace trace                 trace the node namespace NS
  nodetrace trace -l app=web -n shop               only the web pods of this node
  nodetrace trace --metadata objects.json          names from `kubectl get -o json`
"""


def register(sub: Any) -> None:
    p = sub.add_parser("trace", help="trace what happens to packets on this node, live",
                       description="Trace what the kernel does to packets on this node, "
                       "in the namespace nodetrace runs in and its pods' namespaces: drops "
                       "with the kernel's reason, flows, NAT translations, route and "
                       "neighbour changes, TCP resets and retransmits, socket errors, and "
                       "the findings (named root causes) they add up to.  At the end, a "
                       "summary on stderr (and, with -o jsonl, a last {\"kind\": "
                       "\"summary\"} line).  Exit 130 after Ctrl-C (the events drained are "
                       "written), 129 on SIGHUP, 0 on SIGTERM or at --duration.", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_output(p)
    add_session_options(p)
    p.add_argument("--record", type=writable_path, metavar="FILE",
                   help="also record the session to FILE (mode 0600) for `nodetrace replay`")
    p.add_argument("--record-dir", type=directory, default=Path("."), metavar="DIR",
                   help="where the TUI's r key starts a recording, "
                   "nodetrace-NODE-TIME.ntrec (default: the current directory)")
    add_recording_size(p)
    p.set_defaults(func=main)


def add_session_options(p: argparse.ArgumentParser) -> None:
    """What to trace and when to stop: shared by `trace` and `record`."""
    p.add_argument("--duration", type=duration_s, metavar="DURATION",
                   help="stop this long after every probe is attached (30s, 5m, 1h30m; a "
                   "bare number is seconds)")
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
    p.add_argument("--storm-flows", type=int, default=64, metavar="N",
                   help="new flows one drop point reports one by one a second; past N its "
                   "drops are folded by destination for 5 s, with exact counts and a "
                   "distinct-source count (default 64; 0: never fold)")
    p.add_argument("--fail-on-loss", action="store_true",
                   help="exit 1 if any event was lost (ring buffer full, flow table full, "
                   "decode errors, conntrack overflow)")
    p.add_argument("--include-reason", action="append", default=[], metavar="REASON",
                   choices=FILTERED_REASONS,
                   help="also report frees with this reason, filtered by default as not "
                   f"losing traffic (repeatable; one of: {', '.join(FILTERED_REASONS)})")
    p.add_argument("--include-unspecified", action="append_const", const="NOT_SPECIFIED",
                   dest="include_reason", help="the same as --include-reason NOT_SPECIFIED")
    add_metadata_options(p)


FILTERED_REASONS = ("NOT_SPECIFIED", "QUEUE_PURGE")


def add_metadata_options(p: argparse.ArgumentParser) -> None:
    """Kubernetes names and pod selection, kubectl style."""
    g = p.add_argument_group("Kubernetes")
    g.add_argument("--kubeconfig", metavar="FILE",
                   help="kubeconfig to use (default: $KUBECONFIG, ~/.kube/config, or the "
                   "in-cluster service account)")
    g.add_argument("--context", metavar="NAME", help="kubeconfig context to use")
    g.add_argument("--metadata", action="append", default=[], type=Path, metavar="FILE",
                   help="objects from `kubectl get pods,svc,endpointslices,nodes -A -o json` "
                   "(repeatable; offline names, with or without an API)")
    g.add_argument("--no-api", action="store_true",
                   help="do not contact the Kubernetes API (files and the node only)")
    g.add_argument("-l", "--selector", metavar="SELECTOR",
                   help="trace only pods of this node matching the label selector "
                   "(kubectl syntax: k=v, k!=v, k in (a,b), k notin (a), k, !k)")
    g.add_argument("--field-selector", metavar="SELECTOR",
                   help="and matching these fields (metadata.name, metadata.namespace, "
                   "spec.nodeName, spec.hostNetwork, status.phase, status.podIP)")
    g.add_argument("--pod", metavar="NAME", help="trace only this pod (of this node)")
    g.add_argument("-n", "--namespace", metavar="NS",
                   help="namespace of the selected pods (default: the kubeconfig "
                   "context's, else default)")
    g.add_argument("-A", "--all-namespaces", action="store_true",
                   help="select pods in every namespace")
    g.add_argument("--node", metavar="NAME",
                   help="this node's name (default: the Node holding one of its addresses, "
                   "else the hostname)")


def live_diagnoser(metadata: list[Path], node: str | None) -> Diagnoser:
    """Diagnosis of the live node: its routes and sysctls re-read as it runs."""
    from tracer.diagnosis.nodefacts import NodeFacts, read_live
    from tracer.node.netchanges import NetChanges

    changes = NetChanges()     # opened before the first read: nothing slips between

    def refresh() -> NodeFacts | None:
        return read_live(node) if changes.due() else None

    diag = Diagnoser(NoNames(), read_live(node), refresh_facts=refresh)
    diag.set_metadata(("file " + ", ".join(map(str, metadata))) if metadata else "none")
    return diag


class StopSignals:
    """Which signal ended the run.  SIGINT (Ctrl-C) exits 130 after the drain, as
    shells expect of an interrupted command; SIGHUP (the terminal or the SSH session
    went away) exits 129 after the same drain, so nothing attached outlives the
    session that started it; SIGTERM is how services, kubelet and `timeout` ask for
    a stop, and a stop asked for is a clean end: 0."""

    def __init__(self) -> None:
        self.received: int | None = None

    def exit_code(self) -> int:
        if self.received in (signal.SIGINT, signal.SIGHUP):
            return 128 + self.received
        return 0


def install_stop_signals(stop: threading.Event) -> StopSignals:
    signals = StopSignals()

    def handler(signum: int, _frame: object) -> None:
        if signals.received is None:
            signals.received = signum
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)
    return signals


def log_summary(summary: Summary) -> None:
    for line in summary.lines():
        log.info("%s", line)


def selection_of(args: argparse.Namespace) -> Selection | None:
    """-l/--field-selector/--pod/-n/-A; None when no pod is selected.  A selector the
    API server would reject is a usage error (exit 2), before anything is loaded."""
    if args.namespace and args.all_namespaces:
        raise UsageError("-n/--namespace and -A/--all-namespaces exclude each other")
    if not (args.selector is not None or args.field_selector or args.pod or args.namespace):
        return None
    fields = parse_fields(args.field_selector) if args.field_selector else None
    return Selection(labels=parse_labels(args.selector) if args.selector is not None
                     else None, fields=fields, pod=args.pod,
                     namespace=None if args.all_namespaces else (
                         args.namespace or context_namespace(
                             KubeConfig(args.kubeconfig, args.context))))


def parse_labels(text: str) -> LabelSelector:
    """-l, as every command that selects pods parses it (a usage error naming the flag)."""
    try:
        return LabelSelector.parse(text)
    except SelectorError as exc:
        raise UsageError(f"-l/--selector: {exc.message}") from None


def parse_fields(text: str) -> FieldSelector:
    try:
        fields = FieldSelector.parse(text)
    except SelectorError as exc:
        raise UsageError(f"--field-selector: {exc.message}") from None
    unknown = fields.fields - set(POD_FIELDS)
    if unknown:
        raise UsageError(f"--field-selector: field label not supported: "
                         f"{', '.join(sorted(unknown))} (supported: {', '.join(POD_FIELDS)})")
    return fields


def metadata_options(args: argparse.Namespace) -> MetadataOptions:
    for path in args.metadata:
        if not path.is_file():   # a file that cannot be read: exit 1, as in every command
            raise TracerError(f"cannot read metadata from {path}: no such file")
    return MetadataOptions(kubeconfig=args.kubeconfig, context=args.context,
                           files=tuple(args.metadata), use_api=not args.no_api, node=args.node)


def trace_options(args: argparse.Namespace, record: RecordSpec | None) -> TraceOptions:
    from tracer.session.run import TraceOptions

    meta, selection = metadata_options(args), selection_of(args)
    if selection is not None and not meta.files and not (
            meta.use_api and configured(KubeConfig(meta.kubeconfig, meta.context))):
        raise UsageError("selecting pods (-l, -n, --pod, --field-selector) needs "
                         "Kubernetes metadata: a kubeconfig (--kubeconfig) or --metadata FILE")
    return TraceOptions(metadata=meta, selection=selection,
                        duration_s=args.duration, ready_file=args.ready_file,
                        all_netns=args.all_netns,
                        keep_not_specified="NOT_SPECIFIED" in args.include_reason,
                        keep_queue_purge="QUEUE_PURGE" in args.include_reason,
                        stop_after=args.stop_after, tc_mode=args.tc_mode,
                        nat_hook=args.nat_hook,
                        cluster_cidrs=tuple(args.cluster_cidr),
                        service_cidrs=tuple(args.service_cidr),
                        ringbuf_pages=args.ringbuf_pages, storm_flows=args.storm_flows,
                        record=record)


def main(args: argparse.Namespace) -> int:
    from tracer.session.run import run

    output = resolve_output(args.output)
    record = None
    if args.record is not None:
        record = RecordSpec(args.record, max_size=args.max_size, rotate=args.rotate)
    opts = trace_options(args, record)   # usage errors (exit 2) before anything else
    diagnoser = live_diagnoser(args.metadata, args.node)
    if output == "tui":
        from tui.feeds.live import LiveFeed  # Textual only when the TUI is wanted
        from tui.run import run_tui

        feed = LiveFeed(opts, node=args.node, diagnoser=diagnoser, record_dir=args.record_dir)
        status = run_tui(feed)
        lost = sum(feed.stats_lost.values())
        if args.fail_on_loss and lost:
            print(f"nodetrace: error: {lost} event(s) lost (--fail-on-loss)", file=sys.stderr)
            return 1
        return status
    sink = SummarySink(TableSink(sys.stdout) if output == "table" else JsonlSink(sys.stdout))
    stop = threading.Event()
    signals = install_stop_signals(stop)
    stats = run(opts, sink, stop, diagnoser=diagnoser)
    log_summary(sink.summary)
    lost = sum(stats.lost.values())
    if args.fail_on_loss and lost:
        print(f"nodetrace: error: {lost} event(s) lost (--fail-on-loss)", file=sys.stderr)
        return 1
    return signals.exit_code()
