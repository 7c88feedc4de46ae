"""The connections table: failures first, sortable, bounded."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from typing import Any

from rich.text import Text

from tui.connection_view import Row
from tui.filtering import Filter
from tui.records import clock
from tui.widgets.tables import KeyedTable

MAX_ROWS = 100     # a screenful or three; the filter narrows (every row costs a redraw)
SORTS = ("last seen", "packets", "bytes", "source", "destination", "state")


def _sort_key(sort: str) -> Callable[[Row], Any]:
    if sort == "packets":
        return lambda c: -c.packets
    if sort == "bytes":
        return lambda c: -c.bytes
    if sort == "source":
        return lambda c: c.src_name
    if sort == "destination":
        return lambda c: c.dst_name
    if sort == "state":
        return lambda c: c.state
    return lambda c: c.last_ns       # newest first: sorted in reverse


def select(conns: Iterable[Row], flt: Filter, all_traffic: bool, sort: str
           ) -> list[Row]:
    """The rows to show: failures only unless `all_traffic`; failures always first;
    at most MAX_ROWS (a partial sort: the table may hold tens of thousands)."""
    failed: list[Row] = []
    others: list[Row] = []
    for c in conns:
        if c.failed:
            failed.append(c)
        elif all_traffic:
            others.append(c)
    if flt:
        failed = [c for c in failed if flt.matches(c.subject())]
        others = [c for c in others if flt.matches(c.subject())]
    key = _sort_key(sort)
    pick = heapq.nlargest if sort == "last seen" else heapq.nsmallest
    rows: list[Row] = pick(MAX_ROWS, failed, key=key)
    if len(rows) < MAX_ROWS:
        rows += pick(MAX_ROWS - len(rows), others, key=key)
    return rows


class ConnectionsTable(KeyedTable):
    COLUMNS = ("SOURCE", "DESTINATION", "PROTO", "NAT", "STATE", "PKTS", "BYTES", "LAST SEEN")

    def __init__(self, **kwargs: object) -> None:
        super().__init__(self.COLUMNS, **kwargs)
        self.connections: dict[str, Row] = {}

    def show(self, rows: list[Row]) -> None:
        self.connections = {repr(c.key): c for c in rows}
        self.sync([(repr(c.key), (
            Text(c.src_name), Text(c.dst_name), c.proto, Text(c.nat or "-"),
            Text(c.state + (f" ({', '.join(sorted(c.marks))})" if c.marks else ""),
                 style="bold red" if c.failed else "green"),
            f"{c.packets:,}", f"{c.bytes:,}", clock(c.last_ns))) for c in rows])

    def selected(self) -> Row | None:
        key = self.selected_key()
        return self.connections.get(key) if key else None
