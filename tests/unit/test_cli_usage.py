"""Bad input gives a message and exit 2, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tracer.cli.main import main


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tracer.cli.main", *args],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("argv", [
    ["--no-such-flag"],
    ["trace", "--no-such-flag"],
    ["trace", "-o", "yaml"],
    ["trace", "--duration", "abc"],
    ["trace", "--duration", "-1"],
    ["trace", "--stop-after", "0"],
    ["doctor", "-o", "xml"],
    ["trace", "--ready-file", "/nonexistent/dir/ready"],
    ["trace", "--cluster-cidr", "10.42.0.0/33"],
    ["trace", "--tc-mode", "magic"],
    ["trace", "--ringbuf-pages", "3"],
    ["no-such-command"],
])
def test_usage_errors_exit_2_with_usage(argv: list[str]) -> None:
    proc = run_cli(*argv)
    assert proc.returncode == 2, proc.stderr
    assert "usage:" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().err


def test_help_ends_with_examples() -> None:
    for argv in (["--help"], ["trace", "--help"], ["doctor", "--help"]):
        proc = run_cli(*argv)
        assert proc.returncode == 0
        assert "examples:" in proc.stdout.split("\n\n")[-1] or "example" in proc.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="a session reaches the loader only where "
                    "tracefs is readable (root); a normal user is stopped before, by the "
                    "privilege check")
def test_missing_bcc_is_exit_3_with_the_setup_command(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    import builtins

    from tracer.kernel import loader

    real_import = builtins.__import__

    def no_bcc(name: str, *a: object, **k: object) -> object:
        if name == "bcc":
            raise ImportError("No module named 'bcc'")
        return real_import(name, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_bcc)
    monkeypatch.setattr(loader, "missing_privileges", lambda: [])
    assert main(["trace", "--duration", "1"]) == 3
    err = capsys.readouterr().err
    assert "BCC" in err and "bin/setup" in err
    assert "Traceback" not in err


def test_an_unknown_flag_after_a_subcommand_shows_that_subcommands_usage() -> None:
    proc = run_cli("trace", "--bogus")
    assert proc.returncode == 2
    first, second, *_ = proc.stderr.splitlines()
    assert first == "nodetrace: error: trace: unrecognized arguments: --bogus"
    assert second.startswith("usage: nodetrace trace ")
    assert proc.stderr.count("nodetrace:") == 1


def test_v_is_taken_after_the_subcommand() -> None:
    proc = run_cli("lab", "list", "-v")
    assert proc.returncode == 0, proc.stderr
    assert "masquerade-missing" in proc.stdout


def test_the_help_says_what_nodetrace_does_not_how_it_is_built() -> None:
    top = run_cli("--help").stdout
    assert "entry point" not in top and "argparse" not in top
    assert "exit status" in top and "130" in top
    trace = run_cli("trace", "--help").stdout
    assert "trace packet drops" not in trace
    for what in ("drops", "flows", "NAT", "route", "TCP", "socket", "findings"):
        assert what in trace, what
    replay = run_cli("replay", "--help").stdout
    assert "the TUI opens with the whole recording loaded at once" in " ".join(replay.split())


def test_documents_print_as_json_or_yaml_and_text_is_table() -> None:
    import json

    import yaml

    as_json = json.loads(run_cli("lab", "list", "-o", "json").stdout)
    as_yaml = yaml.safe_load(run_cli("lab", "list", "-o", "yaml").stdout)
    assert as_json == as_yaml and as_json
    assert run_cli("doctor", "-o", "text", "--help").returncode == 0


@pytest.mark.parametrize("text, ns", [
    ("30s", 30 * 10**9), ("5m", 300 * 10**9), ("1h30m", 5400 * 10**9), ("500ms", 5 * 10**8),
    ("1.5h", 5400 * 10**9), ("10", 10 * 10**9), ("0.25", 25 * 10**7), ("2m3s4ms", 123004 * 10**6),
    ("1us", 1000), ("7ns", 7),
])
def test_durations_in_go_syntax(text: str, ns: int) -> None:
    from tracer.cli.options import duration_ns

    assert duration_ns(text) == ns


@pytest.mark.parametrize("text", ["nan", "inf", "-1s", "1d", "5 m", "1h-5m", "", "1e3",
                                  "9999999h", "٣s"])
def test_what_is_not_a_duration(text: str) -> None:
    import argparse

    from tracer.cli.options import duration_ns

    with pytest.raises(argparse.ArgumentTypeError):
        duration_ns(text)


def test_rfc3339_times_are_checked_not_trusted() -> None:
    from tracer.cli.options import rfc3339_wall_ns

    assert rfc3339_wall_ns("1970-01-01T00:00:01.5Z") == 1_500_000_000
    assert rfc3339_wall_ns("1970-01-01T02:00:00+02:00") == 0
    for bad in ("2026-13-23T09:59:13Z", "2026-02-30T00:00:00Z", "2026-01-01T24:00:00Z",
                "2026-01-01T00:00:00+24:00", "2026-01-01", "2026-01-01T00:00:00"):
        with pytest.raises(ValueError):
            rfc3339_wall_ns(bad)


@pytest.mark.parametrize("argv", [
    ["trace", "--max-size", "inf", "--record", "x.ntrec"],
    ["trace", "--max-size", "nan", "--record", "x.ntrec"],
    ["record", "-w", "x.ntrec", "--max-size", "2P"],
    ["trace", "--ringbuf-pages", "1048576"],
    ["trace", "--stop-after", "1e9"],
    ["trace", "--duration", "inf"],
    ["trace", "--duration", "0s"],
    ["replay", "x.ntrec", "--speed", "nan"],
    ["lab", "up", "no-route", "--ttl", "-5m"],
])
def test_values_that_cannot_be_right_are_usage_errors(argv: list[str],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"nodetrace: error: {argv[0]}") and "Traceback" not in err
