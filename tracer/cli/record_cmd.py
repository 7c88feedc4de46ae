"""`nodetrace record`: capture a session to a file, headless (no output on stdout)."""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from collections.abc import Sequence
from typing import Any

from tracer.cli.options import add_recording_size, writable_path
from tracer.cli.trace_cmd import (
    add_session_options,
    install_stop_signals,
    log_summary,
    trace_options,
)
from tracer.events.records import Output
from tracer.recording.writer import RecordSpec
from tracer.sinks.summary import SummarySink

log = logging.getLogger(__name__)

EXAMPLES = """examples:
  nodetrace record -w node.ntrec --duration 1m        one minute of this node, to a file
  nodetrace record -w node.ntrec --max-size 500M --rotate 3
  nodetrace replay node.ntrec                          later, anywhere, without root
"""


class NullSink:
    def write(self, batch: Sequence[Output]) -> None:
        pass

    def close(self) -> None:
        pass


def register(sub: Any) -> None:
    p = sub.add_parser("record", help="record this node's session to a file, headless",
                       description="Trace like `nodetrace trace` and write everything to one "
                       "file (mode 0600) that `nodetrace replay` reads anywhere, with no "
                       "privileges.  SIGINT/SIGTERM/SIGHUP end the recording cleanly (exit "
                       "130 after Ctrl-C, 129 after SIGHUP, 0 after SIGTERM), with a summary "
                       "on stderr.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-w", "--write", type=writable_path, metavar="FILE", required=True,
                   help="the recording to write")
    add_session_options(p)
    add_recording_size(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from tracer.session.run import run  # imports tracer.kernel: not at registration

    stop = threading.Event()
    signals = install_stop_signals(stop)
    spec = RecordSpec(args.write, max_size=args.max_size, rotate=args.rotate,
                      stop_when_full=True)
    sink = SummarySink(NullSink())
    stats = run(trace_options(args, spec), sink, stop)
    log.info("recording written to %s (%d events received); nodetrace replay %s",
             args.write, stats.received, args.write)
    log_summary(sink.summary)
    lost = sum(stats.lost.values())
    if args.fail_on_loss and lost:
        print(f"nodetrace: error: {lost} event(s) lost (--fail-on-loss)", file=sys.stderr)
        return 1
    return signals.exit_code()
