"""Everything the TUI shows, folded from the record stream (no Textual here).

The app applies every batch here, paused or not; only the display stops when paused.
Everything is bounded: the log is a ring, the connection table evicts the oldest.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Sequence

from tracer.events.finding import Finding
from tui.connection_view import ConnectionView
from tui.feed import Record
from tui.findings import SEVERITY_ORDER, apply_update, parse_finding
from tui.records import pod_name

LOG_LINES = 2_000
RATE_WINDOW_S = 2.0


class Model:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.reset()

    def reset(self) -> None:
        self.findings: dict[str, Finding] = {}
        self.connections = ConnectionView()
        self.drops_by_reason: Counter[str] = Counter()
        self.drops_by_pod: Counter[str] = Counter()
        self.log: deque[Record] = deque(maxlen=LOG_LINES)
        self.lost: dict[str, int] = {}           # layer -> total lost
        self.events = 0
        self.version = 0
        self._rate: deque[tuple[float, int]] = deque()

    @property
    def lost_total(self) -> int:
        return sum(self.lost.values())

    def rate(self) -> float:
        """Events per second over the last couple of seconds (wall clock)."""
        now = self.clock()
        while self._rate and now - self._rate[0][0] > RATE_WINDOW_S:
            self._rate.popleft()
        if not self._rate:
            return 0.0
        span = max(now - self._rate[0][0], 1.0)
        return sum(n for _t, n in self._rate) / span

    def apply(self, records: Sequence[Record],
              events: Sequence[object | None] | None = None) -> int:
        """`events`: the event each record was made from, if the feed has it."""
        n = 0
        apply_conn = self.connections.apply
        log = self.log.append
        for i, rec in enumerate(records):
            n += 1
            kind = rec.get("kind")
            log(rec)
            if kind == "finding":
                f = parse_finding(rec)
                if f is not None:
                    self.findings[f.key] = f
                continue
            if kind == "finding-update":
                apply_update(self.findings, rec)   # the row of its finding, in place
                continue
            if kind == "lost":
                layer, total = str(rec.get("layer")), rec.get("total")
                if isinstance(total, int):
                    self.lost[layer] = max(self.lost.get(layer, 0), total)
                continue
            if kind == "drop":
                count = rec.get("count")
                count = count if isinstance(count, int) else 1
                self.drops_by_reason[str(rec.get("reason"))] += count
                src, dst = rec.get("src"), rec.get("dst")
                who = pod_name(src) or pod_name(dst) or (
                    str(src.get("ip")) if isinstance(src, dict) and src.get("ip") else "-")
                self.drops_by_pod[who] += count
            apply_conn(rec, events[i] if events is not None else None)
        if n:
            self.events += n
            self._rate.append((self.clock(), n))
            self.version += 1
        return n

    def sorted_findings(self) -> list[Finding]:
        return sorted(self.findings.values(),
                      key=lambda f: (SEVERITY_ORDER.get(f.severity, 9), -f.first_seen_ns))
