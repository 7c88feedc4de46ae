"""Hostile command lines: every subcommand's parser and checks, driven by Hypothesis.

Whatever the values (nan, inf, negative, huge, malformed times, durations, sizes and
selectors, unicode, paths that are directories, FIFOs, missing or unreadable), the
exit status is 0, 1, 2 or 3 (4 from `diagnose --exit-code`), an error is one line
(after it, only the usage of the command that failed), and there is never a traceback.

The commands that need root (trace, record, live diagnose, doctor, lab, demo,
cleanup) run their parsing and their checks in-process, up to where they would load
BPF or build namespaces; replay and diagnose --from run whole on small files.  A few
subprocesses cover what only a real process shows (a FIFO, an unreadable file).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracer.cli import diagnose_cmd, lab_cmd, replay_cmd
from tracer.cli.main import build_parser, main
from tracer.cli.options import resolve_output
from tracer.cli.trace_cmd import trace_options
from tracer.recording.writer import RecordSpec

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
GOLDEN = DATA / "golden.ntrec"
JSONL = DATA / "diagnosis" / "healthy.jsonl"

HOSTILE_VALUES = [
    "nan", "NaN", "inf", "-inf", "+inf", "infinity", "-1", "0", "-0", "0.0", "1e309",
    "1e-309", "9" * 40, "9" * 5000, "", " ", "\t", "1x", "s", "5m", "1h30m", "500ms",
    "1.5h", "-5m", "+5m", "1h-30m", "2562047h", "99999999h", "1e3s", "0x10", "1_000",
    "2026-13-23T09:59:13Z", "2026-02-30T00:00:00Z", "2026-01-05T25:00:00Z",
    "2026-01-05T03:12:00+99:00", "2026-01-05T03:12:00Z", "0000-01-01T00:00:00Z",
    "9999-12-31T23:59:60.999999999Z", "1970-01-01T00:00:00Z", "yesterday", "now",
    "app in (web", "a=b=c", "!", "x notin ()", "k,", "metadata.name=x",
    "spec.foo=1", "-bad=1", "a" * 300, "é", "日本", "\u202e", "\ud800", "\x00",
    "a\nb", "--", "-", "-o", "-v", "1k", "64K", "500M", "2G", "1T", "1P", "lots",
    "10.0.0.0/33", "::/129", "10.42.0.0/16", "fd00::/8", "auto", "tcx", "jsonl",
    "table", "text", "yaml", "json", "wide", "tui", "NOT_SPECIFIED", "256", "3",
    "1048576",
]

values = st.one_of(
    st.sampled_from(HOSTILE_VALUES),
    st.text(max_size=12),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-2**70, max_value=2**70).map(str),
    st.builds(lambda n, u: f"{n}{u}", st.floats(min_value=-1e20, max_value=1e20),
              st.sampled_from(["ns", "us", "µs", "ms", "s", "m", "h", "d", "K", "M", "G"])),
)


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("fuzz")
    (d / "empty.ntrec").write_bytes(b"")
    (d / "random.ntrec").write_bytes(os.urandom(2048))
    (d / "readme.ntrec").write_text("# nodetrace\nnot a recording\n")
    (d / "objects.json").write_text('{"kind": "List", "items": []}')
    (d / "bad.json").write_text("{not json")
    unreadable = d / "unreadable.ntrec"
    unreadable.write_bytes(GOLDEN.read_bytes())
    unreadable.chmod(0)
    return {"golden": GOLDEN, "jsonl": JSONL, "dir": d, "missing": d / "nope.ntrec",
            "empty": d / "empty.ntrec", "random": d / "random.ntrec",
            "readme": d / "readme.ntrec", "objects": d / "objects.json",
            "bad_json": d / "bad.json", "unreadable": unreadable,
            "no_parent": d / "no" / "such" / "dir" / "f"}


@contextlib.contextmanager
def restored_signals() -> Iterator[None]:
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in saved.items():
            signal.signal(s, h)


def _checks_only(args: argparse.Namespace) -> int:
    """trace/record/live diagnose up to the point they would attach: every check."""
    if getattr(args, "output", None) is not None and args.command == "trace":
        resolve_output(args.output)
    path = getattr(args, "record", None) or getattr(args, "write", None)
    spec = RecordSpec(path, max_size=args.max_size, rotate=args.rotate) \
        if path is not None else None
    trace_options(args, spec)
    return 0


def _diagnose(args: argparse.Namespace) -> int:
    if args.from_file is None:
        return _checks_only(args)
    return diagnose_cmd.main(args)


def _replay(args: argparse.Namespace) -> int:
    # a pace would make a case last the recording's span; --speed's value is checked
    # by the parser, and the second process of -j is not for an in-process test
    args.speed, args.jobs = None, 1
    if resolve_output(args.output) == "tui":
        args.output = "table"
    return replay_cmd.main(args)


def _no_op(_args: argparse.Namespace) -> int:
    return 0


def fuzz_parser() -> argparse.ArgumentParser:
    """The real tree, with the handlers that would need root replaced by the checks."""
    parser = build_parser()
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "trace": _checks_only, "record": _checks_only, "diagnose": _diagnose,
        "replay": _replay, "doctor": _no_op, "demo": _no_op, "cleanup": _no_op}
    for name, sub in subcommands(parser).items():
        if name in handlers:
            sub.set_defaults(func=handlers[name])
        elif name == "lab list":
            sub.set_defaults(func=lab_cmd.cmd_list)
        elif name.startswith("lab "):
            sub.set_defaults(func=_no_op)
    return parser


def subcommands(parser: argparse.ArgumentParser,
                prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    out: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out[prefix + name] = sub
                out.update(subcommands(sub, prefix + name + " "))
    return out


def value_flags(parser: argparse.ArgumentParser) -> list[str]:
    return [a.option_strings[-1] for a in parser._actions
            if a.option_strings and a.nargs is None and not isinstance(
                a, (argparse._HelpAction, argparse._VersionAction))
            and a.const is None and not isinstance(a, argparse._CountAction)]


def switch_flags(parser: argparse.ArgumentParser) -> list[str]:
    return [a.option_strings[-1] for a in parser._actions
            if a.option_strings and a.nargs == 0
            and not isinstance(a, (argparse._HelpAction, argparse._VersionAction))]


PARSER = fuzz_parser()
COMMANDS = subcommands(PARSER)
FILE_KEYS = ["golden", "jsonl", "dir", "missing", "empty", "random", "readme",
             "unreadable", "objects", "bad_json", "no_parent"]


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with restored_signals(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv, parser=PARSER)
    return code, out.getvalue(), err.getvalue()


def assert_well_behaved(argv: list[str], code: int, err: str) -> None:
    # 4: what `diagnose --exit-code` says when it found something
    assert code in (0, 1, 2, 3) or (code == 4 and "--exit-code" in argv), (argv, code, err)
    assert "Traceback" not in err, (argv, err)
    errors = [ln for ln in err.splitlines() if ln.startswith("nodetrace: error:")]
    if code in (1, 2, 3):
        assert len(errors) == 1, (argv, code, err)
        # after the error line: the failing command's usage, a fix, nothing else
        after = err.split(errors[0], 1)[1].splitlines()[1:]
        for ln in after:
            assert ln.startswith(("usage: nodetrace", " ", "nodetrace: fix:")), (argv, err)
        if code == 2 and after:
            cmd = next((c for c in sorted(COMMANDS, key=len, reverse=True)
                        if " ".join(argv).startswith(c + " ")), None)
            if cmd is not None and argv[0] != "--":
                assert after[0].startswith(f"usage: nodetrace {cmd}"), (argv, err)
    else:
        assert not errors, (argv, err)


@st.composite
def command_lines(draw: Any, paths: dict[str, Path]) -> list[str]:
    # every command as often (lab's five subcommands share lab's turn)
    name: str = draw(st.sampled_from(sorted({c.split()[0] for c in COMMANDS})))
    if name == "lab" and draw(st.integers(0, 5)):
        name = draw(st.sampled_from(sorted(c for c in COMMANDS if c.startswith("lab "))))
    sub = COMMANDS[name]
    argv: list[str] = name.split()
    flags, switches = value_flags(sub), switch_flags(sub)
    positional = [a for a in sub._actions if not a.option_strings and a.dest != "help"
                  and not isinstance(a, argparse._SubParsersAction)]
    path_value = st.sampled_from(FILE_KEYS).map(lambda k: str(paths[k]))
    for _ in range(draw(st.integers(0, 4))):
        if switches and draw(st.booleans()):
            argv.append(draw(st.sampled_from(switches)))
        elif flags:
            flag = draw(st.sampled_from(flags))
            argv += [flag, draw(st.one_of(values, path_value))]
    for _ in positional:
        if draw(st.integers(0, 9)):     # now and then, a positional left out
            argv.append(draw(st.one_of(st.just(str(GOLDEN)), st.just(str(JSONL)), path_value,
                                       values)) if name == "replay"
                        else draw(st.one_of(st.sampled_from(
                            ["masquerade-missing", "no-route"]), values)))
    if name == "diagnose" and draw(st.booleans()):
        argv += ["--from", draw(path_value)]
    if draw(st.integers(0, 9)) == 0:
        argv.insert(draw(st.integers(0, len(argv))), draw(values))   # a stray word
    return argv


@settings(max_examples=2500, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_any_command_line_exits_0_to_3_with_one_line(data: st.DataObject,
                                                      paths: dict[str, Path]) -> None:
    argv = data.draw(command_lines(paths))
    code, _out, err = run(argv)
    assert_well_behaved(argv, code, err)


@settings(max_examples=600, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(since=values, until=values, which=st.sampled_from(
    [("--since", "--until"), ("--from-offset", "--to-offset"), ("--since", "--to-offset")]))
def test_replay_windows(since: str, until: str, which: tuple[str, str]) -> None:
    argv = ["replay", str(GOLDEN), "-o", "jsonl", f"{which[0]}={since}", f"{which[1]}={until}"]
    code, out, err = run(argv)
    assert_well_behaved(argv, code, err)
    if code == 0:
        assert out.splitlines()[-1].startswith('{"kind":"summary"')


@pytest.mark.parametrize("flag, value", [
    ("--duration", "nan"), ("--duration", "inf"), ("--duration", "-1s"),
    ("--duration", "1y"), ("--stop-after", "0"), ("--ringbuf-pages", "3"),
    ("--ringbuf-pages", "1e309"), ("-l", "app in (web"), ("--field-selector", "spec.x=1"),
])
def test_the_same_mistake_is_the_same_exit_status_in_every_command(flag: str,
                                                                    value: str) -> None:
    for cmd in (["trace"], ["record", "-w", "/tmp/x.ntrec"], ["diagnose"],
                ["diagnose", "--from", str(JSONL)] if flag in ("-l", "--field-selector")
                else ["diagnose"]):
        code, _out, err = run([*cmd, flag, value])
        assert code == 2, (cmd, flag, value, err)
        assert_well_behaved([*cmd, flag, value], code, err)


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0", "1e309", "5x", "1000000h"])
def test_durations_are_checked_wherever_they_are_taken(value: str) -> None:
    for argv in (["trace", "--duration", value], ["demo", "--duration", value],
                 ["lab", "run", "no-route", "--duration", value],
                 ["lab", "up", "no-route", "--ttl", value],
                 *([["replay", str(GOLDEN), "--since", value]] if value != "0" else [])):
        code, _out, err = run(argv)
        assert code == 2, (argv, err)
        assert_well_behaved(argv, code, err)


@pytest.mark.parametrize("key", ["dir", "missing", "empty", "random", "readme"])
def test_a_file_that_is_not_a_recording_is_exit_1_in_replay_and_diagnose(
        key: str, paths: dict[str, Path]) -> None:
    for argv in (["replay", str(paths[key]), "-o", "jsonl"],
                 ["diagnose", "--from", str(paths[key])]):
        code, _out, err = run(argv)
        if argv[0] == "diagnose" and key in ("empty", "random", "readme"):
            # diagnose reads a non-recording as JSON lines (whether it says so is the
            # recording opener's): never a traceback, never a usage error
            assert code in (0, 1), (argv, err)
            continue
        assert code == 1, (argv, code, err)
        assert_well_behaved(argv, code, err)


# --- a few real processes --------------------------------------------------------------

def _cli(*args: str, unprivileged: bool = False,
         stdin: Any = subprocess.DEVNULL) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "tracer.cli.main", *args]
    if unprivileged and os.geteuid() == 0:
        # root without its capabilities: a mode-0 file is unreadable, as for a user
        cmd = ["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--no-new-privs", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=ROOT,
                          stdin=stdin, env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.skipif(os.geteuid() == 0 and not shutil.which("setpriv"),
                    reason="root without setpriv reads any file")
def test_an_unreadable_file_is_exit_1(paths: dict[str, Path]) -> None:
    assert stat.S_IMODE(paths["unreadable"].stat().st_mode) == 0
    for args in (["replay", str(paths["unreadable"]), "-o", "jsonl"],
                 ["diagnose", "--from", str(paths["unreadable"])]):
        proc = _cli(*args, unprivileged=True)
        assert_well_behaved(args, proc.returncode, proc.stderr)
        assert proc.returncode == 1, proc.stderr


def test_a_fifo_of_random_bytes_is_exit_1(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.ntrec"
    os.mkfifo(fifo)
    for args in (["replay", str(fifo), "-o", "jsonl"], ["diagnose", "--from", str(fifo)]):
        done = threading.Event()

        def feed(done: threading.Event = done) -> None:
            # O_NONBLOCK: no reader (a command that refuses FIFOs) is not a hang here
            while not done.is_set():
                try:
                    fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                except OSError:
                    threading.Event().wait(0.05)
                    continue
                with contextlib.suppress(OSError):
                    os.set_blocking(fd, True)
                    os.write(fd, b"\x00garbage" + os.urandom(4096))
                os.close(fd)
                return

        writer = threading.Thread(target=feed, daemon=True)
        writer.start()
        proc = _cli(*args)
        done.set()
        writer.join(timeout=15)
        assert_well_behaved(args, proc.returncode, proc.stderr)
        assert proc.returncode == 1, proc.stderr


def test_a_real_process_prints_one_line_and_the_subcommands_usage() -> None:
    proc = _cli("trace", "--max-size", "inf", "-v")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    first, second, *_ = proc.stderr.splitlines()
    assert first.startswith("nodetrace: error: trace: argument --max-size: ")
    assert second.startswith("usage: nodetrace trace ")
    proc = _cli("replay", str(GOLDEN), "--bogus", "-v")
    assert proc.stderr.startswith("nodetrace: error: replay: unrecognized arguments: --bogus")
    assert "usage: nodetrace replay " in proc.stderr and proc.returncode == 2
