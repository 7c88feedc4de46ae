"""SVG snapshots of the main screen and a connection's detail at a fixed size, from
the masquerade-missing capture.  After an intended change of the look:

    .venv/bin/python -m pytest tests/tui/test_snapshots.py --snapshot-update

and look at the new SVGs in tests/tui/__snapshots__/ before committing them."""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot

from tests.tui.pilot import SIZE, make_app, settle


def test_main_screen(snap_compare: Any) -> None:
    async def ready(pilot: Pilot[Any]) -> None:
        await settle(pilot)

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=ready)


def test_connection_detail(snap_compare: Any) -> None:
    async def ready(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("c", "enter")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=ready)


def test_finding_detail(snap_compare: Any) -> None:
    async def ready(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("f", "enter")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=ready)
