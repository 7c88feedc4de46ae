"""`nodetrace diagnose --from` and the connection view, without root."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tracer.events.model import Endpoint, FlowEvent, NatEvent
from tracer.pipeline.connections import ConnectionTable

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "diagnosis"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tracer.cli.main", *args],
                          capture_output=True, text=True, timeout=60, cwd=REPO)


def test_diagnose_from_jsonl_json_document() -> None:
    s = "dns-unreachable"
    proc = run_cli("diagnose", "--from", str(DATA / f"{s}.jsonl"), "-o", "json",
                   "--metadata", str(DATA / f"{s}.objects.json"),
                   "--node-state", str(DATA / f"{s}.node.json"))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert [f["kind"] for f in doc["findings"]] == ["dns-unreachable"]
    assert doc["coverage"]["node_state"] is True
    assert doc["coverage"]["metadata"].startswith("file ")


def test_diagnose_from_text() -> None:
    s = "policy-drop"
    proc = run_cli("diagnose", "--from", str(DATA / f"{s}.jsonl"),
                   "--metadata", str(DATA / f"{s}.objects.json"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("!! netfilter-drop: ")
    assert "fix: " in proc.stdout and "1 finding(s): netfilter-drop x1" in proc.stdout


def test_diagnose_recording() -> None:
    """The golden recording (the lab's masquerade-missing): the finding of the same
    name, from the recorded events and node state."""
    proc = run_cli("diagnose", "--from", str(REPO / "tests" / "data" / "golden.ntrec"),
                   "-o", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert [f["kind"] for f in doc["findings"]] == ["masquerade-missing"]
    assert doc["coverage"]["node_state"] is True


@pytest.mark.parametrize("argv, message, code", [
    # a file that cannot be read: 1, as in replay
    (["--from", "/nonexistent.jsonl"], "no such file", 1),
    (["--from", str(DATA)], "a directory", 1),
    (["--from", str(DATA / "healthy.jsonl"), "--duration", "3"], "--from reads a file", 2),
    (["--from", str(DATA / "healthy.jsonl"), "--metadata", "/nonexistent.json"],
     "cannot read metadata", 1),
    (["--from", str(DATA / "healthy.jsonl"), "--node-state", str(DATA / "healthy.jsonl")],
     "cannot read node state", 1),
    # the selector is checked with --from as live: the same parser, the same error
    (["--from", str(DATA / "healthy.jsonl"), "-l", "app in (web"], "-l/--selector: ", 2),
    (["--from", str(DATA / "healthy.jsonl"), "-l", "a=b=c"], "-l/--selector: unable to parse", 2),
    (["--from", str(DATA / "healthy.jsonl"), "--field-selector", "spec.foo=x"],
     "field label not supported", 2),
    (["-o", "xml"], "usage: nodetrace diagnose", 2),
    (["--duration", "inf"], "usage: nodetrace diagnose", 2),
])
def test_bad_input_is_one_line(argv: list[str], message: str, code: int) -> None:
    proc = run_cli("diagnose", *argv)
    assert proc.returncode == code, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len([ln for ln in proc.stderr.splitlines() if "error" in ln]) == 1
    assert proc.stdout == ""


def test_exit_code_4_when_something_was_found_and_yaml() -> None:
    s = "policy-drop"
    argv = ["diagnose", "--from", str(DATA / f"{s}.jsonl"), "--metadata",
            str(DATA / f"{s}.objects.json"), "-o", "yaml"]
    plain, flagged = run_cli(*argv), run_cli(*argv, "--exit-code")
    assert plain.returncode == 0 and flagged.returncode == 4, flagged.stderr
    doc = yaml.safe_load(flagged.stdout)
    assert [f["kind"] for f in doc["findings"]] == ["netfilter-drop"]
    assert doc["summary"]["findings"] == {"netfilter-drop": 1}
    healthy = run_cli("diagnose", "--from", str(DATA / "healthy.jsonl"), "--exit-code")
    assert healthy.returncode == 0, healthy.stderr


def _kinds(*argv: str) -> tuple[list[str], dict[str, Any]]:
    proc = run_cli("diagnose", "--from", str(DATA.parent / "golden.ntrec"), "-o", "json",
                   *argv)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    return [f["kind"] for f in doc["findings"]], doc["coverage"]


def test_a_selection_narrows_a_recording_to_its_pods() -> None:
    """-l on a recording: the pods are looked up in the metadata it carries, and only
    their events are diagnosed (the golden session's finding is pod default/client's)."""
    every, _ = _kinds()
    assert "masquerade-missing" in every
    client, cov = _kinds("-l", "app=client")
    assert client == ["masquerade-missing"] and "pod selection" not in cov["unavailable"]
    web, _ = _kinds("-l", "app=web")
    assert "masquerade-missing" not in web
    # the same pod in another namespace is not it, as with kubectl
    other, _ = _kinds("-l", "app=client", "-n", "kube-system")
    assert other == []


def test_a_selection_that_matches_no_pod_is_said() -> None:
    found, cov = _kinds("-l", "app=nothing-like-it")
    assert found == []
    assert "no pod of the file matched" in cov["unavailable"]["pod selection"]


def test_a_selection_in_json_lines_needs_metadata() -> None:
    proc = run_cli("diagnose", "--from", str(DATA / "healthy.jsonl"), "-l", "app=web")
    assert proc.returncode == 2 and "needs --metadata" in proc.stderr
    assert len(proc.stderr.splitlines()) == 1


def test_text_is_kept_as_a_name_for_table() -> None:
    proc = run_cli("diagnose", "--from", str(DATA / "healthy.jsonl"), "-o", "text")
    assert proc.returncode == 0 and "finding(s)" in proc.stdout


def _flow(ifname: str, role: str, direction: str, src: Endpoint, dst: Endpoint, flags: int,
          t: int) -> FlowEvent:
    return FlowEvent(0, t, 1, 1, ifname, direction, "new", 4, 6, src, dst, flags, flags,
                     None, None, 1, 60, t, t, role)


def test_connection_view_joins_nat_that_arrives_late() -> None:
    """pod veth ingress (as sent) → DNAT → endpoint veth egress → reply, with the
    conntrack event arriving after all the packets: one connection, answered."""
    client, vip, ep = Endpoint("10.42.0.10", 40000), Endpoint("10.43.0.20", 80), \
        Endpoint("10.42.0.11", 8080)
    table = ConnectionTable()
    table.add(_flow("veth-client", "pod", "ingress", client, vip, 0x02, 1))
    table.add(_flow("veth-web", "pod", "egress", client, ep, 0x02, 2))
    table.add(_flow("veth-web", "pod", "ingress", ep, client, 0x12, 3))
    table.add(_flow("veth-client", "pod", "egress", vip, client, 0x12, 4))
    assert len(table.conns) == 2      # before conntrack tells, two tuples
    table.add(NatEvent(0, 5, 1, 4, 6, client, vip, ep, client, 0x20, "conntrack", None, "new"))
    (c,) = table.conns.values()
    assert c.dst == vip and c.translated_dst == ep and c.answered and not c.refused
    assert [h.ifname for h in c.forward_hops()] == ["veth-client", "veth-web"]
    assert [h.ifname for h in c.reply_hops()] == ["veth-web", "veth-client"]
    assert not table.candidates      # answered: no rule needs to look at it


def test_connection_view_rst_after_established_is_not_refused() -> None:
    a, b = Endpoint("10.42.0.10", 40001), Endpoint("10.42.0.11", 8080)
    table = ConnectionTable()
    table.add(_flow("veth-a", "pod", "ingress", a, b, 0x02, 1))
    table.add(_flow("veth-a", "pod", "egress", b, a, 0x12, 2))
    c = table.add(_flow("veth-a", "pod", "egress", b, a, 0x12 | 0x04, 3))
    assert c is not None and c.answered and not c.refused


def test_connection_view_is_bounded() -> None:
    from tracer.pipeline import connections

    table = ConnectionTable()
    n = 200
    old = connections.MAX_CONNECTIONS
    connections.MAX_CONNECTIONS = 100
    try:
        for i in range(n):
            table.add(_flow("veth-a", "pod", "ingress", Endpoint("10.42.0.10", 1000 + i),
                            Endpoint("192.168.2.10", 80), 0x02, i))
    finally:
        connections.MAX_CONNECTIONS = old
    assert len(table.conns) == 100 and table.evicted == 100
    assert len(table.candidates) == 100


def test_coverage_names_the_kinds_it_could_not_see() -> None:
    from tracer.diagnosis.rules import RULES
    from tracer.events.finding import Coverage

    assert {r.kind for r in RULES} == set(__import__(
        "tracer.events.finding", fromlist=["KINDS"]).KINDS)
    cov = Coverage(attached=["raw_tracepoint/kfree_skb", "tc/tcx: eth0(uplink)"],
                   probe_families=["drops", "tc"], metadata="file x", node_state=True,
                   needs={r.kind: r.needs for r in RULES})
    blind = cov.record()["partly_blind"]
    assert blind["service-no-endpoints"] == ["icmp"]
    assert blind["hostport-conflict"] == ["sock"]
    assert "masquerade-missing" not in blind and "ip-forward-disabled" not in blind
    assert Coverage().record()["partly_blind"] == {}   # JSON lines: not known
