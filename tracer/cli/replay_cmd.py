"""`nodetrace replay`: a recording's events through today's pipeline, anywhere.

Needs no privileges, no BCC and no network: nothing here imports tracer.kernel's BCC
side, and every fact about the recorded node comes from the file.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracer.cli.options import (
    OUTPUTS,
    TimeBound,
    add_output_choice,
    jobs,
    offset_ns,
    resolve_output,
    speed,
    time_bound,
)
from tracer.cli.replay_worker import LineWorker, WorkerLines
from tracer.cli.trace_cmd import install_stop_signals, log_summary
from tracer.events.model import Event
from tracer.modes import build
from tracer.modes.drive import drive
from tracer.recording.opener import STDIN, OpenedInput, open_input
from tracer.recording.reader import EndRecord, Header, RecordingReader
from tracer.sinks.jsonl import JsonlSink
from tracer.sinks.sink import Sink
from tracer.sinks.summary import Summary, SummarySink
from tracer.sinks.table import TableSink
from tracer.util.errors import RecordingFormatError, UsageError
from tracer.util.timefmt import rfc3339_ns

if TYPE_CHECKING:
    from tui.feeds.replay import ReplayFeed

log = logging.getLogger(__name__)

# A batch allocates some ten container objects per event that live until it is
# written: with the default young generation (700) they are traversed several times,
# promoted, and then traversed again by full collections that also walk the connection
# table and the metadata index, 15-20 % of a fast replay.  Young collections every
# few batches instead, and the setup's objects frozen out of them.
YOUNG_GENERATION = 50_000


@contextlib.contextmanager
def batch_sized_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(YOUNG_GENERATION, *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()

EXAMPLES = """examples:
  nodetrace replay node.ntrec                         in the TUI on a terminal, else jsonl
  nodetrace replay node.ntrec -o jsonl > events.jsonl the lines `trace -o jsonl` printed
  nodetrace replay node.ntrec -o table --speed 1      at the pace it was recorded
  nodetrace replay node.ntrec --since 5m              the recording's last 5 minutes
  nodetrace replay node.ntrec --from-offset 30s --to-offset 2m
  nodetrace replay node.ntrec --since 2026-01-05T03:12:00Z --until 2026-01-05T03:20:00Z
"""


def register(sub: Any) -> None:
    p = sub.add_parser("replay", help="replay a recording (no root, no BCC, no network)",
                       description="Replay a recording made by `nodetrace record` or "
                       "`nodetrace trace --record` through today's pipeline.  On a "
                       "terminal the TUI opens with the whole recording loaded at once; "
                       "-o table and -o jsonl print it as fast as the output takes it "
                       "(like tcpdump -r).  --speed X plays it at X times the recorded pace "
                       "instead, in any output.  At the end, a summary on stderr (and, with "
                       "-o jsonl, a last {\"kind\": \"summary\"} line).",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", type=Path, metavar="FILE",
                   help="a recording (docs/recording-format.md) or `trace -o jsonl` lines; "
                   "- reads standard input")
    add_output_choice(p, OUTPUTS, None,
                      "output format (default: the TUI on a terminal, else jsonl)")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=speed, metavar="X",
                      help="replay at X times the recorded pace (1 = as it happened; "
                      "default: as fast as possible)")
    pace.add_argument("--fast", action="store_true",
                      help="as fast as possible (the default)")
    since = p.add_mutually_exclusive_group()
    since.add_argument("--since", type=time_bound, metavar="T",
                       help="skip events before T: a duration before the recording's end "
                       "(5m, 1h30m: its last 5 minutes) or an RFC 3339 time "
                       "(2026-01-05T03:12:00Z)")
    since.add_argument("--from-offset", type=offset_ns, metavar="DURATION",
                       help="skip events before this long after the recording's start "
                       "(30s, 2m)")
    until = p.add_mutually_exclusive_group()
    until.add_argument("--until", type=time_bound, metavar="T",
                       help="skip events after T (as --since)")
    until.add_argument("--to-offset", type=offset_ns, metavar="DURATION",
                       help="skip events after this long after the recording's start")
    p.add_argument("--metadata", type=Path, metavar="FILE", action="append", default=[],
                   help="Kubernetes objects (kubectl -o json List) to name objects in "
                   "findings (default: the metadata the recording carries)")
    p.add_argument("--node", metavar="NAME",
                   help="the recorded node's Kubernetes name (default: its host name)")
    p.add_argument("-j", "--jobs", type=jobs, metavar="N", default=None,
                   help="processes for a fast -o jsonl replay: 2 renders lines on a second "
                   "core, 1 does not (default: 2 when the machine has two cores for it; "
                   "more are not used)")
    p.set_defaults(func=main)


def window(args: argparse.Namespace, start_ns: int,
           end_ns: Callable[[], int]) -> tuple[int | None, int | None]:
    """--since/--until/--from-offset/--to-offset as wall-clock bounds in ns.  `end_ns`
    is only called for a duration before the end (it may read the whole file)."""
    def bound(t: TimeBound | None, offset: int | None) -> int | None:
        if offset is not None:
            return start_ns + offset
        if t is None:
            return None
        return t.wall_ns if t.wall_ns is not None else t.resolve(end_ns())

    since = bound(args.since, args.from_offset)
    until = bound(args.until, args.to_offset)
    if since is not None and until is not None and until < since:
        raise UsageError("the window ends before it starts: --until/--to-offset is "
                         "earlier than --since/--from-offset")
    return since, until


def recording_end_ns(path: Path) -> int:
    """The wall time of a recording's last event (its end record's when it has one):
    what `--since 5m` counts back from.  Decodes the file once more; only a window
    relative to the end asks for it."""
    last = 0
    with RecordingReader(path) as reader:
        for chunk in reader.chunks():
            if type(chunk) is list:
                if chunk:
                    last = max(last, chunk[-1].wall_ns)
            elif isinstance(chunk, EndRecord):
                return chunk.wall_ns
            elif isinstance(chunk, Event):
                last = max(last, chunk.wall_ns)
    return last or reader.header.started_wall_ns


def describe(path: Path, h: Header) -> str:
    text = (f"replaying {path}: node {h.node or '?'}, kernel {h.kernel_release or '?'}, "
            f"recorded {rfc3339_ns(h.started_wall_ns)} by nodetrace {h.nodetrace_version} "
            f"(format {h.version[0]}.{h.version[1]})")
    if h.part:
        text += f", part {h.part}"
    if h.unavailable:
        text += "; not attached then: " + ", ".join(h.unavailable)
    return text


def main_tui(args: argparse.Namespace) -> int:
    """The TUI on a recording, or on a file of `trace -o jsonl` lines."""
    from tui.run import run_tui  # Textual only when the TUI is wanted

    return run_tui(tui_feed(args))


def tui_feed(args: argparse.Namespace) -> ReplayFeed:
    """The TUI's feed of FILE, with the window of the flags applied."""
    from tui.feeds.replay import ReplayFeed, load

    if str(args.file) == STDIN:
        raise UsageError("-o tui reads the keyboard on standard input: give it a file")
    loaded = load(args.file)
    for warning in loaded.warnings:
        log.warning("%s", warning)
    # the whole file at once unless a pace is asked for (+/- in the TUI change it),
    # as -o table and -o jsonl print it: what the help promises
    speed = args.speed or 0.0
    feed = ReplayFeed(loaded.records, loaded.status, speed=speed,
                      pod_labels=loaded.pod_labels, events=loaded.events)
    since, until = window(args, feed.start_ns, lambda: feed.end_ns)
    if until is not None:
        keep = sum(1 for t in feed.times if t <= until)    # times never go backwards
        feed = ReplayFeed(loaded.records[:keep], loaded.status, speed=speed,
                          pod_labels=loaded.pod_labels,
                          events=loaded.events[:keep] if loaded.events else None)
    if since is not None:
        feed.seek(since - feed.start_ns)
    return feed


def _jobs(args: argparse.Namespace) -> int:
    if args.jobs is not None:
        return int(args.jobs)
    return 2 if len(os.sched_getaffinity(0)) >= 2 else 1


def main(args: argparse.Namespace) -> int:
    output = resolve_output(args.output)
    if output == "tui":
        return main_tui(args)
    opened = open_input(args.file)
    if opened.kind == "jsonl":
        with opened:
            return replay_jsonl(args, opened, output)
    with RecordingReader(opened) as reader:
        h = reader.header
        since, until = window(args, h.started_wall_ns, lambda: _end_of(opened))
        log.info("%s", describe(reader.path, h))
        if (unchecked := reader.unchecked()) is not None:
            log.info("%s", unchecked)
        sink: Sink = TableSink(sys.stdout) if output == "table" else JsonlSink(sys.stdout)
        rep = build.replay(reader, metadata=args.metadata, node=args.node, speed=args.speed,
                           since_ns=since, until_ns=until)
        stop = threading.Event()
        # SIGTERM as SIGINT: the output so far ends with whole lines, the worker goes
        signals = install_stop_signals(stop)
        lines = sink if isinstance(sink, JsonlSink) else None
        # the worker opens the file again: not standard input
        worker = LineWorker.start(args, since, until) \
            if lines is not None and args.speed is None and _jobs(args) > 1 \
            and opened.path is not None else None
        if worker is not None and lines is not None:
            sink = WorkerLines(lines, worker)
        counted = SummarySink(sink, Summary(h.started_wall_ns), lines=lines,
                              end_wall_ns=rep.end_wall_ns)

        def warnings() -> list[str]:
            said = list(reader.warnings())
            if rep.source.end is None and reader.truncated_at is None \
                    and reader.damaged_at is None and not stop.is_set():
                said.append(f"{reader.name} has no end record: the recording did not finish")
            return said

        try:
            with batch_sized_gc():
                drive(rep.source, rep.pipeline, [counted], stop, end_wall_ns=rep.end_wall_ns,
                      loss_warning="the recorded session lost events", warnings=warnings)
        finally:
            if worker is not None:
                worker.close()
        log_summary(counted.summary)
    return signals.exit_code()


def _end_of(opened: OpenedInput) -> int:
    if opened.path is None:
        raise UsageError("a window counted back from the end needs a file, not standard "
                         "input: use --from-offset/--to-offset or an RFC 3339 time")
    return recording_end_ns(opened.path)


def _no_end() -> int:
    raise UsageError("a window counted back from the end needs a recording: with JSON "
                     "lines use --from-offset/--to-offset or an RFC 3339 time")


def replay_jsonl(args: argparse.Namespace, opened: OpenedInput, output: str) -> int:
    """`trace -o jsonl` lines through the same stages as a recording: findings derived
    again; names only from --metadata (the lines' names are not read back), and the
    offsets counted from the first event."""
    from tracer.events.jsonl import JsonlEvents

    if args.speed is not None:
        raise UsageError("--speed needs a recording: JSON lines replay as fast as they print")
    events = JsonlEvents(opened.text_lines())
    it = iter(events)
    first = next(it, None)
    if first is None:     # before any output: the error is the whole answer
        raise RecordingFormatError(f"{opened.name}: none of its {events.skipped} line(s) is "
                                   "an event of `trace -o jsonl`")
    log.info("replaying %s: JSON lines (no recorded node facts)", opened.name)
    since, until = window(args, first.wall_ns, _no_end)
    windowed = (ev for ev in itertools.chain((first,), it)
                if (since is None or ev.wall_ns >= since)
                and (until is None or ev.wall_ns <= until))
    run = build.diagnose_events(windowed, metadata=args.metadata)
    sink: Sink = TableSink(sys.stdout) if output == "table" else JsonlSink(sys.stdout)
    counted = SummarySink(sink, Summary(first.wall_ns),
                          end_wall_ns=lambda: counted.summary.last_wall_ns or None)
    stop = threading.Event()
    signals = install_stop_signals(stop)
    drive(run.source, run.pipeline, [counted], stop, loss_warning=None)
    if events.skipped:
        log.warning("%s: %d line(s) that are not events skipped", opened.name, events.skipped)
    log_summary(counted.summary)
    return signals.exit_code()
