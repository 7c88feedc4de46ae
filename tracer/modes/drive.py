"""The one loop every mode runs: batches from a source through a pipeline to sinks.

    stats = drive(source, pipeline, [sink], stop)

It owns what every mode needs the same way: each batch goes through every stage in
order; the stream's batch is written, then what the stages made beside it (findings);
`stop_after` events end the stream; at the end of the stream the loss ledger is made
(the source's own counts and any the caller adds: a recording that failed to write),
the stages finish knowing it, the sinks get what is left and are closed, and the
losses are said once, as a warning.  The live source yields an empty batch when
nothing happened for `Pipeline`'s heartbeat (tracer/modes/build.py): the clock
moves for diagnosis, which judges silence.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol

from tracer.events.model import Event
from tracer.pipeline.stage import Pipeline
from tracer.sinks.sink import Sink
from tracer.sources.stats import SourceStats

log = logging.getLogger(__name__)


class Source(Protocol):
    def batches(self, stop: threading.Event) -> Iterator[list[Event]]: ...
    def stats(self) -> SourceStats: ...


class EventSource:
    """Events already decoded (a file of JSON lines), in batches."""

    def __init__(self, events: Iterable[Event], batch: int = 64) -> None:
        self.events = events
        self.batch = batch
        self._stats = SourceStats()

    def batches(self, stop: threading.Event) -> Iterator[list[Event]]:
        batch: list[Event] = []
        for ev in self.events:
            batch.append(ev)
            if len(batch) >= self.batch:
                if stop.is_set():
                    return
                self._stats.received += len(batch)
                yield batch
                batch = []
        if batch and not stop.is_set():
            self._stats.received += len(batch)
            yield batch

    def stats(self) -> SourceStats:
        return self._stats


def drive(source: Source, pipeline: Pipeline, sinks: Sequence[Sink], stop: threading.Event,
          *, stop_after: int | None = None,
          end_wall_ns: Callable[[], int | None] = lambda: None,
          stream_ended: Callable[[], object] | None = None,
          more_losses: Callable[[], dict[str, int]] | None = None,
          loss_warning: str | None = "events lost",
          warnings: Callable[[], Iterable[str]] | None = None) -> SourceStats:
    """Run the stream to its end (or `stop`).  `end_wall_ns`: when it ended (live: now;
    a recording: its end record); `stream_ended` runs as soon as the source is done
    (a recording tee closes its file: its failures are final then); `more_losses`:
    loss layers beside the source's; `warnings`: what the source has to say at the
    end (a damaged file); `loss_warning`: how the losses are said (None: not, the
    caller reports them).  Returns the source's stats, the losses added."""
    seen = 0
    for batch in source.batches(stop):
        named, side = pipeline.process(batch)
        for sink in sinks:
            sink.write(named)
            if side:
                sink.write(side)
        seen += len(named)
        if stop_after is not None and seen >= stop_after:
            stop.set()
    if stream_ended is not None:
        stream_ended()
    stats = source.stats()
    lost = {k: v for k, v in stats.lost.items() if v}
    for layer, count in (more_losses() if more_losses is not None else {}).items():
        if count:
            lost[layer] = count
    stats.lost.update(lost)
    last = pipeline.finish(end_wall_ns(), lost)
    for sink in sinks:
        if last:
            sink.write(last)
        sink.close()
    for warning in warnings() if warnings is not None else ():
        log.warning("%s", warning)
    if lost and loss_warning is not None:
        log.warning("%s: %s", loss_warning, ", ".join(f"{k} {v}" for k, v in lost.items()))
    return stats
