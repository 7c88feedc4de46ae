"""What a pipeline stage is, and a pipeline: stages in order.

A stage consumes a batch of events (in stream order, as the source yields them) and
returns the batch the next stage consumes: the same events (a tee), changed ones
(path marks), or the same events with their names beside them (Kubernetes names, a
`NamedBatch`).  Some stages also make outputs of their own beside the stream
(diagnosis: findings, as soon as their evidence is complete); `take()` hands those
over after each batch.  `finish()` is the end of the stream: what the stage still
has to say (diagnosis: the findings it can decide without waiting), told the
stream's end time and what the source lost.

Stages are named, so a mode's stage list can be read and compared
(tracer/modes/build.py builds every mode's list; a test holds replay to live's).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from tracer.events.model import Event

if TYPE_CHECKING:   # the sinks import the pipeline's modules
    from tracer.events.records import Output


class Stage(Protocol):
    name: str

    def process(self, batch: Sequence[Event]) -> Sequence[Event]: ...

    def take(self) -> list[Output]: ...

    def finish(self, end_wall_ns: int | None, lost: Mapping[str, int]) -> list[Output]: ...


class PassStage:
    """Defaults for a stage that only transforms its batches: nothing beside the
    stream, nothing left at the end."""

    name = "stage"

    def take(self) -> list[Output]:
        return []

    def finish(self, end_wall_ns: int | None, lost: Mapping[str, int]) -> list[Output]:
        return []


class Pipeline:
    def __init__(self, stages: Sequence[Stage], *, heartbeat_s: float | None = None) -> None:
        """`heartbeat_s`: how often a stage needs the clock to move when no event
        comes (diagnosis judges silence: a connection nothing answered); the live
        source then yields an empty batch that often."""
        self.stages = tuple(stages)
        self.heartbeat_s = heartbeat_s

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.stages)

    def stage(self, name: str) -> Stage | None:
        return next((s for s in self.stages if s.name == name), None)

    def process(self, batch: Sequence[Event]) -> tuple[Sequence[Event], list[Output]]:
        """The batch through every stage; and what the stages made beside it."""
        for s in self.stages:
            batch = s.process(batch)
        side: list[Output] = []
        for s in self.stages:
            made = s.take()
            if made:
                side += made
        return batch, side

    def finish(self, end_wall_ns: int | None, lost: Mapping[str, int]) -> list[Output]:
        out: list[Output] = []
        for s in self.stages:
            out += s.finish(end_wall_ns, lost)
        return out
