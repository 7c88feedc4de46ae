"""A connection's timeline: each interface it crossed with the tuple seen there, NAT
rewrites, drops with reason and location, ICMP errors, retransmits."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from tracer.events.finding import Finding
from tui.connection_view import Row
from tui.records import addr, clock


def summary_text(c: Row, finding: Finding | None) -> Text:
    t = Text()
    t.append(f"{c.src_name} -> {c.dst_name}  ", style="bold")
    t.append(c.state, style="bold red" if c.failed else "bold green")
    t.append(f"\n{c.proto} {addr(c.src_ep)} -> {addr(c.dst_ep)}   NAT: {c.nat or 'none'}   "
             f"packets {c.packets:,}  bytes {c.bytes:,}   SYN retransmits {c.retransmits}")
    if c.marks:
        t.append(f"\npath marks: {', '.join(sorted(c.marks))}", style="yellow")
    if c.drops:
        t.append("\ndrops: " + ", ".join(f"{r} x{n}" for r, n in c.drops.items()),
                 style="red")
    if finding is not None:
        t.append(f"\nfinding: {finding.kind}: {finding.summary}", style="bold red")
        if finding.fix:
            t.append(f"\nfix: {finding.fix}", style="green")
    return t


class ConnectionScreen(Screen[None]):
    BINDINGS = [Binding("escape,backspace", "app.pop_screen", "Back")]

    def __init__(self, conn: Row, finding: Finding | None) -> None:
        super().__init__()
        self.conn = conn
        self.finding = finding

    def compose(self) -> ComposeResult:
        yield Static(summary_text(self.conn, self.finding), id="conn-summary")
        table: DataTable[str | Text] = DataTable(id="timeline", cursor_type="row",
                                                 zebra_stripes=True)
        yield table
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#timeline", DataTable)
        table.add_columns("TIME", "WHAT", "WHERE", "TUPLE SEEN THERE", "DETAIL")
        for step in self.conn.timeline():
            style = "bold red" if step.failure else ""
            table.add_row(clock(step.time_ns), Text(step.kind, style=style), step.where,
                          step.tuple, Text(step.detail, style=style))
