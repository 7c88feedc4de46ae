"""A DataTable updated in place: rows keyed, cells rewritten only when they change."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import DataTable

Cell = str | Text


class KeyedTable(DataTable[Cell]):
    """`sync(rows)` makes the table show exactly `rows` ([(key, cells)]) in order."""

    def __init__(self, columns: Sequence[str], **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)  # type: ignore[arg-type]
        self._columns = list(columns)
        self._shown: list[str] = []
        self._cells: dict[str, tuple[Cell, ...]] = {}

    def on_mount(self) -> None:
        for c in self._columns:
            self.add_column(c, key=c)

    def sync(self, rows: Sequence[tuple[str, Sequence[Cell]]]) -> None:
        keys = [k for k, _ in rows]
        if keys == self._shown:
            for key, cells in rows:
                old = self._cells.get(key)
                new = tuple(cells)
                if old != new:
                    for col, (a, b) in enumerate(zip(old or (), new, strict=False)):
                        if a != b:
                            self.update_cell(key, self._columns[col], b, update_width=True)
                    self._cells[key] = new
            return
        selected = self.selected_key()
        self.clear()
        for key, cells in rows:
            self.add_row(*cells, key=key)
            self._cells[key] = tuple(cells)
        self._shown = keys
        self._cells = {k: self._cells[k] for k in keys}
        if selected in keys:
            self.move_cursor(row=keys.index(selected))

    def selected_key(self) -> str | None:
        if not self._shown or self.cursor_row < 0 or self.cursor_row >= len(self._shown):
            return None
        return self._shown[self.cursor_row]
