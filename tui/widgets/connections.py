"""The connections table: failures first, sortable, bounded."""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text

from tui.connections import Connection
from tui.filtering import Filter
from tui.records import clock
from tui.widgets.tables import KeyedTable

MAX_ROWS = 500
SORTS = ("last seen", "packets", "bytes", "source", "destination", "state")


def _sort_key(sort: str) -> object:
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
    return lambda c: c.last_time     # newest first: sorted in reverse


def select(conns: Iterable[Connection], flt: Filter, all_traffic: bool, sort: str
           ) -> list[Connection]:
    """The rows to show: failures only unless `all_traffic`; failures always first."""
    rows = [c for c in conns if (all_traffic or c.failed) and (not flt or
                                                              flt.matches(c.subject()))]
    rows.sort(key=_sort_key(sort), reverse=sort == "last seen")  # type: ignore[arg-type]
    rows.sort(key=lambda c: not c.failed)   # stable: the chosen order within each group
    return rows[:MAX_ROWS]


class ConnectionsTable(KeyedTable):
    COLUMNS = ("SOURCE", "DESTINATION", "PROTO", "NAT", "STATE", "PKTS", "BYTES", "LAST SEEN")

    def __init__(self, **kwargs: object) -> None:
        super().__init__(self.COLUMNS, **kwargs)
        self.connections: dict[str, Connection] = {}

    def show(self, rows: list[Connection]) -> None:
        self.connections = {repr(c.key): c for c in rows}
        self.sync([(repr(c.key), (
            c.src_name, c.dst_name, c.proto, c.nat or "-",
            Text(c.state + (f" ({', '.join(sorted(c.marks))})" if c.marks else ""),
                 style="bold red" if c.failed else "green"),
            f"{c.packets:,}", f"{c.bytes:,}", clock(c.last_ns))) for c in rows])

    def selected(self) -> Connection | None:
        key = self.selected_key()
        return self.connections.get(key) if key else None
