"""The nodetrace TUI: one app for live tracing and replay, fed by a `Feed`.

The feed runs in a thread worker and posts batches (~10 a second, bounded); every
batch is folded into the model at once, the panes are redrawn on a timer unless the
display is paused.  The app never knows whether the feed is a live session or a
recording.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from textual import work
from textual.app import App, ScreenStackError
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Static, TabbedContent
from textual.worker import Worker, WorkerFailed, WorkerState

from tracer.events.finding import Finding
from tracer.metadata.selectors import SelectorError
from tracer.session.pod_scope import Selection
from tui import selection_edit as selecting
from tui.commands import NodetraceCommands
from tui.connection_view import Row
from tui.feed import Feed, FeedBatch, FeedOutput, FeedStatus
from tui.filtering import Filter, FilterError
from tui.findings import finding_subject
from tui.messages import FeedArrived, StatusNote
from tui.model import Model
from tui.screens.connection import ConnectionScreen
from tui.screens.finding import FindingScreen
from tui.screens.help import HelpScreen
from tui.screens.main import MainScreen
from tui.widgets.connections import MAX_ROWS, SORTS, ConnectionsTable, select
from tui.widgets.drops import DropsView
from tui.widgets.eventlog import EventLog
from tui.widgets.findings import FindingsTable
from tui.widgets.header import StatusHeader

REFRESH_S = 0.25
APPLY_EVERY_S = 0.05
APPLY_BUDGET_S = 0.025         # at most half the UI thread's time goes to folding events
APPLY_SLICE = 1_000
REDRAW_SHARE = 0.2
DETACH_TIMEOUT_S = 15.0
_OFFSET = re.compile(r"^\+?(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNIT_NS = {"ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
SPEEDS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 100.0, 0.0)   # 0: as fast as possible


class NodetraceApp(App[int]):
    CSS_PATH = Path(__file__).with_name("app.tcss")   # absolute: subclasses live elsewhere
    TITLE = "nodetrace"
    COMMANDS = App.COMMANDS | {NodetraceCommands}
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("p", "toggle_display_pause", "Pause display"),
        Binding("r", "toggle_recording", "Record"),
        Binding("space", "replay_pause", "Replay pause/play", key_display="space"),
        Binding("n", "replay_step", "Replay step"),
        Binding("plus,equals_sign", "replay_speed(1)", "Replay faster", key_display="+"),
        Binding("minus", "replay_speed(-1)", "Replay slower", key_display="-"),
        Binding("right_square_bracket", "replay_seek(10)", "Seek +10 s", key_display="]"),
        Binding("left_square_bracket", "replay_seek(-10)", "Seek -10 s", key_display="["),
        Binding("0", "replay_seek_start", "Replay from the start"),
    ]

    def __init__(self, feed: Feed, *, clock: Callable[[], float] = time.monotonic,
                 wall_ns: Callable[[], int] = time.time_ns) -> None:
        super().__init__()
        self.feed = feed
        self.model = Model(clock)
        self.wall_ns = wall_ns
        self.status = FeedStatus()
        self.stop = threading.Event()
        self.out = FeedOutput(lambda batch: self.post_message(FeedArrived(batch)),
                              notify=lambda text, sev: self.post_message(StatusNote(text, sev)))
        self.filter = Filter()          # what every pane shows: the text filter and, in a
        self.text_filter = Filter()     # replay, the pod selection's view
        # -l/-n: a live session's (it re-attaches), else the view's
        self.selection: Selection | None = feed.pods.selection if feed.pods else None
        self.all_traffic = False
        self.sort = SORTS[0]
        self.display_paused = False
        self.feed_error: BaseException | None = None
        self._shown_version = -1
        self._filter_changed = True
        self._feed_worker: Worker[None] | None = None
        self._speed: float | None = None
        self._backlog: deque[FeedBatch] = deque()
        self._applied = 0              # records of the first backlog batch applied
        self._log_rebuild = True
        self._next_draw = 0.0
        self._warned = 0               # status warnings already shown

    def get_default_screen(self) -> Screen[None]:
        return MainScreen()

    def on_mount(self) -> None:
        self._feed_worker = self.run_feed()
        self.set_interval(REFRESH_S, self.refresh_view)
        self.set_interval(APPLY_EVERY_S, self.apply_backlog)
        self.call_after_refresh(self.refresh_view)

    @work(thread=True, exit_on_error=False, name="feed")
    def run_feed(self) -> None:
        self.feed.run(self.out, self.stop)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker is self._feed_worker and event.state == WorkerState.ERROR:
            self.feed_error = event.worker.error
            msg = getattr(self.feed_error, "message", None) or str(self.feed_error)
            self.status = FeedStatus(**{**self.status.__dict__, "running": False,
                                        "error": msg})
            self.note(f"the feed stopped: {msg}", "error")

    # --- data in --------------------------------------------------------------------

    def on_feed_arrived(self, message: FeedArrived) -> None:
        self._backlog.append(message.batch)
        self.apply_backlog()

    def apply_backlog(self) -> None:
        """Fold queued records into the model for at most APPLY_BUDGET_S, then return
        to the event loop (keys and redraws go between slices).  A batch is `taken`
        only once wholly applied: a feed faster than this waits (bounded)."""
        deadline = time.perf_counter() + APPLY_BUDGET_S
        while self._backlog and time.perf_counter() < deadline:
            batch = self._backlog[0]
            if self._applied == 0 and batch.reset:
                self.model.reset()
                self._filter_changed = self._log_rebuild = True
            end = min(len(batch.records), self._applied + APPLY_SLICE)
            self.model.apply(batch.records[self._applied:end],
                             batch.events[self._applied:end] if batch.events else None)
            self._applied = end
            if end >= len(batch.records):
                self._backlog.popleft()
                self._applied = 0
                self.status = batch.status
                self.out.taken()
                self._show_warnings()

    def _show_warnings(self) -> None:
        """A warning about the input (a damaged recording) is said when it is known,
        on screen, and stays counted in the header."""
        new = self.status.warnings[self._warned:]
        self._warned = len(self.status.warnings)
        for text in new:
            self.notify(text, title="input", severity="warning", timeout=30)
        if new:
            self.note(new[-1], "error")

    def on_status_note(self, message: StatusNote) -> None:
        self.note(message.text, message.severity)

    def note(self, text: str, severity: str = "information") -> None:
        try:
            note = self.screen.query_one("#note", Static)
        except ScreenStackError:    # shutting down: nothing to say it on
            return
        except NoMatches:   # another screen is on top: a toast instead
            self.notify(text, severity=severity)  # type: ignore[arg-type]
            return
        note.update(text)
        note.set_class(severity == "error", "error")

    # --- drawing ----------------------------------------------------------------------

    def now_ns(self) -> int:
        r = self.status.replay
        return r.position_ns if r is not None else self.wall_ns()

    def refresh_view(self, force: bool = False) -> None:
        try:
            screen = self.screen
        except ScreenStackError:    # a timer firing while the app shuts down
            return
        main = screen if isinstance(screen, MainScreen) else None
        if main is None or not main.is_mounted or not self.is_running:
            return
        try:
            header = main.query_one("#status", StatusHeader)
        except NoMatches:      # composing, or shutting down
            return
        header.show(
            self.status, self.model.rate(), self.model.events, self.model.lost,
            self.display_paused, self.selection_text())
        if self.display_paused:
            return
        changed = self.model.version != self._shown_version or self._filter_changed
        # the panes' cost grows with the connections held: under load redraw them no
        # more than REDRAW_SHARE of the time (keys are never waited for: they set
        # _filter_changed and redraw at once)
        if not force and (not changed or (not self._filter_changed
                                           and time.perf_counter() < self._next_draw)):
            return
        t0 = time.perf_counter()
        flt = self.filter
        findings = [f for f in self.model.sorted_findings()
                    if not flt or flt.matches(finding_subject(f))]
        main.query_one("#findings", FindingsTable).show(findings, self.now_ns())
        main.query_one("#findings-title", Static).update(
            f"Findings ({len(findings)})" if findings else
            "Findings: none yet (nothing diagnosed as wrong so far)")
        tab = main.query_one("#tabs", TabbedContent).active   # only the visible pane
        if tab == "connections":
            rows = select(self.model.connections, flt, self.all_traffic,
                          self.sort)
            main.query_one("#connections-table", ConnectionsTable).show(rows)
            what = "all traffic" if self.all_traffic else "failures only"
            more = f" of {len(self.model.connections):,} held" if len(rows) >= MAX_ROWS else ""
            main.query_one("#connections-title", Static).update(
                f"{len(rows)}{more} connection(s), {what} (a: toggle), failures first, sorted by "
                f"{self.sort} (s)" + (f", filter: {flt.source}" if flt.source else ""))
        elif tab == "drops":
            text = " ".join(v for k, v in flt.terms if not k)
            main.query_one("#drops-view", DropsView).show(
                self.model.drops_by_reason, self.model.drops_by_pod, text)
        elif tab == "events":
            main.query_one("#event-log", EventLog).show(
                self.model.log, self.model.events, flt, rebuild=self._log_rebuild)
            self._log_rebuild = False
        self._shown_version = self.model.version
        self._filter_changed = False
        spent = time.perf_counter() - t0
        self._next_draw = time.perf_counter() + spent * (1 - REDRAW_SHARE) / REDRAW_SHARE

    def on_tabbed_content_tab_activated(self) -> None:
        self._filter_changed = self._log_rebuild = True
        self.refresh_view()

    # --- actions ----------------------------------------------------------------------

    def set_filter(self, text: str) -> bool:
        try:
            self.text_filter = Filter.parse(text)
        except FilterError as exc:
            self.note(str(exc), "error")
            return False
        self.filter = replace(self.text_filter, pods=self.filter.pods,
                              namespace=self.filter.namespace)
        self._filter_changed = self._log_rebuild = True
        self.note(f"filter: {self.text_filter.source}" if self.text_filter
                  else "filter cleared")
        self.refresh_view()
        return True

    # --- `l`, `N`: the pod selection ---------------------------------------------------

    def selection_text(self) -> str:
        if self.feed.pods is not None:
            return self.status.selection    # what the session applied
        return ("view: " + self.selection.describe()) if self.selection else ""

    def set_selector(self, text: str) -> bool:
        """`l`: a kubectl label selector; an invalid one is said, and kept for editing."""
        try:
            pods = self.feed.pods
            return self.select(selecting.with_labels(
                self.selection, text, pods.default_namespace if pods else "default"))
        except SelectorError as exc:
            self.note(f"-l {text.strip()}: {exc.message}", "error")
            return False

    def set_namespace(self, text: str) -> bool:
        """`N`: a namespace, or -A for every one."""
        try:
            return self.select(selecting.with_namespace(self.selection, text))
        except SelectorError as exc:
            self.note(exc.message, "error")
            return False

    def select(self, selection: Selection | None) -> bool:
        """A live session re-attaches to the pods selected; a replay narrows its view."""
        if self.feed.pods is not None:
            self.selection = selection
            self.note(self.feed.pods.select(selection))
            return True
        try:
            pods, namespace = selecting.view_scope(selection, self.feed.pod_labels)
        except SelectorError as exc:
            self.note(exc.message, "error")
            return False
        self.selection = selection
        self.filter = replace(self.text_filter, pods=pods, namespace=namespace)
        self._filter_changed = self._log_rebuild = True
        self.note(f"showing {selection.describe()}" + (f": {len(pods)} pod(s)"
                                                         if pods is not None else "")
                  if selection else "showing every pod")
        self.refresh_view(force=True)
        return True

    def action_toggle_all(self) -> None:
        self.all_traffic = not self.all_traffic
        self._filter_changed = True
        self.refresh_view()

    def sort_by(self, column: str) -> None:
        for s in SORTS:
            if column.startswith(s.split()[0][:4]):
                self.sort = s
                break
        self._filter_changed = True
        self.refresh_view()

    def action_cycle_sort(self) -> None:
        self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        self._filter_changed = True
        self.refresh_view()

    def action_toggle_display_pause(self) -> None:
        self.display_paused = not self.display_paused
        self._filter_changed = True      # resuming redraws at once
        self.note("display paused: events are still collected (p resumes)"
                  if self.display_paused else "display resumed")
        self.refresh_view()

    def action_help(self) -> None:
        def only(bindings: list[Any]) -> list[Binding]:
            return [b for b in bindings if isinstance(b, Binding)]

        groups = [("Everywhere", only(list(self.BINDINGS)))]
        if isinstance(self.screen, MainScreen):
            groups.append(("Main window", only(list(MainScreen.BINDINGS))))
        groups.append(("Tables", [Binding("enter", "", "open the finding or connection"),
                                  Binding("up,down", "", "move", key_display="↑ ↓ pgup pgdn")]))
        groups.append(("Details", [Binding("escape", "", "back")]))
        groups.append(("Command palette", [Binding("ctrl+p", "", "every command by name")]))
        self.push_screen(HelpScreen(groups))

    def action_toggle_recording(self) -> None:
        rec = self.feed.recording
        if rec is None:
            text = "recording is only for live sessions (this is a replay)"
            self.notify(text, title="r", severity="warning")
            self.note(text)
            return
        self.note(rec.toggle_recording())

    def _controls_or_note(self) -> bool:
        if self.feed.controls is None:
            self.note("replay controls apply to a replay; this is a live session")
            return False
        return True

    def action_replay_pause(self) -> None:
        if self._controls_or_note():
            assert self.feed.controls is not None
            self.feed.controls.toggle_pause()

    def action_replay_step(self) -> None:
        if self._controls_or_note():
            assert self.feed.controls is not None
            self.feed.controls.step()

    def action_replay_speed(self, direction: int) -> None:
        if not self._controls_or_note() or self.status.replay is None:
            return
        assert self.feed.controls is not None
        # the last speed asked for: the status may not show it yet (two quick presses)
        cur = self._speed if self._speed is not None else self.status.replay.speed
        i = SPEEDS.index(cur) if cur in SPEEDS else SPEEDS.index(1.0)
        speed = SPEEDS[max(0, min(len(SPEEDS) - 1, i + direction))]
        self._speed = speed
        self.feed.controls.set_speed(speed)
        self.note(f"replay speed {'max' if speed <= 0 else f'x{speed:g}'}")

    def action_replay_seek(self, seconds: float) -> None:
        if not self._controls_or_note() or self.status.replay is None:
            return
        assert self.feed.controls is not None
        r = self.status.replay
        self.feed.controls.seek(r.position_ns - r.start_ns + int(seconds * 1e9))

    def seek_to(self, text: str) -> bool:
        """`g`: an offset from the recording's start ("90s", "2m", "1.5h", "500ms")."""
        if not self._controls_or_note():
            return True
        m = _OFFSET.match(text.strip())
        if m is None:
            self.note(f"not an offset: {text!r} (e.g. 90s, 2m, 1.5h)", "error")
            return False
        assert self.feed.controls is not None
        self.feed.controls.seek(int(float(m.group(1)) * _UNIT_NS[m.group(2) or "s"]))
        self.note(f"replay: to {text.strip()} from the start")
        return True

    def action_replay_seek_start(self) -> None:
        if self._controls_or_note():
            assert self.feed.controls is not None
            self.feed.controls.seek(0)

    def open_finding(self, finding: Finding | None) -> None:
        if finding is None:
            return
        names = {o.name.lower() for o in finding.objects}
        related = [c for c in self.model.connections
                   if c.failed and (not names or names & set().union(
                       *c.subject().fields.values()))]
        self.push_screen(FindingScreen(finding, related))

    def open_connection(self, conn: Row | None) -> None:
        if conn is None:
            return
        subject = conn.subject()
        related = None
        # a finding explains failures: a healthy connection of the same pod has none
        for f in self.model.sorted_findings() if conn.failed else ():
            names = {o.name.lower() for o in f.objects}
            if names & set().union(*subject.fields.values()):
                related = f
                break
        self.push_screen(ConnectionScreen(conn, related))

    def on_unmount(self) -> None:
        self.stop.set()
        self.out.close()

    def exit(self, *args: Any, **kwargs: Any) -> None:
        """However the app ends, the feed ends with it (Textual waits for its worker)."""
        self.stop.set()
        self.out.close()
        super().exit(*args, **kwargs)

    async def action_quit(self) -> None:
        """Stop the feed (a live session drains and detaches), wait for it, exit."""
        self.stop.set()
        self.out.close()
        worker = self._feed_worker
        if worker is not None and worker.state == WorkerState.RUNNING:
            self.note("detaching...")
            # on_worker_state_changed has shown a failure; exiting anyway
            with contextlib.suppress(TimeoutError, WorkerFailed):
                await asyncio.wait_for(worker.wait(), DETACH_TIMEOUT_S)
        self.exit(0)
