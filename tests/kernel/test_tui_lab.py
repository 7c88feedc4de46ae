"""`nodetrace lab run masquerade-missing` on a terminal (tmux) opens the TUI, and the
screen shows the scenario's failure within seconds of the traffic."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.kernel.lab_fixtures import HostSnapshot, host_unchanged_fixture  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
ATTACH_AND_DRIVE_S = 240.0     # BCC compiles first: tens of seconds on a busy 2-core VM


def tmux(sock: str, *args: str, check: bool = True) -> str:
    return subprocess.run(["tmux", "-L", sock, *args], capture_output=True, text=True,
                          check=check).stdout


@pytest.mark.kernel
def test_lab_run_shows_the_failure_in_the_tui(host_unchanged: HostSnapshot,
                                             tmp_path: Path) -> None:
    sock = f"nodetrace-test-{os.getpid()}"    # our own tmux server: killed at the end
    rc_file = tmp_path / "rc"
    # COLUMNS/LINES from the pytest process (its plugins set them) would win over the
    # pane's size in the app
    cmd = (f"unset COLUMNS LINES; cd {shlex.quote(str(ROOT))} && "
           f"PYTHONPATH={shlex.quote(str(ROOT))} "
           f"{shlex.quote(sys.executable)} -m tracer.cli.main lab run masquerade-missing; "
           f"echo $? > {shlex.quote(str(rc_file))}; sleep 30")
    tmux(sock, "-f", "/dev/null", "new-session", "-d", "-s", "lab", "-x", "160", "-y", "45",
         cmd)
    try:
        tmux(sock, "resize-window", "-t", "lab", "-x", "160", "-y", "45", check=False)
        deadline = time.monotonic() + ATTACH_AND_DRIVE_S
        screen = ""
        while time.monotonic() < deadline:
            screen = tmux(sock, "capture-pane", "-p", "-t", "lab", check=False)
            if "untranslated-pod-source" in screen and "timed out" in screen:
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"the TUI never showed the failure; last screen:\n{screen}")
        # the header: the node, the probes, no loss
        assert "node node1" in screen
        assert "probes" in screen and "attached" in screen
        assert "lost 0" in screen
        assert "192.168.2.10:5432" in screen
        tmux(sock, "send-keys", "-t", "lab", "q")
        deadline = time.monotonic() + 60
        while not rc_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert rc_file.exists(), "q did not end `lab run`"
        assert rc_file.read_text().strip() == "0"
    finally:
        tmux(sock, "kill-server", check=False)
