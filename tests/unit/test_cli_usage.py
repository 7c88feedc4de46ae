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
