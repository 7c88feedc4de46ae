"""The findings pane: what is wrong, first."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

from tracer.events.finding import Finding
from tui.widgets.tables import KeyedTable

SEVERITY_STYLE = {"critical": "bold white on red", "error": "bold red",
                  "warning": "yellow", "info": "cyan"}


def age(now_ns: int, then_ns: int) -> str:
    if not then_ns or not now_ns:
        return "-"
    s = max(0, now_ns - then_ns) // 1_000_000_000
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    return f"{s // 3600}h"


def clip(text: str, width: int = 90) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


class FindingsTable(KeyedTable):
    COLUMNS = ("SEVERITY", "FINDING", "SUMMARY", "COUNT", "AGE")

    def __init__(self, **kwargs: object) -> None:
        super().__init__(self.COLUMNS, **kwargs)
        self.findings: dict[str, Finding] = {}

    def show(self, findings: Sequence[Finding], now_ns: int) -> None:
        self.findings = {f.key: f for f in findings}
        self.sync([(f.key, (Text(f.severity, style=SEVERITY_STYLE.get(f.severity, "")),
                            f.kind, clip(f.summary), str(f.count),
                            age(now_ns, f.first_seen_ns)))
                   for f in findings])

    def selected(self) -> Finding | None:
        key = self.selected_key()
        return self.findings.get(key) if key else None
