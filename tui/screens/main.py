"""The main window: header, findings first, then connections, drops and the log."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static, TabbedContent, TabPane

from tui import selection_edit as selecting
from tui.widgets.connections import ConnectionsTable
from tui.widgets.drops import DropsView
from tui.widgets.eventlog import EventLog
from tui.widgets.findings import FindingsTable
from tui.widgets.header import StatusHeader

PROMPTS = ("filter", "seek", "selector", "namespace")


class MainScreen(Screen[None]):
    BINDINGS = [
        Binding("f", "focus_findings", "Findings"),
        Binding("c", "show_tab('connections')", "Connections"),
        Binding("d", "show_tab('drops')", "Drops"),
        Binding("e", "show_tab('events')", "Events"),
        Binding("a", "app.toggle_all", "All traffic / failures"),
        Binding("s", "app.cycle_sort", "Sort"),
        Binding("slash", "open_filter", "Filter", key_display="/"),
        Binding("g", "open_seek", "Replay: go to a time"),
        Binding("l", "open_input('selector')", "Label selector (-l)", show=False),
        Binding("N", "open_input('namespace')", "Namespace (-n, -A)", show=False),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def compose(self) -> ComposeResult:
        yield StatusHeader(id="status")
        yield Static("Findings", id="findings-title", classes="pane-title")
        yield FindingsTable(id="findings")
        with TabbedContent(id="tabs", initial="connections"):
            with TabPane("Connections", id="connections"):
                yield Static("", id="connections-title", classes="pane-title")
                yield ConnectionsTable(id="connections-table")
            with TabPane("Drops", id="drops"):
                yield DropsView(id="drops-view")
            with TabPane("Events", id="events"):
                yield EventLog(id="event-log")
        yield Input(placeholder="filter: text pod:NAME ns:NS svc:NAME reason:R kind:K "
                    "(Enter applies, Esc clears)", id="filter")
        yield Input(placeholder="replay: go to an offset from the start (90s, 2m, 1.5h); "
                    "Enter goes, Esc cancels", id="seek")
        yield Input(placeholder="-l label selector, kubectl syntax (app=web,tier!=db, "
                    "env in (a,b), !canary); empty: none; Enter applies, Esc cancels",
                    id="selector")
        yield Input(placeholder="-n namespace (-A or empty: every namespace); Enter "
                    "applies, Esc cancels", id="namespace")
        yield Static("", id="note")
        yield Footer()

    def on_mount(self) -> None:
        for box in PROMPTS:
            self.query_one(f"#{box}", Input).display = False
        self.query_one("#findings", FindingsTable).focus()

    def action_focus_findings(self) -> None:
        self.query_one("#findings", FindingsTable).focus()

    def action_show_tab(self, tab: str) -> None:
        self.query_one("#tabs", TabbedContent).active = tab
        target = {"connections": "#connections-table", "drops": "#drops-by-reason",
                  "events": "#event-log"}[tab]
        self.query_one(target).focus()

    def action_open_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def action_open_seek(self) -> None:
        self.action_open_input("seek")

    def action_open_input(self, which: str) -> None:
        """`l` and `N` open prefilled with what is selected now."""
        for other in PROMPTS[1:]:      # one prompt at a time (the filter may stay)
            self.query_one(f"#{other}", Input).display = False
        box = self.query_one(f"#{which}", Input)
        app = self.app
        if which == "selector":
            box.value = selecting.labels_text(app.selection)  # type: ignore[attr-defined]
        elif which == "namespace":
            box.value = selecting.namespace_text(app.selection)  # type: ignore[attr-defined]
        box.display = True
        box.focus()
        box.cursor_position = len(box.value)

    def _close(self, box: Input) -> None:
        box.value = ""
        box.display = False
        self.query_one("#findings", FindingsTable).focus()

    def action_clear_filter(self) -> None:
        for which in PROMPTS[1:]:
            box = self.query_one(f"#{which}", Input)
            if box.display:
                self._close(box)
                return
        box = self.query_one("#filter", Input)
        box.value = ""
        box.display = False
        self.app.set_filter("")  # type: ignore[attr-defined]
        self.query_one("#findings", FindingsTable).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        apply = {"seek": "seek_to", "selector": "set_selector",
                 "namespace": "set_namespace"}.get(event.input.id or "")
        if apply is not None:
            # an invalid value stays for editing, the error under it
            if getattr(self.app, apply)(event.value):
                self._close(event.input)
            return
        if event.input.id == "filter" and \
                self.app.set_filter(event.value):  # type: ignore[attr-defined]
                event.input.display = bool(event.value)
                self.action_show_tab("connections")

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if isinstance(event.data_table, FindingsTable):
            self.app.open_finding(event.data_table.selected())  # type: ignore[attr-defined]
        elif isinstance(event.data_table, ConnectionsTable):
            self.app.open_connection(event.data_table.selected())  # type: ignore[attr-defined]

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        if isinstance(event.data_table, ConnectionsTable):
            self.app.sort_by(str(event.label).lower())  # type: ignore[attr-defined]
