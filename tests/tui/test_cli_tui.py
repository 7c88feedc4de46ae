"""`-o tui` from the CLI: no terminal is a one-line error; a recording or a jsonl
capture loads into the replay feed through today's pipeline (no root)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tui.feeds.replay import load

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
    assert proc.returncode == 1 and "neither a nodetrace recording" in proc.stderr
