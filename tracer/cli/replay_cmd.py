"""`nodetrace replay`: a recording's events through today's pipeline, anywhere.

Needs no privileges, no BCC and no network: nothing here imports tracer.kernel's BCC
side, and every fact about the recorded node comes from the file.
"""

from __future__ import annotations

import argparse
import calendar
import importlib.util
import logging
import re
import signal
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tracer.cli.options import OUTPUTS, positive_float, resolve_output
from tracer.diagnosis.finding import Coverage
from tracer.diagnosis.names import ObjectListNames
from tracer.diagnosis.offline import recording_diagnoser
from tracer.errors import TracerError, UsageError
from tracer.metadata.index import MetadataIndex
from tracer.pipeline.enrich import Enricher
from tracer.recording.metadata import fan_out
from tracer.recording.reader import Header, RecordingReader
from tracer.sinks.jsonl import JsonlSink
from tracer.sinks.records import Output
from tracer.sinks.sink import Sink
from tracer.sinks.table import TableSink
from tracer.sources.replay import ReplaySource
from tracer.timefmt import rfc3339_ns

log = logging.getLogger(__name__)

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
    p.add_argument("-o", "--output", choices=(*OUTPUTS, "tui"), default=None,
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
    p.set_defaults(func=main)


def parse_time(text: str, start_wall_ns: int) -> int:
    """A wall-clock bound in ns: an offset from the start, or an RFC 3339 time."""
    m = _REL.match(text)
    if m:
        return start_wall_ns + int(float(m.group(1)) * _UNIT_NS[m.group(2)])
    m = _ABS.match(text)
    if m is None:
        raise UsageError(f"not a time: {text!r} (e.g. 90s, 5m, 2026-01-05T03:12:00Z)")
    secs = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
    frac = int((m.group(2) or ".0")[1:].ljust(9, "0"))
    if m.group(3) != "Z":
        sign = 1 if m.group(3)[0] == "+" else -1
        secs -= sign * (int(m.group(3)[1:3]) * 3600 + int(m.group(3)[4:6]) * 60)
    return secs * 10**9 + frac


def describe(path: Path, h: Header) -> str:
    text = (f"replaying {path}: node {h.node or '?'}, kernel {h.kernel_release or '?'}, "
            f"recorded {rfc3339_ns(h.started_wall_ns)} by nodetrace {h.nodetrace_version} "
            f"(format {h.version[0]}.{h.version[1]})")
    if h.part:
        text += f", part {h.part}"
    if h.unavailable:
        text += "; not attached then: " + ", ".join(h.unavailable)
    return text


TUI_ENTRY = "run_replay"   # tui/app.py: run_replay(args: argparse.Namespace) -> int


def run_tui(args: argparse.Namespace) -> int:
    """The TUI on a recording, once tui/app.py provides it."""
    if importlib.util.find_spec("tui.app") is None:
        raise TracerError("-o tui: the TUI is not built yet; use -o table or -o jsonl")
    app = importlib.import_module("tui.app")
    entry = getattr(app, TUI_ENTRY, None)
    if entry is None:
        raise TracerError(f"-o tui: tui/app.py has no {TUI_ENTRY}(); use -o table or -o jsonl")
    status: int = entry(args)
    return status


class IndexFeed:
    """The recorded metadata changes into the index names are resolved from."""

    def __init__(self, index: MetadataIndex) -> None:
        self.index = index

    def on_change(self, kind: str, action: str, obj: Mapping[str, Any], at: float) -> None:
        self.index.apply(kind, action, dict(obj), at)


def main(args: argparse.Namespace) -> int:
    output = resolve_output(args.output)
    if output == "tui":
        return run_tui(args)
    with RecordingReader(args.file) as reader:
        h = reader.header
        since = parse_time(args.since, h.started_wall_ns) if args.since else None
        until = parse_time(args.until, h.started_wall_ns) if args.until else None
        log.info("%s", describe(args.file, h))
        sink: Sink = TableSink(sys.stdout) if output == "table" else JsonlSink(sys.stdout)
        # the same stages as the live session after its recording tee, from the
        # recorded facts (tracer/session.py): path marks, Kubernetes names from the
        # recorded metadata, then diagnosis
        names = ObjectListNames.from_files(args.metadata) if args.metadata else None
        diag, state, marker = recording_diagnoser(
            h, names=names, facts=None, node=args.node,
            coverage=Coverage(metadata=("file " + ", ".join(map(str, args.metadata)))
                              if args.metadata else "none"))
        index = MetadataIndex(rebuild_interval_s=0.0)   # replay: every change at once
        index.local_node = args.node or h.node or None
        enrich = Enricher(index, h.netns)
        source = ReplaySource(reader, speed=args.speed, since_ns=since, until_ns=until,
                              metadata=fan_out(IndexFeed(index), state),
                              on_node_state=state.on_node_state)
        stop = threading.Event()
        signal.signal(signal.SIGINT, lambda _s, _f: stop.set())
        for batch in source.batches(stop):
            named = enrich.process(marker.process(batch))
            sink.write(named)
            findings: list[Output] = list(diag.process(named))
            if findings:
                sink.write(findings)
        sink.write(diag.finish(source.end.wall_ns if source.end is not None else None))
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
