"""The end-of-run summary: what passed to the output, counted on its way.

`SummarySink` wraps the real sink and counts each batch before handing it on, so the
summary describes exactly what was written.  For a -o jsonl stream it ends the stream
with one `{"kind": "summary", ...}` line (docs/events.md); the command prints `lines()`
on stderr after the run.  The interface is three calls so any drive loop can use it
without the wrapper: `count(batch)`, `record()`, `lines()`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from tracer.events.finding import Finding, FindingUpdate
from tracer.events.model import LostEvent
from tracer.events.records import Output
from tracer.sinks.jsonl import JsonlSink
from tracer.sinks.sink import Sink
from tracer.util.timefmt import rfc3339_ns


class Summary:
    """Events by kind, findings by kind (one per cause, however often it was updated),
    events lost by layer, and the time covered.

    `start_wall_ns`/`end_wall_ns`: the span the run covered (a replay passes the
    recording's); by default, from when the summary was made to when it is read."""

    def __init__(self, start_wall_ns: int | None = None) -> None:
        # counted by type, at C speed (an event's kind is its class's): replay writes
        # a million events a second and a Python loop per event would show
        self._types: Counter[type] = Counter()
        self._findings: dict[str, str] = {}      # key -> kind
        self.lost: Counter[str] = Counter()
        self.start_wall_ns = time.time_ns() if start_wall_ns is None else start_wall_ns
        self.end_wall_ns: int | None = None
        self.last_wall_ns = 0                    # the latest event counted

    def count(self, batch: Sequence[Output]) -> None:
        if not batch:
            return
        types = Counter(map(type, batch))
        self._types.update(types)
        if Finding in types or LostEvent in types:
            for item in batch:
                if type(item) is Finding:
                    self._findings[item.id] = item.kind
                elif type(item) is LostEvent:
                    self.lost[item.layer] += item.count
        self.last_wall_ns = max(self.last_wall_ns, batch[-1].wall_ns)

    def events(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for t, n in self._types.items():
            if t is not Finding and t is not FindingUpdate:
                out[str(getattr(t, "kind", t.__name__))] += n
        return out

    def findings(self) -> Counter[str]:
        return Counter(self._findings.values())

    def _end(self) -> int:
        return time.time_ns() if self.end_wall_ns is None else self.end_wall_ns

    def duration_s(self) -> float:
        return max(0, self._end() - self.start_wall_ns) / 1e9

    def record(self) -> dict[str, Any]:
        return {"kind": "summary", "time": rfc3339_ns(self._end()),
                "duration_s": round(self.duration_s(), 3),
                "events": dict(sorted(self.events().items())),
                "findings": dict(sorted(self.findings().items())),
                "lost": dict(sorted((k, v) for k, v in self.lost.items() if v)),
                "lost_total": sum(self.lost.values())}

    def lines(self) -> list[str]:
        rec = self.record()
        total = sum(rec["events"].values())
        lines = [f"summary: {total} event(s) in {rec['duration_s']:g} s"
                 + (": " + ", ".join(f"{k} {v}" for k, v in rec["events"].items())
                    if total else "")]
        found = rec["findings"]
        lines.append(f"summary: {sum(found.values())} finding(s)"
                     + (": " + ", ".join(f"{k} {v}" for k, v in found.items()) if found
                        else ""))
        lost = rec["lost"]
        lines.append(f"summary: {rec['lost_total']} event(s) lost"
                     + (": " + ", ".join(f"{k} {v}" for k, v in lost.items()) if lost
                        else ""))
        return lines


class SummarySink:
    """The real sink, with a Summary of what it was given.  On a jsonl stream the
    summary is the last line, written at close."""

    def __init__(self, sink: Sink, summary: Summary | None = None, *,
                 lines: JsonlSink | None = None,
                 end_wall_ns: Callable[[], int | None] | None = None) -> None:
        """`lines`: the jsonl stream the summary line goes to, when `sink` wraps it
        (replay's worker copy); `end_wall_ns`: the end of what was covered, asked at
        close (a replay: the recording's end record, once it has been read)."""
        self.sink = sink
        self.summary = summary or Summary()
        self.lines = lines if lines is not None else \
            sink if isinstance(sink, JsonlSink) else None
        self.end_wall_ns = end_wall_ns

    def write(self, batch: Sequence[Output]) -> None:
        self.summary.count(batch)
        self.sink.write(batch)

    def close(self) -> None:
        if self.end_wall_ns is not None:
            s = self.summary
            s.end_wall_ns = self.end_wall_ns() or s.last_wall_ns or s.start_wall_ns
        if self.lines is not None:
            self.lines.out.write_bytes(orjson.dumps(self.summary.record()) + b"\n")
        self.sink.close()
