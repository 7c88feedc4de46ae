"""`nodetrace replay`: a recording's events through today's pipeline, anywhere.

Needs no privileges, no BCC and no network: nothing here imports tracer.kernel's BCC
side, and every fact about the recorded node comes from the file.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tracer.cli.options import OUTPUTS, positive_float, positive_int, resolve_output
from tracer.cli.replay_worker import LineWorker
from tracer.pipeline.replay import ReplayPipeline
from tracer.recording.reader import Header, RecordingReader
from tracer.sinks.jsonl import JsonlSink
from tracer.sinks.sink import Sink
from tracer.sinks.table import TableSink
from tracer.util.errors import UsageError
from tracer.util.timefmt import parse_rfc3339, rfc3339_ns

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
  nodetrace replay node.ntrec                         every event, as fast as it prints
  nodetrace replay node.ntrec -o jsonl > events.jsonl the lines `trace -o jsonl` printed
  nodetrace replay node.ntrec --speed 1               at the pace it was recorded
  nodetrace replay node.ntrec --since 30s --until 2m  a window, from the recording's start
  nodetrace replay node.ntrec --since 2026-01-05T03:12:00Z
"""

_REL = re.compile(r"^\+?(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNIT_NS = {"ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9, None: 10**9}
_ABS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$")


def register(sub: Any) -> None:
    p = sub.add_parser("replay", help="replay a recording (no root, no BCC, no network)",
                       description="Replay a recording made by `nodetrace record` or "
                       "`nodetrace trace --record` through today's pipeline.  Reads as fast "
                       "as the output takes it unless --speed is given (like tcpdump -r).",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", type=Path, metavar="FILE",
                   help="a recording (docs/recording-format.md)")
    p.add_argument("-o", "--output", choices=OUTPUTS, default=None,
                   help="output format (default: table on a terminal, else jsonl; tui: "
                   "the interactive view, once built)")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=positive_float, metavar="X",
                      help="replay at X times the recorded pace (1 = as it happened)")
    pace.add_argument("--fast", action="store_true",
                      help="as fast as possible (the default)")
    p.add_argument("--since", metavar="T",
                   help="skip events before T: an offset from the recording's start (90s, "
                   "5m, 1.5h) or an RFC 3339 time (2026-01-05T03:12:00Z)")
    p.add_argument("--until", metavar="T", help="skip events after T (as --since)")
    p.add_argument("--metadata", type=Path, metavar="FILE", action="append", default=[],
                   help="Kubernetes objects (kubectl -o json List) to name objects in "
                   "findings (default: the metadata the recording carries)")
    p.add_argument("--node", metavar="NAME",
                   help="the recorded node's Kubernetes name (default: its host name)")
    p.add_argument("-j", "--jobs", type=positive_int, metavar="N", default=None,
                   help="processes for a fast -o jsonl replay: 2 renders lines on a second "
                   "core, 1 does not (default: 2 when the machine has two cores for it; "
                   "more are not used)")
    p.set_defaults(func=main)


def parse_time(text: str, start_wall_ns: int) -> int:
    """A wall-clock bound in ns: an offset from the start, or an RFC 3339 time."""
    m = _REL.match(text)
    if m:
        return start_wall_ns + int(float(m.group(1)) * _UNIT_NS[m.group(2)])
    if _ABS.match(text) is None:
        raise UsageError(f"not a time: {text!r} (e.g. 90s, 5m, 2026-01-05T03:12:00Z)")
    try:
        return parse_rfc3339(text)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


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
    from tui.feeds.replay import ReplayFeed, load  # Textual only when the TUI is wanted
    from tui.run import run_tui

    loaded = load(args.file)
    for warning in loaded.warnings:
        log.warning("%s", warning)
    speed = 0.0 if args.fast else (args.speed or 1.0)   # the TUI plays at the recorded pace
    feed = ReplayFeed(loaded.records, loaded.status, speed=speed,
                      pod_labels=loaded.pod_labels, events=loaded.events)
    if args.until:
        until = parse_time(args.until, feed.start_ns)
        keep = sum(1 for t in feed.times if t <= until)    # times never go backwards
        feed = ReplayFeed(loaded.records[:keep], loaded.status, speed=speed,
                          pod_labels=loaded.pod_labels,
                          events=loaded.events[:keep] if loaded.events else None)
    if args.since:
        feed.seek(parse_time(args.since, feed.start_ns) - feed.start_ns)
    return run_tui(feed)


def _jobs(args: argparse.Namespace) -> int:
    if args.jobs is not None:
        return int(args.jobs)
    return 2 if len(os.sched_getaffinity(0)) >= 2 else 1


def main(args: argparse.Namespace) -> int:
    output = resolve_output(args.output)
    if output == "tui":
        return main_tui(args)
    with RecordingReader(args.file) as reader:
        h = reader.header
        since = parse_time(args.since, h.started_wall_ns) if args.since else None
        until = parse_time(args.until, h.started_wall_ns) if args.until else None
        log.info("%s", describe(args.file, h))
        sink: Sink = TableSink(sys.stdout) if output == "table" else JsonlSink(sys.stdout)
        stages = ReplayPipeline(h, metadata=args.metadata, node=args.node)
        source = stages.source(reader, speed=args.speed, since_ns=since, until_ns=until)
        stop = threading.Event()
        # SIGTERM as SIGINT: the output so far ends with whole lines, the worker goes
        signal.signal(signal.SIGINT, lambda _s, _f: stop.set())
        signal.signal(signal.SIGTERM, lambda _s, _f: stop.set())
        lines = sink if isinstance(sink, JsonlSink) else None
        worker = LineWorker.start(args, since, until) \
            if lines is not None and args.speed is None and _jobs(args) > 1 else None
        try:
            with batch_sized_gc():
                for number, batch in enumerate(source.batches(stop)):
                    named, findings = stages.process(batch)
                    if worker is None or lines is None or not worker.copy(number, lines.out):
                        sink.write(named)
                    if findings:
                        sink.write(findings)
        finally:
            if worker is not None:
                worker.close()
        sink.write(stages.finish(source.end.wall_ns if source.end is not None else None))
        sink.close()
        for warning in reader.warnings():
            log.warning("%s", warning)
        if source.end is None and reader.truncated_at is None and reader.damaged_at is None \
                and not stop.is_set():
            log.warning("%s has no end record: the recording did not finish", args.file)
        lost = {k: v for k, v in source.stats().lost.items() if v}
        if lost:
            log.warning("the recorded session lost events: %s",
                        ", ".join(f"{k} {v}" for k, v in lost.items()))
    return 0
