"""A session without a kernel, for Pilot tests of a live feed (no root).

`GoldenSession` plays tracer/session/run.py's part for tui/feeds/live.py: the events of
tests/data/golden.ntrec stand for what the kernel would deliver, one batch per tick
until stopped; everything else is the real code a session runs — the metadata index
(fed from the recording's metadata), the pipeline stages, the `SessionControl` that
takes the app's requests, the `LiveRecording` and `RecordingWriter` that `r` and
`--record` write with.  `reselect` stands for the re-attachment (tc and the kernel's
scope need root; tests/kernel drives those): it hears each new selection."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from tracer.diagnosis.engine import Diagnoser
from tracer.events.model import Event
from tracer.modes import build
from tracer.recording.live import LiveRecording
from tracer.recording.reader import RecordingReader
from tracer.recording.writer import SessionFacts
from tracer.session.control import SessionControl
from tracer.session.pod_scope import Selection
from tracer.session.run import Attached, TraceOptions
from tracer.sinks.sink import Sink
from tracer.sources.stats import SourceStats
from tracer.util.errors import UsageError

GOLDEN = Path(__file__).resolve().parent.parent / "data" / "golden.ntrec"
TICK_S = 0.02


class GoldenSession:
    def __init__(self, path: Path = GOLDEN, *, health: str = "API connected",
                 knows_labels: bool = True) -> None:
        self.path = path
        self.health = health            # what Metadata.health() would say; tests change it
        self.knows_labels = knows_labels
        self.selections: list[Selection | None] = []   # what reselect was asked
        self.stats = SourceStats()
        self.ended = threading.Event()

    def __call__(self, opts: TraceOptions, sink: Sink, stop: threading.Event,
                 diagnoser: Diagnoser | None = None,
                 on_attached: Callable[[Attached], None] | None = None,
                 control: SessionControl | None = None) -> SourceStats:
        with RecordingReader(self.path) as reader:
            h = reader.header
            rep = build.replay_feed(reader)
            batches: list[list[Event]] = [b for b in rep.source.batches(threading.Event())
                                          if b]
        facts = SessionFacts(kernel_release=h.kernel_release, attached=h.attached,
                             unavailable=h.unavailable, families=h.families,
                             drop_reasons=h.drop_reasons,
                             mono_to_wall_ns=h.clock.wall_ns - h.clock.mono_ns,
                             netns=h.netns, node=h.node)
        recording = LiveRecording(facts, rep.index, lambda: self.stats, snapshot=None)
        if control is not None:
            control.metadata_health = lambda: self.health
        if opts.record is not None:
            recording.start(opts.record)
            if control is not None:
                control.recording_path = opts.record.path
        if on_attached is not None:
            on_attached(Attached(h.kernel_release, h.netns, h.attached, dict(h.unavailable)))

        def reselect(selection: Selection | None) -> str:
            if selection is not None and not self.knows_labels:
                raise UsageError("selecting pods (-l, -n, --pod) needs Kubernetes metadata")
            self.selections.append(selection)
            return selection.describe() if selection else "every pod"

        i = 0
        try:
            while not stop.is_set():
                if control is not None:
                    control.serve(recording, reselect)
                batch = batches[i % len(batches)]   # the kernel keeps delivering
                i += 1
                self.stats.received += len(batch)
                recording.write(batch)
                named, findings = rep.pipeline.process(batch)
                sink.write(named)
                if findings:
                    sink.write(findings)
                stop.wait(TICK_S)
            sink.close()
            recording.stop()
            if control is not None:
                control.ended()
        finally:
            recording.close()
            self.ended.set()
        return self.stats
