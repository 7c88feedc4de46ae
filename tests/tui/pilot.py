"""Helpers for Pilot tests: an app on the lab captures, waiting on its state (never on
fixed sleeps)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot

from tests.tui.inputs import Record, records, replay
from tui.app import NodetraceApp

SIZE = (140, 40)
WALL_NS = 1_795_423_780_000_000_000     # a fixed "now" for ages (replay uses its position)


def make_app(recs: list[Record] | None = None, *, speed: float = 0.0,
             paused: bool = False) -> NodetraceApp:
    feed = replay(records("masquerade-missing") if recs is None else recs, speed)
    if paused:
        feed.toggle_pause()
    return NodetraceApp(feed, clock=lambda: 0.0, wall_ns=lambda: WALL_NS)


async def until(pilot: Pilot[Any], cond: Callable[[], bool], timeout_s: float = 10.0
                ) -> None:
    for _ in range(int(timeout_s / 0.02)):
        if cond():
            return
        await pilot.pause(0.02)
    raise AssertionError("condition not reached in time")


async def settle(pilot: Pilot[Any]) -> None:
    """Until the replay has delivered everything and the panes show it."""
    app = pilot.app
    assert isinstance(app, NodetraceApp)
    await until(pilot, lambda: app.status.replay is not None and app.status.replay.done
                and app.model.events == len(app.feed.records))  # type: ignore[attr-defined]
    app.refresh_view(force=True)
    await pilot.pause()
