"""The replay source: a recording's events as the live source's batches.

Yields the same `list[Event]` batches as tracer/sources/live.py, so everything after
the source (path marks, enrichment, the sinks, the TUI) is shared and a recording
replays to the same findings.  Metadata changes are handed to `metadata` (the same
MetadataRecorder interface the live providers call, tracer/recording/metadata.py),
node-state snapshots to `on_node_state`, the live diagnosis's clock records to
`on_clock` and what the node itself knew (local records) to `on_local`, in stream
order: after the batch of the events recorded before them, before the events after
them, so enrichment sees the objects as they were at each event and diagnosis judges
where the live one did.
"""

from __future__ import annotations

import operator
import threading
import time
from collections.abc import Callable, Iterator
from itertools import compress, repeat

from tracer.events.model import Event, LostEvent
from tracer.events.stats import SourceStats
from tracer.recording.format import EVENT_TYPES
from tracer.recording.metadata import MetadataRecord, MetadataRecorder
from tracer.recording.reader import ClockMark, EndRecord, LocalState, RecordingReader
from tracer.recording.writer import NodeState

BATCH_MAX = 1024
PACE_SLICE_NS = 10_000_000   # paced replay: events this close in time share a batch
_EVENT_TYPES = frozenset(EVENT_TYPES.values())


class ReplaySource:
    def __init__(self, reader: RecordingReader, *, speed: float | None = None,
                 since_ns: int | None = None, until_ns: int | None = None,
                 metadata: MetadataRecorder | None = None,
                 on_node_state: Callable[[NodeState], None] | None = None,
                 on_clock: Callable[[int], None] | None = None,
                 on_local: Callable[[LocalState], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """`speed`: None replays as fast as the sinks take it; 1.0 at the recorded
        pace; 2.0 twice as fast.  `since_ns`/`until_ns`: wall-clock bounds of the
        events replayed (metadata before `since_ns` is still delivered)."""
        self.reader = reader
        self.speed = speed
        self.since_ns = since_ns
        self.until_ns = until_ns
        self.metadata = metadata
        self.on_node_state = on_node_state
        self.on_clock = on_clock
        self.on_local = on_local
        self.node_states: list[NodeState] = []   # every snapshot seen so far
        self.clock = clock
        self.end: EndRecord | None = None
        self._stats = SourceStats()
        self._lost: dict[str, int] = {}

    def stats(self) -> SourceStats:
        """Events replayed, and the loss the recorded session reported (by layer)."""
        lost = dict(self.end.info.lost) if self.end is not None else dict(self._lost)
        self._stats.lost = lost
        if self.end is not None:
            self._stats.decode_errors = self.end.info.decode_errors
        return self._stats

    def _other(self, item: object) -> None:
        """A record that is not an event: handed on (metadata, node state) or kept."""
        if isinstance(item, MetadataRecord):
            if self.metadata is not None:
                item.deliver(self.metadata)
        elif isinstance(item, NodeState):
            self.node_states.append(item)
            if self.on_node_state is not None:
                self.on_node_state(item)
        elif isinstance(item, ClockMark):
            if self.on_clock is not None:
                self.on_clock(item.wall_ns)
        elif isinstance(item, LocalState):
            if self.on_local is not None:
                self.on_local(item)
        elif isinstance(item, EndRecord):
            self.end = item

    def batches(self, stop: threading.Event) -> Iterator[list[Event]]:
        if self.speed is None and self.since_ns is None and self.until_ns is None:
            return self._every_event(stop)
        return self._selected_events(stop)

    def _every_event(self, stop: threading.Event) -> Iterator[list[Event]]:
        """--fast, no window: the loop of every event, as short as it can be (a
        block's events are taken whole; stop is looked at once a batch)."""
        batch: list[Event] = []
        for chunk in self.reader.chunks():
            t = type(chunk)
            if t is list:
                events: list[Event] = chunk   # type: ignore[assignment]
                batch = events if not batch else batch + events
            elif t in _EVENT_TYPES:          # a 1.x recording: an event a record
                batch.append(chunk)   # type: ignore[arg-type]
            else:
                if batch and isinstance(chunk, MetadataRecord | NodeState | ClockMark
                                        | LocalState):
                    if stop.is_set():
                        return
                    self._count_lost(batch)
                    self._stats.received += len(batch)
                    yield batch      # the events recorded before it
                    batch = []
                self._other(chunk)
                continue
            if len(batch) >= BATCH_MAX:
                if stop.is_set():
                    return
                self._count_lost(batch)
                self._stats.received += len(batch)
                yield batch
                batch = []
        if batch and not stop.is_set():
            self._count_lost(batch)
            self._stats.received += len(batch)
            yield batch

    def _count_lost(self, batch: list[Event]) -> None:
        for ev in compress(batch, map(operator.is_, map(type, batch), repeat(LostEvent))):
            self._lost[ev.layer] = ev.total   # type: ignore[union-attr]

    def _selected_events(self, stop: threading.Event) -> Iterator[list[Event]]:
        batch: list[Event] = []
        since, until = self.since_ns, self.until_ns
        paced = self.speed is not None
        t0_wall: int | None = None     # recording time of the first replayed event
        t0_clock = 0.0
        slice_end = 0
        for item in self.reader:
            if stop.is_set():
                break
            if type(item) not in _EVENT_TYPES:     # nearly every item is an event
                if batch and isinstance(item, MetadataRecord | NodeState | ClockMark
                                        | LocalState):
                    yield batch
                    batch = []
                self._other(item)
                continue    # and sync markers
            ev: Event = item   # type: ignore[assignment]   # (narrowed by the type test)
            wall = ev.wall_ns
            if (since is not None and wall < since) or (until is not None and wall > until):
                continue
            if type(ev) is LostEvent:
                self._lost[ev.layer] = ev.total
            if paced:
                if t0_wall is None:
                    t0_wall, t0_clock, slice_end = wall, self.clock(), wall + PACE_SLICE_NS
                if wall >= slice_end or len(batch) >= BATCH_MAX:
                    if batch:
                        yield batch
                        batch = []
                    slice_end = wall + PACE_SLICE_NS
                    # sleep until this event's time, scaled; never backwards
                    assert self.speed is not None
                    due = t0_clock + (wall - t0_wall) / 1e9 / self.speed
                    delay = due - self.clock()
                    if delay > 0 and stop.wait(delay):
                        break
            elif len(batch) >= BATCH_MAX:
                yield batch
                batch = []
            batch.append(ev)
            self._stats.received += 1
        if batch and not stop.is_set():
            yield batch
