"""Drops by reason and by pod."""

from __future__ import annotations

from collections import Counter

from textual.app import ComposeResult
from textual.containers import Horizontal

from tui.widgets.tables import KeyedTable


class DropsView(Horizontal):
    def compose(self) -> ComposeResult:
        yield KeyedTable(("REASON", "DROPS"), id="drops-by-reason")
        yield KeyedTable(("POD (or source)", "DROPS"), id="drops-by-pod")

    def show(self, by_reason: Counter[str], by_pod: Counter[str], text: str) -> None:
        def rows(c: Counter[str]) -> list[tuple[str, tuple[str, str]]]:
            return [(k, (k, f"{v:,}")) for k, v in c.most_common(200)
                    if not text or text in k.lower()]

        self.query_one("#drops-by-reason", KeyedTable).sync(rows(by_reason))
        self.query_one("#drops-by-pod", KeyedTable).sync(rows(by_pod))
