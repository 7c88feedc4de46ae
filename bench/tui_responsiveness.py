"""TUI responsiveness under load: input-to-render latency measured by Pilot while a
replay feeds the app at 100 k events/s, as a ratio against the same app idle.

The events are the masquerade-missing lab capture (tests/data/tui/) cycled into a
synthetic recording 10 µs apart (100 k events/s at speed 1), each cycle with new
client ports, so connections keep appearing (the tables stay bounded).  A key press
that changes what the connections pane shows (`a`: failures only / all traffic) is
timed from the press until the pane shows the change and the app is idle again.
Also reported: the rate the app actually applied (the feed waits for the app when it
falls behind: nothing is dropped), and its lag behind the recording's clock.

The feed hands the app the events with their records, as a recording's replay and a
live session do; `--records-only` replays the records alone, as a jsonl capture
does (the app then parses each record back into its event).

    .venv/bin/python bench/tui_responsiveness.py [--seconds 10] [--presses 30]
                                                 [--records-only]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.tui.inputs import records  # noqa: E402
from tracer.events.jsonl import event_of  # noqa: E402
from tui.app import NodetraceApp  # noqa: E402
from tui.connection_view import BAD_RECORD, JOINED_KINDS  # noqa: E402
from tui.feed import FeedStatus  # noqa: E402
from tui.feeds.replay import ReplayFeed  # noqa: E402
from tui.records import time_ns  # noqa: E402

RATE = 100_000
SIZE = (140, 40)


def rfc3339(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + \
        f".{ns % 10**9:09d}Z"


def synthetic(seconds: float) -> list[dict[str, Any]]:
    base = [r for r in records("masquerade-missing", finding=True)]
    t0 = time_ns(base[0]["time"])
    out = []
    n = int(seconds * RATE)
    for i in range(n):
        rec = copy.copy(base[i % len(base)])
        cycle = i // len(base)
        rec["time"] = rfc3339(t0 + i * (10**9 // RATE))
        for key in ("src", "dst"):
            ep = rec.get(key)
            if isinstance(ep, dict) and ep.get("ip") == "10.42.0.10" and ep.get("port"):
                rec[key] = {**ep, "port": 1024 + (ep["port"] + cycle) % 60000}
        out.append(rec)
    return out


def events_of(recs: list[dict[str, Any]]) -> list[object | None]:
    out: list[object | None] = []
    for r in recs:
        try:
            out.append(event_of(r) if r.get("kind") in JOINED_KINDS else None)
        except BAD_RECORD:
            out.append(None)
    return out


class TimedApp(NodetraceApp):
    """Notes when the screen has been painted after each toggle."""

    painted: list[float]

    def action_toggle_all(self) -> None:
        super().action_toggle_all()
        self.call_after_refresh(lambda: self.painted.append(time.perf_counter()))


async def latencies(app: TimedApp, presses: int) -> tuple[list[float], dict[str, float]]:
    """Key press (posted as the terminal driver posts it) -> the screen painted with
    the change, for `presses` presses 0.2 s apart."""
    app.painted = []
    lat: list[float] = []
    async with app.run_test(size=SIZE):
        await asyncio.sleep(1.0)       # the replay is running (or the app is idle)
        start_events, start = app.model.events, time.perf_counter()
        for _ in range(presses):
            n = len(app.painted)
            t0 = time.perf_counter()
            app.simulate_key("a")
            while len(app.painted) == n:
                await asyncio.sleep(0.001)
                if time.perf_counter() - t0 > 60:
                    raise RuntimeError("no paint within 60 s")
            lat.append(app.painted[-1] - t0)
            await asyncio.sleep(0.2)
        elapsed = time.perf_counter() - start
        applied = app.model.events - start_events
        r = app.status.replay
        lag = 0.0
        if r is not None and isinstance(app.feed, ReplayFeed) and app.feed.speed > 0:
            # recording time replayed vs wall time since the replay began
            lag = (elapsed + 1.0) - (r.position_ns - app.feed.start_ns) / 1e9
        stats = {"applied_per_s": applied / elapsed, "lag_s": lag}
    return lat, stats


def summary(lat: list[float]) -> dict[str, float]:
    s = sorted(lat)
    return {"median_ms": statistics.median(s) * 1e3,
            "p95_ms": s[int(0.95 * (len(s) - 1))] * 1e3, "max_ms": s[-1] * 1e3}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="recording length")
    ap.add_argument("--presses", type=int, default=30)
    ap.add_argument("--records-only", action="store_true",
                    help="no events beside the records (a jsonl capture's replay)")
    args = ap.parse_args()
    recs = synthetic(args.seconds)
    events = None if args.records_only else events_of(recs)
    status = FeedStatus(source="synthetic", node="bench")
    idle_lat, _ = asyncio.run(latencies(TimedApp(ReplayFeed(recs[:100], status, speed=0.0)),
                                        args.presses))
    load_lat, stats = asyncio.run(latencies(TimedApp(ReplayFeed(recs, status, speed=1.0,
                                                                 events=events)),
                                            args.presses))
    idle, load = summary(idle_lat), summary(load_lat)
    print(json.dumps({"offered_per_s": RATE, "events": len(recs), "idle": idle,
                      "load": load, **stats,
                      "ratio_median": load["median_ms"] / idle["median_ms"],
                      "ratio_p95": load["p95_ms"] / idle["p95_ms"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
