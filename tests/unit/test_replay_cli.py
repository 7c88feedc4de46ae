"""`nodetrace replay` on the committed golden recording: the live run's lines again, with
no privileges, no BCC, no network; damaged files and bad flags give one clear line."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import pytest

from tests.unit.recording_support import GOLDEN, GOLDEN_JSONL, events_only, findings_said
from tracer.recording import load

ROOT = Path(__file__).resolve().parents[2]

# Installed as sitecustomize in the replay's interpreter: importing BCC (or anything
# that talks to the kernel or the cluster) fails, and so does opening a connection.
SANDBOX = '''
import importlib.abc, socket, sys
BLOCKED = ("bcc", "pyroute2", "kubernetes", "tracer.kernel", "tracer.sources.live",
           "tracer.session.run")
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise ImportError(f"sandbox: {name} may not be imported by replay")
        return None
sys.meta_path.insert(0, Block())
def no_network(*_a, **_k):
    raise OSError("sandbox: no network")
socket.socket.connect = no_network
socket.socket.sendto = no_network
socket.create_connection = no_network
'''


def replay(*args: str, sandbox: Path | None = None, unprivileged: bool = True,
           timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(sandbox or ""), str(ROOT)) if p)
    cmd = [sys.executable, "-m", "tracer.cli.main", "replay", *args]
    if unprivileged and os.geteuid() == 0 and shutil.which("setpriv"):
        # uid 0 with every capability dropped: as unprivileged as a laptop user
        cmd = ["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--no-new-privs", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=ROOT)


@pytest.fixture(name="sandbox")
def sandbox_fixture(tmp_path: Path) -> Path:
    d = tmp_path / "sandbox"
    d.mkdir()
    (d / "sitecustomize.py").write_text(SANDBOX)
    return d


def test_the_sandbox_blocks_bcc(sandbox: Path) -> None:
    env = {**os.environ, "PYTHONPATH": f"{sandbox}{os.pathsep}{ROOT}"}
    proc = subprocess.run([sys.executable, "-c", "import bcc"], capture_output=True,
                          text=True, env=env)
    assert proc.returncode != 0 and "sandbox: bcc" in proc.stderr


def test_replay_prints_the_lines_the_live_run_printed(sandbox: Path) -> None:
    proc = replay(str(GOLDEN), "-o", "jsonl", "--fast", sandbox=sandbox)
    assert proc.returncode == 0, proc.stderr
    assert events_only(proc.stdout) == events_only(GOLDEN_JSONL.read_text())
    assert findings_said(proc.stdout) == findings_said(GOLDEN_JSONL.read_text())
    assert findings_said(proc.stdout), "the golden session has its finding"
    assert "Traceback" not in proc.stderr and "warning" not in proc.stderr.lower()
    # the derived findings come back from today's code: they are not in the file
    marks = [json.loads(line).get("marks", []) for line in proc.stdout.splitlines()]
    assert any("untranslated-pod-source" in m for m in marks)


def test_replay_as_a_table(sandbox: Path) -> None:
    proc = replay(str(GOLDEN), "-o", "table", sandbox=sandbox)
    assert proc.returncode == 0, proc.stderr
    assert "192.168.2.10" in proc.stdout and "Traceback" not in proc.stderr


def test_a_truncated_recording_replays_to_its_last_whole_record(tmp_path: Path,
                                                                 sandbox: Path) -> None:
    data = GOLDEN.read_bytes()
    unpacker = msgpack.Unpacker(strict_map_key=False)
    unpacker.feed(data)
    starts = [0]
    for record in unpacker:
        if record[0] == 7 and msgpack.unpackb(record[2], strict_map_key=False)[0] == 6:
            # events (in a checked frame): cut half-way between the first block and the end
            break
        starts.append(unpacker.tell())
    cut = tmp_path / "cut.ntrec"
    cut.write_bytes(data[:(len(data) + starts[-1]) // 2])
    proc = replay(str(cut), "-o", "jsonl", sandbox=sandbox)
    assert proc.returncode == 0, proc.stderr
    lines = events_only(proc.stdout)
    assert 0 < len(lines) < len(events_only(GOLDEN_JSONL.read_text()))
    # the whole records before the cut, each as the live run printed it (marks aside:
    # the path marker sees the same events in the same order, so they agree too)
    assert lines == events_only(GOLDEN_JSONL.read_text())[:len(lines)]
    assert proc.stderr.count("truncated at offset") == 1
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("content,message", [
    (b"PK\x03\x04 not a recording", "is not a nodetrace recording (wrong magic)"),
    (b"\x94\x00\xb3nodetrace-recording\x92\x07\x00\x80", "written by a newer nodetrace"),
    (b"", "is not a nodetrace recording"),
])
def test_a_bad_file_is_one_line_and_exit_1(tmp_path: Path, content: bytes,
                                           message: str) -> None:
    path = tmp_path / "bad.ntrec"
    path.write_bytes(content)
    proc = replay(str(path))
    assert proc.returncode == 1, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len([ln for ln in proc.stderr.splitlines() if "error" in ln]) == 1
    assert proc.stdout == ""


def test_a_missing_file_or_a_directory_is_exit_1(tmp_path: Path) -> None:
    for path in (tmp_path / "nope.ntrec", tmp_path):
        proc = replay(str(path))
        assert proc.returncode == 1, proc.stderr
        assert "cannot read" in proc.stderr and "Traceback" not in proc.stderr


def test_offsets_from_the_start_select_a_window() -> None:
    rec = load(GOLDEN)
    start = rec.header.started_wall_ns
    inside = [e for e in rec.events if start + 2 * 10**9 <= e.wall_ns <= start + 3 * 10**9]
    proc = replay(str(GOLDEN), "-o", "jsonl", "--from-offset", "2s", "--to-offset", "3000ms",
                  unprivileged=False)
    assert proc.returncode == 0, proc.stderr
    assert 0 < len(events_only(proc.stdout)) == len(inside) < len(rec.events)


def test_since_and_until_count_back_from_the_end() -> None:
    """`--since 2s`: the recording's last two seconds, as `hubble observe --since`."""
    rec = load(GOLDEN)
    assert rec.end is not None
    end = rec.end.wall_ns
    inside = [e for e in rec.events if end - 2 * 10**9 <= e.wall_ns <= end - 10**9]
    proc = replay(str(GOLDEN), "-o", "jsonl", "--since", "2s", "--until", "1s",
                  unprivileged=False)
    assert proc.returncode == 0, proc.stderr
    assert 0 < len(events_only(proc.stdout)) == len(inside) < len(rec.events)
    first = min(e.wall_ns for e in inside)
    secs, ns = divmod(first, 10**9)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{ns:09d}Z"
    proc = replay(str(GOLDEN), "-o", "jsonl", "--since", stamp, unprivileged=False)
    assert len(events_only(proc.stdout)) == sum(1 for e in rec.events if e.wall_ns >= first)


@pytest.mark.parametrize("argv", [
    ["--since", "1s", "--until", "3s"],                 # ends 3 s before the end: earlier
    ["--from-offset", "3s", "--to-offset", "1s"],
    ["--since", "2026-01-05T03:12:00Z", "--until", "2026-01-05T03:11:59Z"],
])
def test_a_window_that_ends_before_it_starts_is_a_usage_error(argv: list[str]) -> None:
    proc = replay(str(GOLDEN), "-o", "jsonl", *argv, unprivileged=False)
    assert proc.returncode == 2, proc.stderr
    assert "ends before it starts" in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert proc.stdout == ""


def test_the_summary_ends_the_stream_and_goes_to_stderr() -> None:
    proc = replay(str(GOLDEN), "-o", "jsonl", unprivileged=False)
    assert proc.returncode == 0, proc.stderr
    last = json.loads(proc.stdout.splitlines()[-1])
    rec = load(GOLDEN)
    assert last["kind"] == "summary"
    assert sum(last["events"].values()) == len(events_only(proc.stdout))
    assert last["events"]["flow"] == sum(1 for e in rec.events if e.kind == "flow")
    said = [f[0] for f in findings_said(proc.stdout)]
    assert last["findings"] == {k: said.count(k) for k in said} != {}
    assert last["lost_total"] == 0
    assert rec.end is not None
    assert last["duration_s"] == round((rec.end.wall_ns - rec.header.started_wall_ns) / 1e9, 3)
    assert "summary: " in proc.stderr and " finding(s)" in proc.stderr


def test_speed_replays_at_the_recorded_pace_scaled() -> None:
    rec = load(GOLDEN)
    walls = [e.wall_ns for e in rec.events]
    span_s = (max(walls) - walls[0]) / 1e9
    t0 = time.monotonic()
    proc = replay(str(GOLDEN), "-o", "jsonl", "--speed", "8", unprivileged=False)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr
    assert len(events_only(proc.stdout)) == len(rec.events)
    assert elapsed >= span_s / 8 * 0.9


@pytest.mark.parametrize("argv", [
    ["--speed", "2", "--fast"],
    ["--speed", "0"],
    ["--speed", "nan"],
    ["--speed", "inf"],
    ["--since", "yesterday"],
    ["--since", "2026-13-23T09:59:13Z"],
    ["--since", "-5m"],
    ["--since", "5m", "--from-offset", "1s"],
    ["--to-offset", "1x"],
    ["-j", "0"],
    ["--since", "2026-13-23T09:59:13Z"],                  # no month 13
    ["--until", "2026-02-30T00:00:00Z"],
    ["-o", "yaml"],
])
def test_bad_flags_are_usage_errors(argv: list[str]) -> None:
    proc = replay(str(GOLDEN), *argv, unprivileged=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


@pytest.mark.parametrize("argv", [
    ["record"],                                          # -w is required
    ["record", "-w", "/nonexistent/dir/s.ntrec"],
    ["trace", "--record", "/nonexistent/dir/s.ntrec"],
    ["record", "-w", "s.ntrec", "--max-size", "1k"],      # too small for a recording
    ["record", "-w", "s.ntrec", "--max-size", "lots"],
    ["record", "-w", "s.ntrec", "--rotate", "0"],
    ["record", "-w", "s.ntrec", "-o", "jsonl"],           # headless: no output format
])
def test_recording_flags_are_checked_before_anything_runs(argv: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "tracer.cli.main", *argv],
                          capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2, proc.stderr
    assert "usage:" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 0)])
def test_an_interrupted_replay_drains_and_exits_130(sig: int, code: int) -> None:
    """Ctrl-C: 130 as shells expect, after whole lines and the summary; SIGTERM, the stop
    a service manager asks for: 0."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "tracer.cli.main", "replay", str(GOLDEN),
                             "-o", "jsonl", "--speed", "1"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    assert proc.stdout is not None
    first = proc.stdout.readline()    # replaying: the handlers are in place
    time.sleep(0.5)                   # well inside the recording's four seconds of events
    proc.send_signal(sig)
    rest, err = proc.communicate(timeout=30)
    out = first + rest
    assert proc.returncode == code, err
    *lines, last = out.splitlines()
    assert [json.loads(line)["kind"] for line in lines] and json.loads(last)["kind"] == "summary"
    assert len(events_only(out)) < len(load(GOLDEN).events)
    assert "Traceback" not in err and "summary: " in err
