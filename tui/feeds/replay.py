"""Replay feed: a recording's records, paced, with speed, pause, step and seek.

Input is either a nodetrace recording (tracer/recording/, replayed through the same
stages as `nodetrace replay`) or a file of `trace -o jsonl` lines.  Both are read
whole into memory as record dicts first (seeking needs them by index); a recording
too large for that should be cut with `nodetrace replay --since/--until -o jsonl`.
"""

from __future__ import annotations

import bisect
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tracer.recording.opener import Kind, OpenedInput, open_input
from tracer.util.errors import RecordingFormatError
from tui.feed import (
    FeedOutput,
    FeedStatus,
    PodSelectionControl,
    Record,
    RecordingControl,
    ReplayState,
)
from tui.records import time_ns

FAST_CHUNK = 2_000           # records per emit when not paced
TICK_S = 0.02                # how often a paced replay wakes up


@dataclass
class Loaded:
    records: list[Record]
    status: FeedStatus
    warnings: list[str] = field(default_factory=list)
    pod_labels: dict[str, dict[str, str]] = field(default_factory=dict)  # for `l` in replay
    events: list[object | None] | None = None   # parallel to records (FeedBatch.events)


def load_jsonl(source: Path | OpenedInput) -> Loaded:
    records: list[Record] = []
    bad = 0
    with _opened(source, "jsonl") as opened:
        path = opened.name
        for line in opened.text_lines():
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                bad += 1
                continue
            if isinstance(rec, dict) and isinstance(rec.get("kind"), str):
                if rec["kind"] != "summary":   # the stream's end-of-run summary
                    records.append(rec)
            else:
                bad += 1
    if bad and not records:
        raise RecordingFormatError(f"{path}: none of its {bad} line(s) is a record of "
                                   "`trace -o jsonl`")
    warnings = [f"{path}: skipped {bad} line(s) that are not records"] if bad else []
    return Loaded(with_diagnosis(opened.path, records) if opened.path else records,
                  FeedStatus(source=str(path), metadata="as recorded (jsonl)"), warnings)


def with_diagnosis(path: Path, records: list[Record]) -> list[Record]:
    """The findings `diagnose --from FILE` makes of the file's events, in place of any
    the file carries, each where the replay reaches its first connection."""
    from tracer.events.records import event_record
    from tracer.modes.diagnose_file import diagnose_file

    try:
        findings = diagnose_file(path).all_findings()
    except RecordingFormatError:   # records, but no events to diagnose: shown as they are
        return records
    out = [r for r in records if r.get("kind") not in ("finding", "finding-update")]
    times, last = [], 0
    for r in out:
        last = max(last, time_ns(r.get("time")))
        times.append(last)
    for f in sorted(findings, key=lambda f: f.first_seen_ns, reverse=True):
        out.insert(bisect.bisect_right(times, f.first_seen_ns), event_record(f))
    return out


def _opened(source: Path | OpenedInput, kind: Kind) -> OpenedInput:
    return source if isinstance(source, OpenedInput) else open_input(source, allow=(kind,))


class _Records:
    """A sink of the record dicts `replay -o jsonl` prints: names beside the events."""

    def __init__(self) -> None:
        from tracer.events.records import event_record
        from tracer.pipeline.enrich import names_of
        from tracer.sinks.naming import add_names

        self.records: list[Record] = []
        self.events: list[object | None] = []   # what each record was made from
        self._record, self._names_of, self._add_names = event_record, names_of, add_names

    def write(self, batch: Sequence[Any]) -> None:
        record, add_names = self._record, self._add_names
        self.records.extend(add_names(record(ev), ev, names)
                            for ev, names in zip(batch, self._names_of(batch), strict=True))
        self.events.extend(batch)

    def close(self) -> None:
        pass


def load_recording(capture: Path | OpenedInput) -> Loaded:
    # imported here: only recordings need msgpack and the pipeline stages
    from tracer.modes import build
    from tracer.modes.drive import drive
    from tracer.recording.reader import RecordingReader

    labels: dict[str, dict[str, str]] = {}

    def pod_seen(kind: str, _action: str, obj: Mapping[str, Any], _at: float) -> None:
        if kind == "Pod":   # every pod of the recording, deleted ones too: `l` filters
            m = obj.get("metadata") or {}
            labels[f"{m.get('namespace', '')}/{m.get('name', '')}"] = dict(
                m.get("labels") or {})

    sink = _Records()
    with RecordingReader(_opened(capture, "recording")) as reader:
        path = reader.name
        h = reader.header
        rep = build.replay_feed(reader)   # what `replay -o jsonl` prints, names and findings
        rep.index.add_observer(pod_seen)
        # the end record's loss ledger: a loss the stream did not report as records
        lost = dict(drive(rep.source, rep.pipeline, [sink], threading.Event(),
                          end_wall_ns=rep.end_wall_ns, loss_warning=None).lost)
        warnings = list(reader.warnings())
        if (unchecked := reader.unchecked()) is not None:
            warnings.insert(0, unchecked)
        if rep.source.end is None and reader.truncated_at is None \
                and reader.damaged_at is None:
            warnings.append(f"{path} has no end record: the recording did not finish")
        status = FeedStatus(source=str(path), node=h.node or "?",
                            kernel=h.kernel_release or "?", attached=tuple(h.attached),
                            unavailable=dict(h.unavailable), metadata="recorded")
    records, events = sink.records, sink.events
    seen = {r["layer"]: r["total"] for r in records if r.get("kind") == "lost"}
    for layer, total in lost.items():
        if total and seen.get(layer, 0) < total:
            records.append({"kind": "lost", "time": records[-1]["time"] if records else "",
                            "layer": layer, "count": total - seen.get(layer, 0),
                            "total": total})
            events.append(None)
    return Loaded(records, status, warnings, labels, events)


def load(path: Path | str) -> Loaded:
    """A recording or a jsonl file (or `-`, standard input), told apart by the
    recording's magic (tracer/recording/opener.py)."""
    opened = open_input(path)
    loaded = load_recording(opened) if opened.kind == "recording" else load_jsonl(opened)
    loaded.status = replace(loaded.status, warnings=tuple(loaded.warnings))
    return loaded


class ReplayFeed:
    """Paces `records` by their `time`; speed 0 replays as fast as the app takes it."""

    recording: RecordingControl | None = None
    pods: PodSelectionControl | None = None      # `l`, `N` filter the view

    def __init__(self, records: Sequence[Record], status: FeedStatus, *,
                 speed: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 pod_labels: Mapping[str, Mapping[str, str]] | None = None,
                 events: Sequence[object | None] | None = None) -> None:
        self.records = records
        self.events = events        # parallel to records, when the loader had them
        self.pod_labels: Mapping[str, Mapping[str, str]] = pod_labels or {}
        # times never go backwards: final reports carry their flow's last packet time
        self.times: list[int] = []
        last = 0
        for r in records:
            last = max(last, time_ns(r.get("time")))
            self.times.append(last)
        self.start_ns = next((t for t in self.times if t), 0)
        self.end_ns = self.times[-1] if self.times else 0
        self.base_status = status
        self.clock = clock
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self.index = 0             # next record to deliver
        self.speed = speed
        self.paused = False
        self._steps = 0
        self._seek: int | None = None
        self._anchor: tuple[float, int] | None = None   # (clock, recording time)

    @property
    def controls(self) -> ReplayFeed:
        return self

    # --- controls, called from the app's thread ---------------------------------

    def toggle_pause(self) -> None:
        with self._lock:
            self.paused = not self.paused
            self._anchor = None
        self._wake.set()

    def step(self) -> None:
        with self._lock:
            self._steps += 1
        self._wake.set()

    def set_speed(self, speed: float) -> None:
        with self._lock:
            self.speed = max(0.0, speed)
            self._anchor = None
        self._wake.set()

    def seek(self, offset_ns: int) -> None:
        with self._lock:
            self._seek = self.start_ns + max(0, offset_ns)
        self._wake.set()

    # --- the producer ------------------------------------------------------------

    def position_ns(self) -> int:
        i = self.index
        return self.times[i - 1] if i else self.start_ns

    def state(self) -> ReplayState:
        return ReplayState(self.start_ns, self.end_ns, self.position_ns(), self.speed,
                           self.paused, self.index >= len(self.records))

    def _deliver(self, out: FeedOutput, upto: int, stop: threading.Event) -> None:
        while self.index < upto and not stop.is_set():
            end = min(upto, self.index + FAST_CHUNK)
            chunk = self.records[self.index:end]
            events = self.events[self.index:end] if self.events is not None else None
            self.index = end
            out.set_status(replay=self.state())
            out.emit(chunk, stop, events=events)

    def run(self, out: FeedOutput, stop: threading.Event) -> None:
        out.set_status(**{k: getattr(self.base_status, k) for k in
                          ("source", "node", "kernel", "attached", "unavailable",
                           "metadata", "warnings")}, replay=self.state(), running=True)
        n = len(self.records)
        while not stop.is_set():
            with self._lock:
                seek, self._seek = self._seek, None
                steps, self._steps = self._steps, 0
                paused, speed = self.paused, self.speed
            if seek is not None:
                target = bisect.bisect_left(self.times, seek)
                if target < self.index:
                    out.reset()
                    self.index = 0
                self._deliver(out, target, stop)
                self._anchor = None
            if steps and self.index < n:
                self._deliver(out, min(n, self.index + steps), stop)
            if not paused and self.index < n:
                if speed <= 0:
                    self._deliver(out, min(n, self.index + FAST_CHUNK), stop)
                    continue
                now = self.clock()
                if self._anchor is None:
                    self._anchor = (now, self.times[self.index])
                due = self._anchor[1] + int((now - self._anchor[0]) * speed * 1e9)
                upto = bisect.bisect_right(self.times, due, lo=self.index)
                if upto > self.index:
                    self._deliver(out, upto, stop)
            out.set_status(replay=self.state())
            out.emit((), stop)
            self._wake.wait(TICK_S)
            self._wake.clear()
        out.set_status(replay=self.state(), running=False)
        out.final()
