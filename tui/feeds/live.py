"""Live feed: tracer/session.py's run loop in the app's thread worker.

The session's sink turns each batch of model events into record dicts (the `trace
-o jsonl` form) and hands them to the FeedOutput, which batches them for the app.
Stopping the feed sets the session's stop event: it drains, detaches and returns.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence

from tracer.diagnosis.engine import Diagnoser
from tracer.errors import TracerError
from tracer.pipeline.enrich import names_of
from tracer.session import Attached, TraceOptions, run
from tracer.sinks.names import add_names
from tracer.sinks.records import Output, event_record
from tui.feed import FeedOutput, RecordingControl, RecordingState, ReplayControls

log = logging.getLogger(__name__)

TICK_S = 0.1


class _FeedSink:
    def __init__(self, out: FeedOutput, stop: threading.Event) -> None:
        self.out = out
        self.stop = stop

    def write(self, batch: Sequence[Output]) -> None:
        # the records `trace -o jsonl` prints: names beside the raw fields
        self.out.emit([add_names(event_record(ev), ev, names)
                       for ev, names in zip(batch, names_of(batch), strict=True)], self.stop)

    def close(self) -> None:
        self.out.flush()


class _NoLiveRecording:
    """`r` in a live session.  Starting a recording mid-session needs the recording
    writer to be opened on a running session (issue 7); until then a session records
    only when started with --record FILE."""

    def __init__(self, opts: TraceOptions) -> None:
        self.opts = opts

    def toggle_recording(self) -> str:
        if self.opts.record is not None:
            return (f"recording to {self.opts.record.path} for the whole session "
                    "(started with --record; it cannot be stopped from here yet)")
        return ("recording cannot be started mid-session yet: restart with "
                "`nodetrace trace --record FILE`")


class LiveFeed:
    controls: ReplayControls | None = None

    def __init__(self, opts: TraceOptions, node: str | None = None,
                 diagnoser: Diagnoser | None = None) -> None:
        self.opts = opts
        self.diagnoser = diagnoser   # findings beside the events, as `trace` prints them
        self.node = node or os.uname().nodename
        self.recording: RecordingControl | None = _NoLiveRecording(opts)
        self.stats_lost: dict[str, int] = {}

    def _recording_state(self) -> RecordingState | None:
        spec = self.opts.record
        if spec is None:
            return None
        try:
            size = os.stat(spec.path).st_size
        except OSError:
            size = 0
        return RecordingState(str(spec.path), size)

    def run(self, out: FeedOutput, stop: threading.Event) -> None:
        out.set_status(source="live", node=self.node, kernel=os.uname().release,
                       metadata="local only", recording=self._recording_state(),
                       running=True)

        def attached(info: Attached) -> None:
            out.set_status(kernel=info.kernel_release, attached=info.attached,
                           unavailable=info.unavailable)
            out.flush()

        done = threading.Event()

        def ticker() -> None:   # posts status and pending records while the session idles
            while not done.wait(TICK_S):
                out.set_status(recording=self._recording_state())
                out.tick()

        t = threading.Thread(target=ticker, name="nodetrace-tui-tick", daemon=True)
        t.start()
        try:
            stats = run(self.opts, _FeedSink(out, stop), stop, diagnoser=self.diagnoser,
                        on_attached=attached)
            self.stats_lost = dict(stats.lost)
            out.set_status(running=False)
        except TracerError as exc:
            out.set_status(running=False, error=exc.message + (
                f" (fix: {exc.fix})" if exc.fix else ""))
            raise
        finally:
            done.set()
            t.join()
            out.final()
