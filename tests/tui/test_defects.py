"""What a new user saw wrong in the TUI, on the real recordings: a Service's backend
named as the Service, a finding's "last" time that was its first, the loss counter
cut off at 80x24, a damaged file's warnings shown only after quitting, a JSON-lines
capture not diagnosed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from rich.text import Text
from textual.geometry import Region
from textual.widgets import Static

from tests.tui.pilot import WALL_NS, settle
from tui.app import NodetraceApp
from tui.connection_view import Row
from tui.feeds.replay import Loaded, ReplayFeed, load
from tui.findings import object_text
from tui.model import Model
from tui.records import clock
from tui.screens.finding import FindingScreen
from tui.widgets.connections import ConnectionsTable
from tui.widgets.header import StatusHeader

DATA = Path(__file__).resolve().parent.parent / "data"
SMALL = (80, 24)


def app_of(loaded: Loaded) -> NodetraceApp:
    feed = ReplayFeed(loaded.records, loaded.status, speed=0.0,
                      pod_labels=loaded.pod_labels, events=loaded.events)
    return NodetraceApp(feed, clock=lambda: 0.0, wall_ns=lambda: WALL_NS)


def golden_model() -> Model:
    m = Model()
    m.apply(load(DATA / "golden.ntrec").records)
    return m


def dnat_row(m: Model) -> Row:
    (row,) = [c for c in m.connections if c.key[3] == "10.43.0.20"]
    return row


def test_a_services_backend_is_named_as_its_pod() -> None:
    # the backend's endpoint names both the pod and the Service it backs: it is the pod
    row = dnat_row(golden_model())
    assert row.dst_name == "svc/default/web:80 => default/web-a:8080"
    assert row.nat == "DNAT 10.43.0.20:80 -> 10.42.0.11:8080"
    assert row.state == "established" and not row.failed


def test_connections_come_from_the_tracers_table() -> None:
    from tracer.pipeline.connections import ConnectionTable

    m = golden_model()
    assert isinstance(m.connections.table, ConnectionTable)
    failed = [c for c in m.connections if c.failed]
    assert len(failed) == 2 and {c.state for c in failed} == {"timed out"}
    for c in failed:
        assert "untranslated-pod-source" in c.marks and c.retransmits == 1
        kinds = [s.kind for s in c.timeline()]
        assert kinds.count("flow") == 2 and "tcp" in kinds   # two hooks, the socket


@pytest.mark.asyncio
async def test_backend_name_in_the_table() -> None:
    app = app_of(load(DATA / "golden.ntrec"))
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        await pilot.press("a")
        table = app.screen.query_one("#connections-table", ConnectionsTable)
        cells = [str(table.get_row_at(i)[1]) for i in range(table.row_count)]
        assert "svc/default/web:80 => default/web-a:8080" in cells
        assert not any("=> svc/" in c for c in cells)


@pytest.mark.asyncio
async def test_finding_last_time_is_its_newest_connection() -> None:
    app = app_of(load(DATA / "golden.ntrec"))
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        await pilot.press("f", "enter")
        assert isinstance(app.screen, FindingScreen)
        f, related = app.screen.finding, app.screen.related
        assert len(related) == 2
        last = max(c.last_ns for c in related)
        assert last > f.first_seen_ns
        body = app.screen.query_one("#finding-body", Static).render()
        text = body.plain if isinstance(body, Text) else str(body)
        assert f"first {clock(f.first_seen_ns)}, last {clock(last)}" in text
        assert clock(last) == "09:59:15.524"       # the second connect() failing


def header_lines(app: NodetraceApp) -> list[str]:
    header = app.screen.query_one("#status", StatusHeader)
    return [strip.text for strip in header.render_lines(Region(0, 0, header.size.width, 2))]


@pytest.mark.asyncio
@pytest.mark.parametrize("lost", [0, 1234])
async def test_loss_is_shown_at_80x24(lost: int) -> None:
    loaded = load(DATA / "golden.ntrec")
    if lost:
        loaded.records.append({"kind": "lost", "time": loaded.records[-1]["time"],
                               "layer": "ringbuf_reserve", "count": lost, "total": lost})
    app = app_of(loaded)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        lines = header_lines(app)
        assert len(lines) == 2
        want = "lost 1,234 (ringbuf_reserve 1,234)" if lost else "lost 0"
        assert want in lines[1], lines


@pytest.mark.asyncio
async def test_a_damaged_recordings_warnings_show_in_the_tui(tmp_path: Path) -> None:
    cut = tmp_path / "cut.ntrec"
    shutil.copy(DATA / "golden.ntrec", cut)
    data = cut.read_bytes()
    cut.write_bytes(data[:len(data) * 2 // 3])
    loaded = load(cut)
    assert loaded.warnings and loaded.status.warnings == tuple(loaded.warnings)
    app = app_of(loaded)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        assert "1 input warning" in header_lines(app)[1]
        messages = [n.message for n in app._notifications]
        assert loaded.warnings[0] in messages
        note = app.screen.query_one("#note", Static).render()
        assert loaded.warnings[-1] in (note.plain if isinstance(note, Text) else str(note))


@pytest.mark.parametrize("capture", ["tui/masquerade-missing.jsonl",
                                     "tui/service-no-endpoints.jsonl", "golden.jsonl"])
def test_a_jsonl_capture_is_diagnosed_as_diagnose_from_does(capture: str) -> None:
    from tracer.modes.diagnose_file import diagnose_file

    path = DATA / capture
    want = [(f.kind, f.count, [object_text(o) for o in f.objects], f.summary)
            for f in diagnose_file(path).all_findings()]
    assert want, "the capture should show a fault"
    m = Model()
    m.apply(load(path).records)
    got = [(f.kind, f.count, [object_text(o) for o in f.objects], f.summary)
           for f in sorted(m.findings.values(), key=lambda f: f.first_seen_ns)]
    assert got == want


def test_rows_are_the_same_from_events_or_from_their_records() -> None:
    # a feed that has the events hands them over; one that has only records (a jsonl
    # capture) has them parsed back: the same connections either way
    loaded = load(DATA / "golden.ntrec")
    assert loaded.events is not None and len(loaded.events) == len(loaded.records)

    def rows(events: list[object | None] | None) -> list[tuple[object, ...]]:
        m = Model()
        m.apply(loaded.records, events)
        return sorted((c.key, c.src_name, c.dst_name, c.state, c.packets, c.bytes,
                       c.last_ns, [s.detail for s in c.timeline()]) for c in m.connections)

    assert rows(loaded.events) == rows(None)
    assert len(rows(None)) == 3
