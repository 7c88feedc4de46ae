"""Record a live lab session and replay it: the same lines.  The real CLI traces the
lab's failing node (`masquerade-missing`) with `-o jsonl --record FILE`; `replay -o
jsonl`, run without capabilities, prints exactly what the live run printed.  SIGTERM
writes the end record; `record -w` is headless; `kill -9` leaves a file that replays."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.kernel.lab_fixtures import (  # noqa: F401 - fixtures
    HostSnapshot,
    host_unchanged_fixture,
    lab_scenario_fixture,
)
from tests.unit.recording_support import events_only, findings_said
from tracer.lab import runner
from tracer.lab.cluster import CLUSTER_CIDR, SERVICE_CIDR
from tracer.lab.lifecycle import Lab
from tracer.recording import load

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(300)]
ROOT = Path(__file__).resolve().parents[2]
SETTLE_S = 1.5   # the last flows report before the stop


def _start(lab: Lab, tmp: Path, *argv: str) -> subprocess.Popen[bytes]:
    ready = tmp / "ready"
    ready.unlink(missing_ok=True)
    proc = runner.start_tracer(
        lab, lab.scenario.trace_node,
        [sys.executable, "-m", "tracer.cli.main", *argv, "--ready-file", str(ready),
         "--cluster-cidr", CLUSTER_CIDR, "--service-cidr", SERVICE_CIDR,
         "--kubeconfig", lab.node(lab.scenario.trace_node).kubeconfig,
         "--node", lab.scenario.trace_node],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(ROOT),
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        runner.wait_for_file(ready, proc, runner.ATTACH_TIMEOUT_S)
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    return proc


def _replay(path: Path) -> subprocess.CompletedProcess[str]:
    # no capabilities: what the network team has on a laptop
    return subprocess.run(["setpriv", "--bounding-set=-all", "--inh-caps=-all",
                           "--no-new-privs", sys.executable, "-m", "tracer.cli.main",
                           "replay", str(path), "-o", "jsonl"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.parametrize("lab_scenario", ["masquerade-missing"], indirect=True)
def test_a_recorded_live_session_replays_to_the_same_lines(lab_scenario: Lab,
                                                            tmp_path: Path) -> None:
    rec = tmp_path / "session.ntrec"
    proc = _start(lab_scenario, tmp_path, "trace", "-o", "jsonl", "--record", str(rec))
    try:
        runner.drive(lab_scenario, lambda _text: None)
        time.sleep(SETTLE_S)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    live = out.decode()
    kinds = {line.split('"kind":"', 1)[1].split('"', 1)[0] for line in live.splitlines()}
    assert {"flow", "nat", "tcp"} <= kinds, kinds
    assert "untranslated-pod-source" in live

    assert stat.S_IMODE(rec.stat().st_mode) == 0o600
    replayed = _replay(rec)
    assert replayed.returncode == 0, replayed.stderr
    # the events line for line; findings are derived again, compared by what they say
    assert events_only(replayed.stdout) == events_only(live)
    assert findings_said(replayed.stdout) == findings_said(live)
    assert "Traceback" not in replayed.stderr and "warning" not in replayed.stderr.lower()

    recording = load(rec)
    assert recording.end is not None and recording.end.info.reason == "stopped"
    assert recording.end.events == len(events_only(live))   # findings are derived
    (state,) = recording.node_states
    assert "KUBE-SERVICES" in state.items["iptables"]
    assert "10.42.0.0/24" in state.items["ip_route"]
    assert recording.header.attached and recording.header.kernel_release == os.uname().release


@pytest.mark.parametrize("lab_scenario", ["masquerade-missing"], indirect=True)
def test_headless_record_and_kill_9(lab_scenario: Lab, tmp_path: Path) -> None:
    # `record -w`: nothing on stdout, the end record after --duration
    rec = tmp_path / "headless.ntrec"
    proc = _start(lab_scenario, tmp_path, "record", "-w", str(rec), "--duration", "4")
    runner.drive(lab_scenario, lambda _text: None)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out == b""
    recording = load(rec)
    assert recording.end is not None and recording.end.info.reason == "stopped"
    assert {"flow", "tcp"} <= {ev.kind for ev in recording.events}

    # kill -9 mid-session: every whole record replays, and the missing end is said
    killed = tmp_path / "killed.ntrec"
    proc = _start(lab_scenario, tmp_path, "record", "-w", str(killed))
    try:
        lab_scenario.probe(lab_scenario.scenario.controls[0])
        time.sleep(SETTLE_S)   # > the 1 s flush bound: what was traced is in the file
        proc.kill()
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    replayed = _replay(killed)
    assert replayed.returncode == 0, replayed.stderr
    assert "Traceback" not in replayed.stderr
    assert "has no end record" in replayed.stderr or "truncated at offset" in replayed.stderr
    assert '"kind":"flow"' in replayed.stdout
