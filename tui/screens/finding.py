"""A finding: its evidence, the Kubernetes objects, the fix, and its connections."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from tracer.events.finding import Finding
from tui.connection_view import Row
from tui.findings import evidence_line, object_text
from tui.records import clock


def finding_text(f: Finding, related: list[Row]) -> Text:
    t = Text()
    t.append(f"{f.severity.upper()}  {f.kind}\n", style="bold red")
    t.append(f"{f.summary}\n\n", style="bold")
    # the finding is reported once, at its first connection: the last time is that of
    # the newest failing connection it concerns
    last = max([f.first_seen_ns, *(c.last_ns for c in related)])
    t.append(f"seen {f.count} time(s), first {clock(f.first_seen_ns)}, "
             f"last {clock(last)}\n\n")
    t.append("Kubernetes objects\n", style="bold underline")
    for o in f.objects or ():
        t.append(f"  {object_text(o)}\n")
    if not f.objects:
        t.append("  (none named)\n", style="dim")
    t.append("\nEvidence\n", style="bold underline")
    for e in [evidence_line(e) for e in f.evidence] or ["(none recorded)"]:
        t.append(f"  - {e}\n")
    t.append("\nFix\n", style="bold underline")
    t.append(f"  {f.fix or '(none given)'}\n", style="green")
    if related:
        t.append("\nConnections\n", style="bold underline")
        for c in related[:20]:
            t.append(f"  {c.src_name} -> {c.dst_name}  {c.state}\n")
    return t


class FindingScreen(Screen[None]):
    BINDINGS = [Binding("escape,backspace", "app.pop_screen", "Back")]

    def __init__(self, finding: Finding, related: list[Row]) -> None:
        super().__init__()
        self.finding = finding
        self.related = related

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="finding-detail"):
            yield Static(finding_text(self.finding, self.related), id="finding-body")
        yield Footer()
