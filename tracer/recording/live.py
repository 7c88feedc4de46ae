"""The recording of a running session: started with it (`trace --record FILE`) or
while it runs (the TUI's `r`), stopped while it runs or with it.

Each recording is a whole file of its own, as `--record` writes it: the header, the
metadata index as it is when the recording starts (as "added"), then the changes and
the events, and an end record whose counters are those of the recording's own span
(what the session received and lost since it started), so a replay adds no loss that
happened before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tracer.events.model import Event
from tracer.events.stats import SourceStats
from tracer.metadata.index import MetadataIndex
from tracer.metadata.objects import KINDS
from tracer.recording import nodestate
from tracer.recording.writer import EndInfo, RecordingWriter, RecordSpec, SessionFacts

log = logging.getLogger(__name__)


class LiveRecording:
    """At most one RecordingWriter at a time.  Used by the session's thread only."""

    def __init__(self, facts: SessionFacts, index: MetadataIndex,
                 stats: Callable[[], SourceStats], *,
                 on_full: Callable[[], None] | None = None,
                 snapshot: Callable[[], Mapping[str, Any]] | None = nodestate.snapshot) -> None:
        self.facts = facts
        self.index = index
        self.stats = stats
        self.on_full = on_full
        self.snapshot = snapshot
        self.writer: RecordingWriter | None = None
        self.failed = 0            # events not written, every recording of the session
        self._base = SourceStats()

    @property
    def path(self) -> Path | None:
        return self.writer.path if self.writer is not None else None

    def start(self, spec: RecordSpec) -> RecordingWriter:
        """Raises TracerError when the file cannot be written."""
        if self.writer is not None:
            self.stop()
        writer = RecordingWriter(spec, self.facts, on_full=self.on_full,
                                 snapshot=self.snapshot)
        s = self.stats()
        self._base = SourceStats(s.received, s.decode_errors, dict(s.lost))
        # the metadata as it changes, after what the index holds now as "added"
        # (observer first: a change in between is recorded twice, never lost)
        self.index.add_observer(writer.on_change)
        self.index.add_local_observer(writer.on_local)
        now = time.time()
        for kind in KINDS:
            for obj in self.index.objects(kind):
                writer.on_change(kind, "added", obj, now)
        listeners, pods = self.index.local_state()
        if listeners or pods:
            writer.on_local(listeners, pods, now)
        self.writer = writer
        return writer

    def write(self, batch: Sequence[Event]) -> None:
        if self.writer is not None:
            self.writer.write(batch)

    def clock(self, wall_ns: int) -> None:
        if self.writer is not None:
            self.writer.write_clock(wall_ns)

    def stop(self, reason: str = "stopped", end_ns: int | None = None) -> Path | None:
        """The end record with this recording's share of the counters, then close;
        `end_ns`: the session's end as its diagnosis took it (replay finishes there)."""
        writer = self.writer
        if writer is None:
            return None
        self.writer = None
        self.index.remove_observer(writer.on_change)
        self.index.remove_local_observer(writer.on_local)
        s, base = self.stats(), self._base
        lost = {layer: n - base.lost.get(layer, 0) for layer, n in s.lost.items()}
        writer.finish(EndInfo(reason, s.received - base.received,
                              s.decode_errors - base.decode_errors,
                              lost, end_ns))
        if writer.failed:   # a loss layer of its own : a lost record is counted, never silent
            self.failed += writer.failed
            log.warning("recording %s: %d event(s) not written (%s)", writer.path,
                        writer.failed, writer.stopped)
        return writer.path

    def close(self) -> None:
        """The session did not get to finish: close without its counters."""
        if self.writer is not None:
            self.index.remove_observer(self.writer.on_change)
            self.index.remove_local_observer(self.writer.on_local)
            self.writer.close()
            self.writer = None
