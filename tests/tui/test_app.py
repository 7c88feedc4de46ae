"""Pilot tests of the TUI, fed by real lab captures (tests/data/tui/README.md)."""

from __future__ import annotations

import pytest
from rich.text import Text
from textual.widgets import Static

from tests.tui.inputs import records
from tests.tui.pilot import SIZE, make_app, settle, until
from tui.app import NodetraceApp
from tui.screens.connection import ConnectionScreen
from tui.screens.finding import FindingScreen
from tui.screens.help import HelpScreen
from tui.screens.main import MainScreen
from tui.widgets.connections import ConnectionsTable
from tui.widgets.findings import FindingsTable
from tui.widgets.header import StatusHeader

pytestmark = pytest.mark.asyncio


def text_of(widget: Static) -> str:
    r = widget.render()
    return r.plain if isinstance(r, Text) else str(r)


def conn_rows(app: NodetraceApp) -> int:
    return app.screen.query_one("#connections-table", ConnectionsTable).row_count


async def test_masquerade_finding_listed_and_detail_names_pods_and_fix() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#findings", FindingsTable)
        assert table.row_count == 1
        assert "masquerade-missing" in str(table.get_row_at(0))
        table.focus()
        await pilot.press("enter")
        assert isinstance(app.screen, FindingScreen)
        body = text_of(app.screen.query_one("#finding-body", Static))
        assert "Pod default/client" in body
        assert "MASQUERADE" in body.split("Fix", 1)[1]
        assert "default/client:" in body and "timed out" in body   # its connections
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)


async def test_connection_detail_shows_the_path() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("c", "enter")
        assert isinstance(app.screen, ConnectionScreen)
        conn = app.screen.conn
        assert conn.state == "timed out"
        summary = text_of(app.screen.query_one("#conn-summary", Static))
        assert "untranslated-pod-source" in summary
        assert "finding: masquerade-missing" in summary


async def test_filter_by_pod_narrows_the_table() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert conn_rows(app) == 2           # failures only
        await pilot.press("a")               # all traffic
        assert conn_rows(app) == 3
        await pilot.press("slash", *"pod:web-a", "enter")
        assert app.filter.source == "pod:web-a"
        assert conn_rows(app) == 1
        only = app.screen.query_one("#connections-table", ConnectionsTable)
        assert "web-a" in str(only.get_row_at(0)[1])
        await pilot.press("escape")          # clears the filter
        assert conn_rows(app) == 3


async def test_pause_keeps_collecting_and_resume_shows_it() -> None:
    app = make_app(paused=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("p")
        assert app.display_paused
        await pilot.press("space")           # the replay plays while the display is paused
        await until(pilot, lambda: app.status.replay is not None and app.status.replay.done
                    and app.model.events == 28)
        app.refresh_view(force=True)
        await pilot.pause()
        assert conn_rows(app) == 0           # nothing drawn while paused
        assert "DISPLAY PAUSED" in text_of(app.screen.query_one("#status", StatusHeader))
        await pilot.press("p")
        assert not app.display_paused
        assert conn_rows(app) == 2           # every event collected meanwhile is shown


async def test_help_lists_every_binding() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        body = text_of(app.screen.query_one("#help-body", Static))
        for b in [*NodetraceApp.BINDINGS, *MainScreen.BINDINGS]:
            assert b.description in body, b.description
        assert "pod:" in body and "ctrl+p" in body
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)


async def test_replay_controls_move_the_position() -> None:
    app = make_app(speed=1.0, paused=True)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.status.replay is not None)
        feed = app.feed
        start = feed.start_ns                                  # type: ignore[attr-defined]
        assert app.status.replay is not None and app.status.replay.paused
        assert feed.index == 0                                 # type: ignore[attr-defined]
        await pilot.press("n")                                 # step: one event
        await until(pilot, lambda: feed.index == 1)            # type: ignore[attr-defined]
        await pilot.press("n", "n")
        await until(pilot, lambda: feed.index == 3)            # type: ignore[attr-defined]
        await until(pilot, lambda: app.model.events == 3)
        await pilot.press("right_square_bracket")              # seek +10 s: past the end
        await until(pilot, lambda: app.status.replay is not None and app.status.replay.done)
        assert app.model.events == 28
        await pilot.press("0")                              # back to the start: reset
        await until(pilot, lambda: feed.index == 0 and app.model.events == 0)  # type: ignore[attr-defined]
        assert app.status.replay.position_ns == start
        await pilot.press("plus")
        await until(pilot, lambda: app.status.replay is not None
                    and app.status.replay.speed == 2.0)
        await pilot.press("minus", "minus")
        await until(pilot, lambda: app.status.replay is not None
                    and app.status.replay.speed == 0.5)
        await pilot.press("g", *"2s", "enter")                 # go to 2 s from the start
        target = start + 2_000_000_000
        await until(pilot, lambda: app.status.replay is not None
                    and app.status.replay.position_ns < target
                    and feed.times[feed.index] >= target)      # type: ignore[attr-defined]
        await pilot.press("g", *"soon", "enter")               # not an offset: said, no move
        assert "not an offset" in text_of(app.screen.query_one("#note", Static))
        await pilot.press("escape")
        await pilot.press("space")                             # play
        await until(pilot, lambda: app.model.events > 0)


async def test_lost_events_counter_shows_a_recorded_loss() -> None:
    recs = records("masquerade-missing")
    # the captures lost nothing: a loss record as the live source writes it (docs/events.md)
    recs.append({"kind": "lost", "time": recs[-1]["time"], "layer": "ringbuf_reserve",
                 "count": 1234, "total": 1234})
    app = make_app(recs)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        header = app.screen.query_one("#status", StatusHeader)
        rendered = header.text
        assert "lost 1,234 (ringbuf_reserve 1,234)" in rendered.plain
        red = [s for s in rendered.spans if "red" in str(s.style)
               and "lost" in rendered.plain[s.start:s.end]]
        assert red, "the lost counter is not red"


async def test_recording_key_says_recording_is_for_live_sessions() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("r")
        assert "only for live sessions" in text_of(app.screen.query_one("#note", Static))
        assert [n.message for n in app._notifications] == [
            "recording is only for live sessions (this is a replay)"]
        assert app.is_running and app.status.recording is None


async def test_quit_stops_the_feed() -> None:
    app = make_app(speed=1.0, paused=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("q")
        await until(pilot, lambda: app._exit_renderables is not None or not app.is_running)
    assert app.stop.is_set()
