"""Inputs that are not what they claim, and recordings that are damaged: `diagnose
--from`, `replay` and the TUI share one opener (tracer/recording/opener.py).  Anything
that is not a recording or JSON lines is one line on stderr and exit 1; a damaged
recording is read up to the damage and says so, in the warnings and in a diagnosis's
coverage; `-` reads a pipe.  No root needed (the unreadable file is read as nobody)."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.recording_support import GOLDEN, GOLDEN_JSONL, events_only
from tracer.recording import RecordingReader
from tracer.recording.format import Rec
from tracer.recording.opener import open_input
from tracer.util.errors import RecordingFormatError

ROOT = Path(__file__).resolve().parents[2]
DATA = GOLDEN.read_bytes()
NOBODY = 65534


def _frames(data: bytes) -> list[tuple[int, int, int]]:
    """(start, end, payload start) of every checked frame, by msgpack alone."""
    unpacker = msgpack.Unpacker(strict_map_key=False)
    unpacker.feed(data)
    out, pos = [], 0
    for rec in unpacker:
        end = unpacker.tell()
        if rec[0] == Rec.CHECKED:
            out.append((pos, end, end - len(rec[2])))
        pos = end
    return out


FRAMES = _frames(DATA)
HEADER_END = FRAMES[0][0]


def _is_block(frame: tuple[int, int, int]) -> bool:
    return bool(msgpack.unpackb(DATA[frame[2]:frame[1]], strict_map_key=False)[0]
                == Rec.EVENTS)


BIGGEST_BLOCK = max((f for f in FRAMES if _is_block(f)), key=lambda f: f[1] - f[0])


def cli(*args: str, user: int | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "tracer.cli.main", *args]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env,
                          cwd=ROOT, stdin=subprocess.DEVNULL)


def _pipe(data: bytes, *args: str) -> subprocess.CompletedProcess[bytes]:
    """`cat FILE | nodetrace ARGS`: standard input is a pipe, not a file."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "tracer.cli.main", *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=ROOT)
    out, err = proc.communicate(data, timeout=60)
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


# --- inputs that are not recordings ---------------------------------------------------

@pytest.fixture(name="inputs", scope="module")
def inputs_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    d = tmp_path_factory.mktemp("inputs")
    (d / "empty.ntrec").write_bytes(b"")
    shutil.copy(ROOT / "README.md", d / "readme.ntrec")
    (d / "random.ntrec").write_bytes(random.Random(18).randbytes(20_000))
    (d / "dir.ntrec").mkdir()
    os.mkfifo(d / "fifo.ntrec")
    (d / "short.ntrec").write_bytes(DATA[:12])              # cut inside the magic
    (d / "header-cut.ntrec").write_bytes(DATA[:HEADER_END // 2])
    (d / "blank.jsonl").write_bytes(b"\n  \n\n")
    (d / "not-events.jsonl").write_bytes(b'{"hello": 1}\n{"kind": 5}\n')
    yield {p.name.split(".")[0]: p for p in d.iterdir()} | {"missing": d / "missing.ntrec"}


KINDS = ["empty", "readme", "random", "dir", "fifo", "short", "header-cut", "blank",
         "not-events", "missing"]


@pytest.mark.parametrize("kind", KINDS)
def test_the_opener_names_the_file_and_what_is_wrong(inputs: dict[str, Path],
                                                     kind: str) -> None:
    with pytest.raises(RecordingFormatError) as exc, open_input(inputs[kind]) as opened:
        if opened.kind == "recording":    # the magic, then a cut: the reader says
            assert kind == "header-cut"
            RecordingReader(opened)
        # JSON lines are told by their first byte: what is in them by the consumer
        assert kind == "not-events" and opened.kind == "jsonl"
        raise RecordingFormatError("consumer")
    if kind != "not-events":
        assert str(inputs[kind]) in exc.value.message and "\n" not in exc.value.message


@pytest.mark.parametrize("command", ["diagnose", "replay"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_non_recording_is_one_line_and_exit_1(inputs: dict[str, Path], kind: str,
                                                command: str) -> None:
    path = str(inputs[kind])
    argv = ["diagnose", "--from", path] if command == "diagnose" else \
        ["replay", path, "-o", "jsonl"]
    proc = cli(*argv)
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith("nodetrace: error: ") and path in line, line
    assert proc.stdout == ""


def test_the_messages_say_what_is_wrong(inputs: dict[str, Path]) -> None:
    said = {k: cli("diagnose", "--from", str(inputs[k])).stderr for k in
            ("empty", "readme", "random", "dir", "fifo", "missing", "short")}
    assert "it is empty" in said["empty"]
    assert "wrong magic" in said["readme"] and "text starting '# " in said["readme"]
    assert "wrong magic" in said["random"] and "binary data" in said["random"]
    assert "it is a directory" in said["dir"]
    assert "it is a FIFO" in said["fifo"] and "standard input" in said["fifo"]
    assert "no such file" in said["missing"]
    assert "header is truncated" in said["short"]


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="reading as another user needs root to switch to it")
@pytest.mark.parametrize("command", ["diagnose", "replay"])
def test_an_unreadable_file_is_one_line_and_exit_1(command: str) -> None:
    # root reads through chmod 000: the command runs as nobody, who may enter the
    # directory but not read the file
    d = Path(tempfile.mkdtemp(prefix="nt-unreadable-"))
    try:
        d.chmod(0o711)
        path = d / "node.ntrec"
        path.write_bytes(DATA)
        path.chmod(0)
        argv = ["diagnose", "--from", str(path)] if command == "diagnose" else \
            ["replay", str(path), "-o", "jsonl"]
        proc = cli(*argv, user=NOBODY)
        # a checkout nobody cannot read (a 0700 clone directory) fails on the import,
        # not on the file: say so rather than show an import traceback
        unreadable = [str(p) for p in (ROOT, *ROOT.parents)
                      if not p.stat().st_mode & 0o001]
        assert not unreadable, f"nobody cannot reach the checkout through {unreadable}"
        assert proc.returncode == 1, proc.stderr
        (line,) = proc.stderr.splitlines()
        assert line == f"nodetrace: error: cannot read {path}: permission denied"
    finally:
        shutil.rmtree(d)


# --- standard input -----------------------------------------------------------------

def test_replay_reads_a_pipe_as_it_reads_the_file() -> None:
    piped = _pipe(DATA, "replay", "-", "-o", "jsonl")
    assert piped.returncode == 0, piped.stderr
    assert b"Traceback" not in piped.stderr and b"replaying standard input" in piped.stderr
    assert events_only(piped.stdout.decode()) == events_only(GOLDEN_JSONL.read_text())
    via_dev = _pipe(DATA, "replay", "/dev/stdin", "-o", "jsonl")
    assert via_dev.returncode == 0, via_dev.stderr
    assert via_dev.stdout == piped.stdout


def test_a_truncated_pipe_says_where_it_was_cut() -> None:
    cut = (BIGGEST_BLOCK[0] + BIGGEST_BLOCK[1]) // 2
    proc = _pipe(DATA[:cut], "replay", "-", "-o", "jsonl")
    assert proc.returncode == 0, proc.stderr
    assert (f"standard input: truncated at offset {BIGGEST_BLOCK[0]} (of {cut} bytes)"
            .encode() in proc.stderr)


def test_diagnose_reads_a_pipe() -> None:
    proc = _pipe(DATA, "diagnose", "--from", "-", "-o", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert [f["kind"] for f in doc["findings"]] == ["masquerade-missing"]
    assert doc["coverage"]["input"]["name"] == "standard input"
    assert doc["coverage"]["input"]["damaged"] is False
    jsonl = _pipe(GOLDEN_JSONL.read_bytes(), "diagnose", "--from", "-", "-o", "json")
    assert jsonl.returncode == 0, jsonl.stderr
    assert json.loads(jsonl.stdout)["coverage"]["input"]["kind"] == "jsonl"


def test_replay_takes_json_lines() -> None:
    for output in ("jsonl", "table"):
        proc = cli("replay", str(GOLDEN_JSONL), "-o", output)
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr
        assert "192.168.2.10" in proc.stdout
    lines = cli("replay", str(GOLDEN_JSONL), "-o", "jsonl").stdout
    assert len(events_only(lines)) == len(events_only(GOLDEN_JSONL.read_text()))


# --- damaged recordings: read up to the damage, and said ------------------------------

def _damaged(tmp_path: Path, how: str) -> tuple[Path, dict[str, Any]]:
    data = bytearray(DATA)
    start, end, payload = BIGGEST_BLOCK
    if how == "truncated":
        data = data[:(start + end) // 2]
        expect: dict[str, Any] = {"truncated_at": start, "bytes_skipped": (end - start) // 2,
                  "blocks_rejected": 0}
    else:
        data[payload + (end - payload) // 3] ^= 0x10
        expect = {"truncated_at": None, "bytes_skipped": end - start, "blocks_rejected": 1}
    path = tmp_path / f"{how}.ntrec"
    path.write_bytes(bytes(data))
    return path, expect


@pytest.mark.parametrize("how", ["truncated", "bit-flipped"])
def test_diagnose_reports_the_damage_in_text_and_in_coverage(tmp_path: Path,
                                                              how: str) -> None:
    path, expect = _damaged(tmp_path, how)
    doc = json.loads(cli("diagnose", "--from", str(path), "-o", "json").stdout)
    got = doc["coverage"]["input"]
    assert got["damaged"] is True and got["checksums"] is True and got["format"] == "2.1"
    assert {k: got[k] for k in expect} == expect
    assert any("DAMAGED" in n for n in doc["coverage"]["notes"])
    text = cli("diagnose", "--from", str(path))
    assert text.returncode == 0, text.stderr
    (note,) = [line for line in text.stdout.splitlines() if "DAMAGED" in line]
    assert note.startswith("note: the input is DAMAGED") and str(path) in note
    where = f"truncated at offset {BIGGEST_BLOCK[0]}" if how == "truncated" else \
        "1 record(s) rejected"
    assert where in note


def test_a_clean_recording_is_not_marked_and_an_old_one_says_it_has_no_checksums() -> None:
    doc = json.loads(cli("diagnose", "--from", str(GOLDEN), "-o", "json").stdout)
    assert doc["coverage"]["input"]["damaged"] is False
    assert not any("DAMAGED" in n or "checksum" in n for n in doc["coverage"]["notes"])
    old = GOLDEN.with_name("golden-2.0.ntrec")
    doc = json.loads(cli("diagnose", "--from", str(old), "-o", "json").stdout)
    assert doc["coverage"]["input"]["checksums"] is False
    assert "format 2.0 has no checksums: damage inside a record may have gone unnoticed" \
        in doc["coverage"]["notes"]
    proc = cli("replay", str(old), "-o", "jsonl")
    assert proc.stderr.count("has no checksums") == 1


# --- every single-bit flip inside a frame's payload is caught -------------------------

def _items(data: bytes, tmp: Path) -> tuple[list[Any], RecordingReader]:
    path = tmp / "r.ntrec"
    path.write_bytes(data)
    with RecordingReader(path) as r:
        return list(r), r


@pytest.fixture(name="without", scope="module")
def without_fixture(tmp_path_factory: pytest.TempPathFactory) -> list[list[Any]]:
    """For each frame: what the golden recording reads to without it."""
    tmp = tmp_path_factory.mktemp("without")
    return [_items(DATA[:s] + DATA[e:], tmp)[0] for s, e, _p in FRAMES]


@settings(max_examples=1500, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_single_bit_flip_in_a_payload_is_detected(
        tmp_path: Path, without: list[list[Any]], data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(FRAMES) - 1), label="frame")
    start, end, payload = FRAMES[i]
    at = data.draw(st.integers(payload, end - 1), label="byte")
    buf = bytearray(DATA)
    buf[at] ^= 1 << data.draw(st.integers(0, 7), label="bit")
    items, r = _items(bytes(buf), tmp_path)
    # that frame is skipped whole; every other record reads exactly as before
    assert r.rejected == 1 and r.first_rejected_at == start
    assert items == without[i]
    assert r.truncated_at is None and r.damaged_at is None
    assert r.coverage().bytes_skipped == end - start


def test_replay_names_the_offset_of_a_frame_that_failed_its_checksum(tmp_path: Path) -> None:
    path, _ = _damaged(tmp_path, "bit-flipped")
    proc = cli("replay", str(path), "-o", "jsonl")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    assert f"{path}: 1 record(s) failed their checksum (the first at offset " \
        f"{BIGGEST_BLOCK[0]}), skipped whole" in proc.stderr
    # the block's events are gone, none of them altered: every line is one of the golden's
    assert 0 < len(events_only(proc.stdout)) < len(events_only(GOLDEN_JSONL.read_text()))
    assert set(events_only(proc.stdout)) <= set(events_only(GOLDEN_JSONL.read_text()))
