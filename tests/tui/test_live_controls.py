"""`r`, `l`, `N` and the metadata health in a live session (tests/tui/livelike.py: the
real control, recording and pipeline, the golden recording's events for the kernel's),
and `l`/`N` narrowing a replay's view."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from rich.text import Text
from textual.widgets import Input, Static

from tests.tui.livelike import GoldenSession
from tests.tui.pilot import SIZE, make_app, settle, until
from tracer.events.model import Event
from tracer.metadata.selectors import LabelSelector
from tracer.recording.metadata import MetadataRecord
from tracer.recording.reader import EndRecord, RecordingReader
from tracer.recording.writer import RecordSpec
from tracer.session.pod_scope import Selection
from tracer.session.run import TraceOptions
from tui.app import NodetraceApp
from tui.feeds.live import LiveFeed
from tui.feeds.replay import ReplayFeed, load
from tui.widgets.connections import ConnectionsTable
from tui.widgets.header import StatusHeader

pytestmark = pytest.mark.asyncio

NOW_NS = 1_795_423_780_000_000_000          # 2026-11-23T08:49:40Z
NAME = "nodetrace-node1-20261123T084940Z.ntrec"
GOLDEN = Path(__file__).resolve().parent.parent / "data" / "golden.ntrec"


def live_app(tmp_path: Path, session: GoldenSession, opts: TraceOptions | None = None
             ) -> NodetraceApp:
    feed = LiveFeed(opts or TraceOptions(), node="node1", record_dir=tmp_path,
                    session=session, clock_ns=lambda: NOW_NS)
    return NodetraceApp(feed)


def header(app: NodetraceApp) -> Text:
    app.refresh_view()
    return app.screen.query_one("#status", StatusHeader).text


def note(app: NodetraceApp) -> str:
    r = app.screen.query_one("#note", Static).render()
    return r.plain if isinstance(r, Text) else str(r)


def read_back(path: Path) -> tuple[int, list[MetadataRecord], EndRecord]:
    with RecordingReader(path) as reader:
        items = list(reader)
    events = sum(1 for i in items if isinstance(i, Event))
    ends = [i for i in items if isinstance(i, EndRecord)]
    assert len(ends) == 1 and items[-1] is ends[0], "no end record, or not last"
    return events, [i for i in items if isinstance(i, MetadataRecord)], ends[0]


async def test_r_starts_and_stops_a_recording_the_reader_reads_back(tmp_path: Path) -> None:
    session = GoldenSession()
    app = live_app(tmp_path, session)
    path = tmp_path / NAME
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.model.events > 0)
        assert "REC" not in header(app).plain
        await pilot.press("r")
        await until(pilot, lambda: app.status.recording is not None)
        assert app.status.recording is not None
        first = app.status.recording.size_bytes
        await until(pilot, lambda: app.status.recording is not None
                    and app.status.recording.size_bytes > first)   # it grows
        shown = header(app)
        assert f"● REC {NAME} " in shown.plain
        rec = next(s for s in shown.spans if "REC" in shown.plain[s.start:s.end])
        assert "red" in str(rec.style)
        assert f"recording to {path}" in note(app)
        await pilot.press("r")
        await until(pilot, lambda: app.status.recording is None)
        assert "REC" not in header(app).plain
        assert f"recording stopped: {path}" in note(app)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    events, metadata, end = read_back(path)
    assert events > 0 and end.events == events and end.info.reason == "stopped"
    assert end.info.received >= events    # the session's count over the recording's span
    # the metadata index as the recording started, as `--record` writes it
    pods = {(m.obj["metadata"]["namespace"], m.obj["metadata"]["name"])
            for m in metadata if m.kind == "Pod" and m.action == "added"}
    assert ("default", "web-a") in pods and ("default", "client") in pods


async def test_record_from_the_start_shows_and_r_stops_it(tmp_path: Path) -> None:
    path = tmp_path / "given.ntrec"
    session = GoldenSession()
    app = live_app(tmp_path, session, TraceOptions(record=RecordSpec(path)))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.status.recording is not None
                    and app.status.recording.size_bytes > 0)
        assert "● REC given.ntrec " in header(app).plain
        await pilot.press("r")
        await until(pilot, lambda: app.status.recording is None)
    events, _, end = read_back(path)
    assert events > 0 and end.info.reason == "stopped"
    assert not (tmp_path / NAME).exists()


async def test_quit_ends_the_recording_with_its_end_record(tmp_path: Path) -> None:
    session = GoldenSession()
    app = live_app(tmp_path, session)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.model.events > 0)
        await pilot.press("r")
        await until(pilot, lambda: app.status.recording is not None)
        await pilot.press("q")
        await until(pilot, session.ended.is_set)
    events, _, end = read_back(tmp_path / NAME)
    assert events > 0 and end.info.reason == "stopped"


async def test_a_second_recording_gets_a_name_of_its_own(tmp_path: Path) -> None:
    (tmp_path / NAME).write_bytes(b"not ours")
    app = live_app(tmp_path, GoldenSession())
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.model.events > 0)
        await pilot.press("r")
        await until(pilot, lambda: app.status.recording is not None)
        assert app.status.recording is not None
        assert app.status.recording.path == str(tmp_path / NAME.replace(".ntrec", "-2.ntrec"))
    assert (tmp_path / NAME).read_bytes() == b"not ours"


async def test_l_changes_the_live_selection(tmp_path: Path) -> None:
    session = GoldenSession()
    app = live_app(tmp_path, session)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.model.events > 0)
        await pilot.press("l")
        box = app.screen.query_one("#selector", Input)
        assert box.display and box.has_focus and box.value == ""
        await pilot.press(*"app=web")
        await pilot.press("enter")
        want = Selection(labels=LabelSelector.parse("app=web"), namespace="default")
        await until(pilot, lambda: session.selections == [want])
        assert app.feed.pods is not None and app.feed.pods.selection == want
        await until(pilot, lambda: "now tracing" in note(app))
        assert not box.display
        # the header hears it with the session's next status, not with the note
        await until(pilot, lambda: "pods: -l app=web, namespace default" in header(app).plain)
        # prefilled with the selector in force; clearing it keeps the namespace
        await pilot.press("l")
        assert box.value == "app=web"
        box.value = ""
        await pilot.press("enter")
        await until(pilot, lambda: len(session.selections) == 2)
        assert session.selections[1] == Selection(namespace="default")


async def test_l_with_a_bad_selector_shows_the_parser_error(tmp_path: Path) -> None:
    session = GoldenSession()
    app = live_app(tmp_path, session)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.model.events > 0)
        await pilot.press("l")
        box = app.screen.query_one("#selector", Input)
        box.value = "app in (web"
        await pilot.press("enter")
        shown = note(app)
        assert shown.startswith("-l app in (web: ") and "Traceback" not in shown
        assert app.screen.query_one("#note", Static).has_class("error")
        assert box.display and box.value == "app in (web"     # kept for editing
        box.value = "tier=Bad_"
        await pilot.press("enter")
        assert "invalid label value 'Bad_'" in note(app)
        await pilot.press("escape")
        assert not box.display
        await pilot.pause(0.2)
        assert session.selections == [] and app.feed.pods is not None
        assert app.feed.pods.selection is None


async def test_namespace_switch_and_every_namespace(tmp_path: Path) -> None:
    session = GoldenSession()
    app = live_app(tmp_path, session)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.model.events > 0)
        await pilot.press("N")
        box = app.screen.query_one("#namespace", Input)
        assert box.display and box.value == "-A"
        box.value = "kube-system"
        await pilot.press("enter")
        await until(pilot, lambda: session.selections == [Selection(namespace="kube-system")])
        await pilot.press("N")
        box.value = "Not_A_Namespace"
        await pilot.press("enter")
        assert "invalid namespace" in note(app) and box.display
        box.value = "-A"
        await pilot.press("enter")
        await until(pilot, lambda: len(session.selections) == 2)
        assert session.selections[1] is None     # every namespace, no labels: no selection


async def test_a_selection_the_session_refuses_is_said(tmp_path: Path) -> None:
    session = GoldenSession(knows_labels=False)
    app = live_app(tmp_path, session)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.model.events > 0)
        await pilot.press("l", *"app=web", "enter")
        await until(pilot, lambda: "needs Kubernetes metadata" in note(app))
        assert session.selections == [] and app.status.selection == ""


@pytest.mark.parametrize(("health", "style"), [
    ("API connected", "green"),
    ("API stale (unreachable, last known state)", "yellow"),
    ("API listing", "yellow"),
    ("file", ""),
    ("API connected + file", "green"),
    ("local only", "dim"),
])
async def test_header_shows_the_metadata_health(tmp_path: Path, health: str,
                                                style: str) -> None:
    session = GoldenSession(health="API connected")
    app = live_app(tmp_path, session)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.status.metadata == "API connected")
        session.health = health                # the provider's state changes
        await until(pilot, lambda: app.status.metadata == health)
        shown = header(app)
        assert f"metadata: {health}  " in shown.plain
        start = shown.plain.index(health)
        spans = [s for s in shown.spans if s.start == start and s.end == start + len(health)]
        if style:
            assert spans and style in str(spans[0].style)
        else:      # names from a file: nothing to warn about, nothing to dim
            assert not spans


async def test_l_and_namespace_narrow_a_replay_view() -> None:
    loaded = load(GOLDEN)
    app = NodetraceApp(ReplayFeed(loaded.records, loaded.status, speed=0.0,
                                  pod_labels=loaded.pod_labels))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("c", "a")        # every connection, not only failures
        app.refresh_view(force=True)
        table = app.screen.query_one("#connections-table", ConnectionsTable)
        everything = table.row_count
        await pilot.press("l", *"app=web", "enter")
        assert app.selection == Selection(labels=LabelSelector.parse("app=web"),
                                          namespace="default")
        assert "view: -l app=web, namespace default" in header(app).plain
        app.refresh_view(force=True)
        assert 0 < table.row_count < everything
        assert app.filter.pods == frozenset({"default/web-a"})
        await pilot.press("N")
        app.screen.query_one("#namespace", Input).value = "kube-system"
        await pilot.press("enter")
        app.refresh_view(force=True)
        assert table.row_count == 0             # web-a is in default
        await pilot.press("l")
        app.screen.query_one("#selector", Input).value = ""
        await pilot.press("enter")
        await pilot.press("N")
        app.screen.query_one("#namespace", Input).value = "-A"
        await pilot.press("enter")
        app.refresh_view(force=True)
        assert app.selection is None and table.row_count == everything


async def test_l_on_a_capture_without_labels_says_so() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("l", *"app=web", "enter")
        assert "carries no pod labels" in note(app)
        assert app.selection is None
        await pilot.press("escape", "N")
        app.screen.query_one("#namespace", Input).value = "default"
        await pilot.press("enter")
        assert app.filter.namespace == "default" and app.selection == Selection()
