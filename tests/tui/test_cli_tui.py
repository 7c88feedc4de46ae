"""`-o tui` from the CLI: no terminal is a one-line error; a recording or a jsonl
capture loads into the replay feed through today's pipeline (no root)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tui.feed import FeedBatch, FeedOutput
from tui.feeds.replay import ReplayFeed, load

DATA = Path(__file__).resolve().parent.parent / "data"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tracer.cli.main", *args],
                          capture_output=True, text=True, timeout=60)


def test_tui_without_a_terminal_is_a_clear_error() -> None:
    proc = run_cli("replay", str(DATA / "tui" / "masquerade-missing.jsonl"), "-o", "tui")
    assert proc.returncode == 1
    assert "needs a terminal" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_replay_of_a_missing_file_is_a_clear_error() -> None:
    proc = run_cli("replay", "/nonexistent/x.ntrec", "-o", "tui")
    assert proc.returncode == 1
    assert "cannot read" in proc.stderr and "Traceback" not in proc.stderr


def test_recording_loads_through_the_pipeline() -> None:
    loaded = load(DATA / "golden.ntrec")
    assert loaded.status.kernel.startswith("6.")
    assert loaded.status.attached
    kinds = {r["kind"] for r in loaded.records}
    assert {"flow", "nat", "tcp", "finding"} <= kinds
    # the same records `replay -o jsonl` prints, before its summary line
    out = run_cli("replay", str(DATA / "golden.ntrec"), "-o", "jsonl").stdout
    *lines, summary = out.splitlines()
    assert len(lines) == len(loaded.records) and '"kind":"summary"' in summary


def test_jsonl_loads_and_skips_junk(tmp_path: Path) -> None:
    f = tmp_path / "x.jsonl"
    f.write_text('{"kind": "drop", "reason": "X"}\nnot json\n[1]\n\n{"kind": "lost"}\n')
    loaded = load(f)
    assert [r["kind"] for r in loaded.records] == ["drop", "lost"]
    assert loaded.warnings == [f"{f}: skipped 2 line(s) that are not records"]


def test_not_a_recording(tmp_path: Path) -> None:
    f = tmp_path / "x.bin"
    f.write_bytes(b"\x00\x01garbage")
    proc = run_cli("replay", str(f), "-o", "tui")
    # the message every command gives (tracer/recording/opener.py)
    assert proc.returncode == 1 and "is not a nodetrace recording (wrong magic) nor JSON " \
        "lines" in proc.stderr and len(proc.stderr.splitlines()) == 1


def _play(feed: ReplayFeed, timeout_s: float = 3.0) -> tuple[list[dict[str, Any]], float]:
    """Run the feed as the TUI does, the app taking every batch: the records delivered
    and the seconds until the feed said it was done."""
    posted: list[FeedBatch] = []
    out = FeedOutput(posted.append, interval_s=0.0, max_pending=10**6)
    stop = threading.Event()
    t0 = time.monotonic()
    worker = threading.Thread(target=feed.run, args=(out, stop), daemon=True)
    worker.start()
    while not feed.state().done and time.monotonic() - t0 < timeout_s:
        time.sleep(0.01)
    took = time.monotonic() - t0
    stop.set()
    worker.join(5)
    return [r for b in posted for r in b.records], took


def test_on_a_terminal_replay_loads_the_whole_recording_at_once() -> None:
    """What `replay --help` promises: the whole file at once unless --speed (the golden
    recording's records span 4 s), and the window of the flags."""
    from tracer.cli.main import build_parser
    from tracer.cli.replay_cmd import tui_feed

    def feed(*argv: str) -> ReplayFeed:
        return tui_feed(build_parser().parse_args(["replay", str(DATA / "golden.ntrec"),
                                                   *argv]))

    whole = feed()
    records, took = _play(whole)
    assert whole.speed == 0.0 and len(records) == len(whole.records) and took < 2.0
    assert whole.end_ns - whole.start_ns > 4 * 10**9
    assert feed("--speed", "2").speed == 2.0
    # --since: the last two seconds are where the view starts
    last_two = feed("--since", "2s")
    _records, _took = _play(last_two)
    assert last_two.state().done
    first_two = feed("--to-offset", "2s")
    assert first_two.end_ns <= whole.start_ns + 2 * 10**9 < whole.end_ns
    records, _took = _play(first_two)
    assert 0 < len(records) < len(whole.records)
