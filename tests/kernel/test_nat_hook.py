"""The per-packet NAT hook on nf_nat_manip_pkt — fentry where doctor's fentry check says
fentry loads, a kprobe otherwise — on a lab NodePort connection that is both DNATed
(the Service) and masqueraded (KUBE-POSTROUTING), checked against conntrack's view.

This machine's kernel has neither kprobes nor fentry: these tests run inside the kernel
matrix VMs (tests/kernels/), which boot distro kernels that have them and report back.
They are marked `kprobes`, not `kernel`, so a host without either skips them honestly
while the matrix test proves they ran.  One tracer (one BCC compile, ~100 s under
emulation) serves every test of the module.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.kernel.tracing import TraceRun, raw, tracing
from tracer.kernel.features import ensure_tracefs, fentry_available, kprobes_available
from tracer.lab.cluster import EXTERNAL_HOST
from tracer.lab.lifecycle import lab_running
from tracer.lab.netns import Netns
from tracer.lab.scenarios import NODEPORT_REMOTE

pytestmark = [
    pytest.mark.kprobes,
    pytest.mark.skipif(not kprobes_available(ensure_tracefs()) and not fentry_available()[0],
                       reason="this kernel has neither kprobes nor fentry; the kernel "
                       "matrix VMs run these"),
]

# ext -> node2's NodePort: KUBE-NODEPORTS/KUBE-EXT mark it for masquerade, KUBE-SEP
# DNATs it to web-a on node1, KUBE-POSTROUTING masquerades it to node2's address
NODE2_IP, WEB_A = "192.168.1.12", {"ip": "10.42.0.11", "port": 8080}
NODEPORT = {"ip": NODEPORT_REMOTE.host, "port": NODEPORT_REMOTE.port}
CONNECTIONS = 3
OUT = os.environ.get("NODETRACE_MATRIX_OUT")  # the matrix collects a summary here
# the matrix forces the kprobe on the kernel it proves the kprobe path on
NAT_HOOK = os.environ.get("NODETRACE_MATRIX_NAT_HOOK", "auto")


@dataclass
class NatTrace:
    run: TraceRun
    attached: list[str]
    outcomes: list[str]
    ready_s: float          # start to attached: compile + load + attach
    nat: list[dict[str, Any]]


@pytest.fixture(scope="module")
def nodeport_trace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatTrace]:
    # one lab per machine (tests/kernel/lab_fixtures.py takes the same lock)
    with open("/run/nodetrace-lab.test-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with lab_running("healthy", ttl_s=1200) as lab:
            tmp = tmp_path_factory.mktemp("nat")
            started = time.monotonic()
            with tracing(Netns(lab.node("node2").netns), tmp, "--nat-hook", NAT_HOOK,
                         ready_timeout_s=900) as run:
                ready_s = time.monotonic() - started
                attached = json.loads(run.ready.read_text())["attached"]
                outcomes = [lab.probe(NODEPORT_REMOTE)["outcome"] for _ in range(CONNECTIONS)]
                assert run.stop(timeout_s=120) == 0, run.stderr
    nat = [e for e in run.events if e["kind"] == "nat" and raw(e["orig"]["dst"]) == NODEPORT
           and e["orig"]["src"]["ip"] == EXTERNAL_HOST]
    trace = NatTrace(run, attached, outcomes, ready_s, nat)
    if OUT:
        events = Counter(f"{e['origin']}/{e.get('manip') or e.get('ct_event')}" for e in nat)
        summary = {"attached": attached, "nat_hook": NAT_HOOK, "connections": outcomes,
                   "ready_s": round(ready_s, 1), "fentry": fentry_available(),
                   "nat_events": dict(events),
                   "fallback": [line for line in run.stderr.splitlines()
                                if " not used (" in line]}
        Path(OUT, "nat.json").write_text(json.dumps(summary, indent=1) + "\n")
    yield trace


def test_nat_hook_is_fentry_where_doctor_says_fentry_loads(nodeport_trace: NatTrace) -> None:
    ok, why = fentry_available()
    labels = [a for a in nodeport_trace.attached if a.endswith("/nf_nat_manip_pkt")]
    if NAT_HOOK == "kprobe":
        ok, why = False, "--nat-hook kprobe"
    if ok:
        assert labels == ["fentry/nf_nat_manip_pkt"], nodeport_trace.attached
    else:
        assert labels == ["kprobe/nf_nat_manip_pkt"], nodeport_trace.attached
        # the fallback says why, in the operator's log
        assert f"fentry/nf_nat_manip_pkt not used ({why})" in nodeport_trace.run.stderr


def test_nat_hook_reports_service_dnat_and_masquerade_per_connection(
        nodeport_trace: NatTrace) -> None:
    assert nodeport_trace.outcomes == ["ok"] * CONNECTIONS
    hook = [e for e in nodeport_trace.nat if e["origin"] == "kprobe"]  # in-kernel, per packet
    by_conn: dict[int, set[str]] = {}
    for e in hook:
        by_conn.setdefault(e["orig"]["src"]["port"], set()).add(e["manip"])
        # DNAT is decided first (PREROUTING): from then on the reply comes from web-a...
        assert raw(e["reply"]["src"]) == WEB_A, e
    for e in (k for k in hook if k["manip"] == "src"):
        # ...and once MASQUERADE is decided (POSTROUTING), it goes to node2's address
        assert e["reply"]["dst"]["ip"] == NODE2_IP, e
    assert len(by_conn) == CONNECTIONS, by_conn
    assert all(manips == {"dst", "src"} for manips in by_conn.values()), by_conn


def test_nat_hook_agrees_with_conntrack(nodeport_trace: NatTrace) -> None:
    def key(e: dict[str, Any]) -> tuple[str, ...]:
        return tuple(json.dumps(raw(e[k][end]), sort_keys=True)
                     for k in ("orig", "reply") for end in ("src", "dst"))

    hook = {key(e) for e in nodeport_trace.nat if e["origin"] == "kprobe" and e["manip"] == "src"}
    conntrack = {key(e) for e in nodeport_trace.nat if e["origin"] == "conntrack"}
    assert hook, "the hook saw the masqueraded connections"
    # the same connections, translated the same way (conntrack's tuples are final)
    assert hook <= conntrack, (hook, conntrack)
