"""Diagnosis as a pipeline stage: the events pass on unchanged, findings are made
beside them as soon as their evidence is complete, and the rest at the end."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from tracer.diagnosis.engine import Diagnoser
from tracer.events.model import Event
from tracer.events.records import Output
from tracer.pipeline.stage import PassStage


class DiagnosisStage(PassStage):
    name = "diagnosis"

    def __init__(self, diagnoser: Diagnoser,
                 clock_ns: Callable[[], int] | None = None,
                 on_clock: Callable[[int], None] | None = None) -> None:
        """`clock_ns`: the wall clock (live: so that a connection nothing answers is
        judged while nothing happens); None: the events' own times (a file).
        `on_clock`: told each instant the wall clock was used (the recording marks
        it, so that its replay judges at the same instants)."""
        self.diagnoser = diagnoser
        self.clock_ns = clock_ns
        self.on_clock = on_clock
        self._found: list[Output] = []

    def process(self, batch: Sequence[Event]) -> Sequence[Event]:
        # only a batch with nothing in it moves diagnosis by the wall clock: events
        # carry their own times, and judging by them is what replay can repeat
        now = self.clock_ns() if self.clock_ns is not None and not batch else None
        if now is not None and self.on_clock is not None:
            self.on_clock(now)
        found = self.diagnoser.process(batch, now)
        if found:
            self._found += found
        return batch

    def take(self) -> list[Output]:
        out, self._found = self._found, []
        return out

    def finish(self, end_wall_ns: int | None, lost: Mapping[str, int]) -> list[Output]:
        self.diagnoser.add_lost(lost)
        return list(self.diagnoser.finish(end_wall_ns))
