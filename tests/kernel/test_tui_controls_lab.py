"""The TUI's `l` re-attaches a live session (tc on exactly the selected pods' veths)
and `r` records it, on the real kernel: `trace -o tui` in node1's namespace of the
`healthy` lab, driven under tmux (tests/kernel/test_tui_lab.py shows the way)."""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from pathlib import Path

import pytest

from tests.kernel.lab_fixtures import (  # noqa: F401 - fixtures
    HostSnapshot,
    host_unchanged_fixture,
    lab_scenario_fixture,
)
from tests.kernel.test_metadata_lab import ifindex, node1, tcx_ifindexes, wait_for
from tests.kernel.test_tui_lab import tmux
from tracer.events.model import FlowEvent
from tracer.lab.lifecycle import Lab
from tracer.lab.scenarios import WEB_SVC
from tracer.recording.reader import EndRecord, RecordingReader

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(240)]
ROOT = Path(__file__).resolve().parents[2]
ATTACH_S = 180.0     # BCC compiles first


@pytest.mark.parametrize("lab_scenario", ["healthy"], indirect=True)
def test_l_reattaches_and_r_records_a_live_session(lab_scenario: Lab, tmp_path: Path) -> None:
    lab = lab_scenario
    ns, kubeconfig = node1(lab)
    web = lab.pod("web-a")
    assert web.veth_host
    ready = tmp_path / "ready"
    sock = f"nodetrace-ctl-{os.getpid()}"
    cmd = (f"unset COLUMNS LINES; cd {shlex.quote(str(tmp_path))} && "
           f"ip netns exec {shlex.quote(ns.name)} env PYTHONPATH={shlex.quote(str(ROOT))} "
           f"{shlex.quote(sys.executable)} -m tracer.cli.main trace -o tui "
           f"--kubeconfig {shlex.quote(kubeconfig)} --node node1 "
           f"--ready-file {shlex.quote(str(ready))}; sleep 30")

    def screen() -> str:
        return tmux(sock, "capture-pane", "-p", "-t", "ctl", check=False)

    tmux(sock, "-f", "/dev/null", "new-session", "-d", "-s", "ctl", "-x", "160", "-y", "45",
         cmd)
    try:
        wait_for(ready.exists, ATTACH_S, "the tracer attaching")
        pid = json.loads(ready.read_text())["pid"]
        web_idx = ifindex(ns, web.veth_host)
        assert len(tcx_ifindexes(pid)) > 1          # every pod's veth and the uplink
        tmux(sock, "send-keys", "-t", "ctl", "l")
        time.sleep(0.5)
        tmux(sock, "send-keys", "-t", "ctl", "-l", "app=web")
        tmux(sock, "send-keys", "-t", "ctl", "Enter")
        took = wait_for(lambda: tcx_ifindexes(pid) == {web_idx}, 5, "re-attach to web-a")
        wait_for(lambda: "pods: -l app=web, namespace default" in screen(), 5,
                 "the selection in the header")
        tmux(sock, "send-keys", "-t", "ctl", "r")
        wait_for(lambda: any(tmp_path.glob("nodetrace-node1-*.ntrec")), 5, "a recording")
        path = next(tmp_path.glob("nodetrace-node1-*.ntrec"))
        wait_for(lambda: "● REC " + path.name in screen(), 5, "REC in the header")
        assert lab.probe(WEB_SVC)["outcome"] == "ok"     # client -> web Service -> web-a
        tmux(sock, "send-keys", "-t", "ctl", "r")
        wait_for(lambda: "recording stopped" in screen(), 5, "the recording's end")
        tmux(sock, "send-keys", "-t", "ctl", "q")
        wait_for(lambda: not Path(f"/proc/{pid}").exists(), 30, "q ending the tracer")
    finally:
        tmux(sock, "kill-server", check=False)
    print(f"re-attached {took:.2f} s after Enter")
    with RecordingReader(path) as reader:
        items = list(reader)
    assert isinstance(items[-1], EndRecord) and items[-1].info.reason == "stopped"
    flows = [i for i in items if isinstance(i, FlowEvent)]
    assert flows and {f.ifindex for f in flows} == {web_idx}
