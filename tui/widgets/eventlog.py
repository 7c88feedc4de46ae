"""The raw event stream, filtered, bounded."""

from __future__ import annotations

from collections.abc import Iterable

from textual.widgets import RichLog

from tui.feed import Record
from tui.filtering import Filter, record_subject
from tui.records import clock, describe, time_ns

MAX_LINES = 1_000
REBUILD_LINES = 500     # a filter change redraws the newest lines only
MAX_WRITE = 200         # lines written per redraw: beyond, the stream is too fast to read


class EventLog(RichLog):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(max_lines=MAX_LINES, wrap=False, markup=False, **kwargs)  # type: ignore[arg-type]
        self._seen = 0     # records of the model's log already written

    def show(self, log: Iterable[Record], total: int, flt: Filter, rebuild: bool) -> None:
        """Append the records that arrived since the last call (all of them on
        `rebuild`, e.g. after the filter changed)."""
        items = list(log)
        new = min(len(items), REBUILD_LINES if rebuild else total - self._seen)
        if rebuild:
            self.clear()
        if new > MAX_WRITE:
            self.write(f"... {new - MAX_WRITE:,} more events (too fast to list: filter "
                       "with / to narrow)")
            new = MAX_WRITE
        for rec in items[len(items) - new:] if new > 0 else ():
            if flt and not flt.matches(record_subject(rec)):
                continue
            self.write(f"{clock(time_ns(rec.get('time')))} {describe(rec)}")
        self._seen = total
