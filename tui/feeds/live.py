"""Live feed: tracer/session/run.py's run loop in the app's thread worker.

The session's sink turns each batch of model events into record dicts (the `trace
-o jsonl` form) and hands them to the FeedOutput, which batches them for the app.
Stopping the feed sets the session's stop event: it drains, detaches and returns.
`r`, `l` and the namespace switch are requests to the running session
(tracer/session/control.py), applied by its own thread between batches.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from tracer.diagnosis.engine import Diagnoser
from tracer.events.records import Output, event_record
from tracer.metadata.kube import KubeConfig, context_namespace
from tracer.pipeline.enrich import names_of
from tracer.recording.writer import RecordSpec
from tracer.session.control import SessionControl
from tracer.session.pod_scope import Selection
from tracer.session.run import Attached, TraceOptions, run
from tracer.sinks.naming import add_names
from tracer.sinks.sink import Sink
from tracer.sources.stats import SourceStats
from tracer.util.errors import TracerError
from tui.feed import FeedOutput, RecordingState, ReplayControls

log = logging.getLogger(__name__)

TICK_S = 0.1
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class Session(Protocol):
    """tracer.session.run.run, or a stand-in that plays its part without a kernel."""

    def __call__(self, opts: TraceOptions, sink: Sink, stop: threading.Event,
                 diagnoser: Diagnoser | None = None,
                 on_attached: Callable[[Attached], None] | None = None,
                 control: SessionControl | None = None) -> SourceStats: ...


class _FeedSink:
    def __init__(self, out: FeedOutput, stop: threading.Event) -> None:
        self.out = out
        self.stop = stop

    def write(self, batch: Sequence[Output]) -> None:
        # the records `trace -o jsonl` prints: names beside the raw fields
        self.out.emit([add_names(event_record(ev), ev, names)
                       for ev, names in zip(batch, names_of(batch), strict=True)], self.stop,
                      events=batch)

    def close(self) -> None:
        self.out.flush()


def describe(selection: Selection | None) -> str:
    return selection.describe() if selection is not None else ""


class LiveFeed:
    controls: ReplayControls | None = None

    def __init__(self, opts: TraceOptions, node: str | None = None,
                 diagnoser: Diagnoser | None = None, *, record_dir: Path = Path("."),
                 session: Session = run,
                 clock_ns: Callable[[], int] = time.time_ns) -> None:
        self.opts = opts
        self.diagnoser = diagnoser   # findings beside the events, as `trace` prints them
        self.node = node or os.uname().nodename
        self.record_dir = record_dir   # where `r` puts a recording
        self.session = session
        self.clock_ns = clock_ns
        self.control = SessionControl(opts.selection, recording=opts.record is not None)
        self.stats_lost: dict[str, int] = {}
        self._running = False

    @property
    def recording(self) -> LiveFeed:
        return self

    @property
    def pods(self) -> LiveFeed:
        return self

    @property
    def pod_labels(self) -> Mapping[str, Mapping[str, str]]:
        return {}    # live, -l re-attaches: the view is not filtered by labels

    # --- `r`, `l`, `N` (the app's thread) ---------------------------------------------

    def new_recording_path(self) -> Path:
        """nodetrace-NODE-YYYYmmddTHHMMSSZ.ntrec, never an existing file's name."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self.clock_ns() / 1e9))
        base = f"nodetrace-{_UNSAFE.sub('_', self.node)}-{stamp}"
        path = self.record_dir / f"{base}.ntrec"
        n = 1
        while path.exists():
            n += 1
            path = self.record_dir / f"{base}-{n}.ntrec"
        return path

    def toggle_recording(self) -> str:
        if not self._running:
            return "the session is not running: nothing to record"
        if self.control.wants_recording:
            self.control.stop_recording()
            return "stopping the recording..."
        spec = self.opts.record
        path = self.new_recording_path()
        self.control.start_recording(RecordSpec(
            path, max_size=spec.max_size if spec else None, rotate=spec.rotate if spec else 0))
        return f"starting a recording: {path}"

    @property
    def selection(self) -> Selection | None:
        return self.control.selection

    @property
    def default_namespace(self) -> str:
        meta = self.opts.metadata
        return context_namespace(KubeConfig(meta.kubeconfig, meta.context))

    def select(self, selection: Selection | None) -> str:
        if not self._running:
            return "the session is not running: nothing to re-attach"
        self.control.select(selection)
        return f"re-attaching: {describe(selection) or 'every pod of this node'}..."

    # --- the worker thread ------------------------------------------------------------

    def _recording_state(self) -> RecordingState | None:
        path = self.control.recording_path
        if path is None:
            return None
        try:
            size = os.stat(path).st_size
        except OSError:
            size = 0
        return RecordingState(str(path), size)

    def _status(self) -> dict[str, object]:
        return {"recording": self._recording_state(),
                "metadata": self.control.metadata_health(),
                "selection": describe(self.control.selection)}

    def run(self, out: FeedOutput, stop: threading.Event) -> None:
        self.control.notes = out.note
        out.set_status(source="live", node=self.node, kernel=os.uname().release,
                       running=True, **self._status())

        def attached(info: Attached) -> None:
            out.set_status(kernel=info.kernel_release, attached=info.attached,
                           unavailable=info.unavailable, **self._status())
            out.flush()

        done = threading.Event()

        def ticker() -> None:   # posts status and pending records while the session idles
            while not done.wait(TICK_S):
                out.set_status(**self._status())
                out.tick()

        t = threading.Thread(target=ticker, name="nodetrace-tui-tick", daemon=True)
        t.start()
        self._running = True
        try:
            stats = self.session(self.opts, _FeedSink(out, stop), stop,
                                 diagnoser=self.diagnoser, on_attached=attached,
                                 control=self.control)
            self.stats_lost = dict(stats.lost)
            out.set_status(running=False)
        except TracerError as exc:
            out.set_status(running=False, error=exc.message + (
                f" (fix: {exc.fix})" if exc.fix else ""))
            raise
        finally:
            self._running = False
            done.set()
            t.join()
            out.set_status(**self._status())
            out.final()
