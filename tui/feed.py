"""What the TUI consumes: batches of record dicts and the feed's status.

A record is exactly what `nodetrace trace -o jsonl` prints for one line
(docs/events.md, tracer/events/records.py).  The app sees only this interface: a live
session and a recording replay are two adapters (tui/feeds/) and the app does not know
which one it runs on.

A feed runs in a thread worker of the app and hands its output to a `FeedOutput`;
the output batches records and posts them to the app at most ~10 times a second,
bounded: when the app falls behind, the producer waits (a live session's kernel ring
buffer then counts what it could not hold, as `lost` records).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:   # the selection's module finds pods on the node: only its type here
    from tracer.session.pod_scope import Selection

Record = dict[str, Any]

POST_INTERVAL_S = 0.1          # ~10 updates a second
MAX_PENDING = 50_000           # records held before the producer waits for the app
MAX_IN_FLIGHT = 2              # batches posted and not yet taken by the app


@dataclass(frozen=True)
class RecordingState:
    path: str
    size_bytes: int


@dataclass(frozen=True)
class ReplayState:
    start_ns: int              # wall time of the first and last event of the recording
    end_ns: int
    position_ns: int           # wall time of the last event delivered
    speed: float               # 0: as fast as the app takes it
    paused: bool
    done: bool


@dataclass(frozen=True)
class FeedStatus:
    source: str = ""                           # "live" or the replayed file, for the header
    node: str = "?"
    kernel: str = "?"
    attached: tuple[str, ...] = ()
    unavailable: dict[str, str] = field(default_factory=dict)
    metadata: str = "local only"               # API connected / stale / file / local only
    selection: str = ""                        # the live pod selection (-l, -n), described
    recording: RecordingState | None = None
    replay: ReplayState | None = None
    running: bool = True
    error: str | None = None                   # why the feed stopped, when it failed
    warnings: tuple[str, ...] = ()             # what is wrong with the input (a damaged
                                               # file): shown while it runs, not after


@dataclass(frozen=True)
class FeedBatch:
    records: Sequence[Record]
    status: FeedStatus
    reset: bool = False        # forget everything shown so far (a replay seeked back)
    # parallel to `records`: the event each was made from, when the feed has it (the
    # app then joins connections without parsing the record back); None: parse it
    events: Sequence[object | None] | None = None


class ReplayControls(Protocol):
    def toggle_pause(self) -> None: ...
    def step(self) -> None: ...                       # one batch of events, when paused
    def set_speed(self, speed: float) -> None: ...    # 0: as fast as possible
    def seek(self, offset_ns: int) -> None: ...       # from the recording's start


class RecordingControl(Protocol):
    def toggle_recording(self) -> str: ...            # what happened, for the status line


class PodSelectionControl(Protocol):
    """A live session's -l/-n: changing it re-attaches to the pods it selects."""

    @property
    def selection(self) -> Selection | None: ...      # None: no pod selection
    def select(self, selection: Selection | None) -> str: ...   # what happens, for a note
    @property
    def default_namespace(self) -> str: ...           # `l` without a selection yet: kubectl's


class Feed(Protocol):
    @property
    def controls(self) -> ReplayControls | None: ...      # a replay's; None when live

    @property
    def recording(self) -> RecordingControl | None: ...   # `r`; None when it cannot record

    @property
    def pods(self) -> PodSelectionControl | None: ...     # `l`, `N`; None: they filter the view

    @property
    def pod_labels(self) -> Mapping[str, Mapping[str, str]]: ...   # "ns/name" -> labels

    def run(self, out: FeedOutput, stop: threading.Event) -> None:
        """Produce until the source ends or `stop` is set; called in a thread."""


class FeedOutput:
    """Collects records from the producing thread and posts them in bounded batches.

    `post` must be thread-safe (App.post_message is); the app calls `taken()` when it
    has applied a batch.  Every method may be called from any thread.
    """

    def __init__(self, post: Callable[[FeedBatch], object], *,
                 interval_s: float = POST_INTERVAL_S, max_pending: int = MAX_PENDING,
                 clock: Callable[[], float] = time.monotonic,
                 notify: Callable[[str, str], object] | None = None) -> None:
        self._post = post
        self._notify = notify
        self.interval_s = interval_s
        self.max_pending = max_pending
        self.clock = clock
        self._pending: list[Record] = []
        self._events: list[object | None] = []     # parallel to _pending
        self._status = FeedStatus()
        self._reset = False
        self._last_post = 0.0
        self._lock = threading.Lock()          # pending, status, reset
        self._cond = threading.Condition()     # batches in flight
        self._in_flight = 0
        self._closed = False

    @property
    def status(self) -> FeedStatus:
        return self._status

    def set_status(self, **changes: Any) -> None:
        with self._lock:
            self._status = replace(self._status, **changes)

    def note(self, text: str, severity: str = "information") -> None:
        """A line for the app's status line, now (an outcome the producer learned
        later than the key that asked for it: a recording that could not start)."""
        if self._notify is not None and not self._closed:
            self._notify(text, severity)

    def reset(self) -> None:
        """Everything emitted so far is void (seek backwards): drop what is pending."""
        with self._lock:
            self._pending, self._events = [], []
            self._reset = True

    def emit(self, records: Sequence[Record], stop: threading.Event | None = None, *,
             events: Sequence[object | None] | None = None) -> None:
        """`events`: what each record was made from (FeedBatch.events), if known."""
        with self._lock:
            self._pending.extend(records)
            self._events.extend(events if events is not None else [None] * len(records))
            full = len(self._pending) >= self.max_pending
        if full:
            self._wait_for_app(stop)
            self.flush()
        else:
            self.tick()

    def tick(self) -> None:
        """Post if the interval has passed (the producer may be idle: call it on a timer)."""
        if self.clock() - self._last_post >= self.interval_s:
            self.flush()

    def flush(self) -> None:
        """Post what is pending (and the status) unless the app is still busy."""
        with self._cond:
            if self._in_flight >= MAX_IN_FLIGHT or self._closed:
                return
            self._in_flight += 1
        with self._lock:
            batch = FeedBatch(self._pending, self._status, self._reset, self._events)
            self._pending, self._events, self._reset = [], [], False
            self._last_post = self.clock()
        self._post(batch)

    def taken(self) -> None:
        with self._cond:
            self._in_flight = max(0, self._in_flight - 1)
            self._cond.notify_all()

    def close(self) -> None:
        """The app is gone: never wait for it again."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _wait_for_app(self, stop: threading.Event | None, timeout_s: float | None = None
                      ) -> None:
        deadline = None if timeout_s is None else self.clock() + timeout_s
        with self._cond:
            while self._in_flight >= MAX_IN_FLIGHT and not self._closed and \
                    not (stop and stop.is_set()):
                if deadline is not None and self.clock() > deadline:
                    return
                self._cond.wait(0.1)

    def final(self) -> None:
        """The producer ended: post everything, waiting (a little) for the app."""
        self._wait_for_app(None, timeout_s=5.0)
        with self._cond:
            self._in_flight = min(self._in_flight, MAX_IN_FLIGHT - 1)
        self.flush()
