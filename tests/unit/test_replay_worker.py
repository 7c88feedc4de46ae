"""`replay -o jsonl -j 2` (tracer/cli/replay_worker.py): a second process renders half
the lines; the output must be byte for byte that of one process, also when the worker
dies half-way through a batch."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.unit.recording_support import GOLDEN, write_recording
from tracer.recording import load

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(name="long_recording", scope="module")
def long_recording_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The golden session's events 230 times over (5980 events: six of replay's
    batches), with its metadata and node state, so lines carry names and findings."""
    golden = load(GOLDEN)
    start = golden.events[0].wall_ns
    events = [dataclasses.replace(ev, wall_ns=start + i * 1_000_000)
              for i, ev in enumerate(golden.events * 230)]
    path = tmp_path_factory.mktemp("long") / "long.ntrec"
    write_recording(path, [events[i:i + 1024] for i in range(0, len(events), 1024)],
                    metadata=[(m.kind, m.action, m.obj, m.wall_ns / 1e9)
                              for m in golden.metadata],
                    node_state=golden.node_states[0].items)
    return path


def _replay(*argv: str, script: str | None = None) -> subprocess.CompletedProcess[str]:
    code = script or "import sys; from tracer.cli.main import main; sys.exit(main())"
    return subprocess.run([sys.executable, "-c", code, "-vv", "replay", *argv],
                          capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_two_processes_print_exactly_the_lines_of_one(long_recording: Path) -> None:
    one = _replay(str(long_recording), "-o", "jsonl", "-j", "1")
    two = _replay(str(long_recording), "-o", "jsonl", "-j", "2")
    assert one.returncode == two.returncode == 0, two.stderr
    assert len(one.stdout.splitlines()) > 5980 and '"kind":"finding"' in one.stdout
    assert two.stdout == one.stdout
    assert "line worker: rendered 3 batches" in two.stderr      # batches 1, 3 and 5
    assert "line worker" not in one.stderr


# The worker's renderer, replaced before the fork: at its third batch it sends one
# chunk and dies (the main process's own renderer is another name, untouched).
DYING_WORKER = """
import os, sys
import tracer.cli.replay_worker as w
real, calls = w.jsonl_chunks, [0]
def dying(batch):
    calls[0] += 1
    for chunk in real(batch):
        yield chunk
        if calls[0] == 3:
            os._exit(3)
w.jsonl_chunks = dying
from tracer.cli.main import main
sys.exit(main())
"""


def test_a_worker_that_dies_mid_batch_costs_no_line(long_recording: Path) -> None:
    one = _replay(str(long_recording), "-o", "jsonl", "-j", "1")
    dying = _replay(str(long_recording), "-o", "jsonl", "-j", "2", script=DYING_WORKER)
    assert dying.returncode == 0, dying.stderr
    assert dying.stdout == one.stdout
    assert "line worker gone at batch 5" in dying.stderr
    assert "line worker: rendered 2 batches" in dying.stderr


def _state(pid: int) -> str:
    """A process's state letter, or "" once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return ""


# A worker busy for a minute (not blocked on its pipe, where the main process's end
# would end it anyway)
BUSY_WORKER = """
import sys, time
import tracer.cli.replay_worker as w
def busy(batch):
    time.sleep(60)
    yield b""
w.jsonl_chunks = busy
from tracer.cli.main import main
sys.exit(main())
"""


def test_the_worker_ends_with_the_main_process_even_on_kill_9(long_recording: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", BUSY_WORKER, "replay",
                             str(long_recording), "-o", "jsonl", "-j", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
        deadline = time.monotonic() + 20
        while not children.read_text().split() and time.monotonic() < deadline:
            time.sleep(0.02)
        (worker,) = map(int, children.read_text().split())
        time.sleep(0.5)                   # into its minute of work
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 5
        while _state(worker) not in ("", "Z", "X") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _state(worker) in ("", "Z", "X")     # dead (a zombie until init reaps it)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
