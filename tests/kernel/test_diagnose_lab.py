"""Diagnosis on the real kernel: every lab scenario, traced live in its node while its
traffic runs, produces exactly its expected finding kind, naming the right objects,
within 10 s of the traffic; `healthy` produces none; and the recording of the same run
diagnosed with `diagnose --from` gives the same findings.  ~15 s per scenario."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.kernel.lab_fixtures import (  # noqa: F401 - fixtures
    HostSnapshot,
    host_unchanged_fixture,
    lab_scenario_fixture,
)
from tracer.lab.cluster import CLUSTER_CIDR, SERVICE_CIDR
from tracer.lab.lifecycle import Lab, probes_of
from tracer.lab.runner import start_tracer, wait_for_file
from tracer.lab.scenarios import Probe
from tracer.util.timefmt import parse_rfc3339 as wall_ns

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(180)]
REPO = Path(__file__).resolve().parents[2]
WINDOW_S = 10.0

# scenario -> (finding kind, objects it must name as (kind, namespace, name))
EXPECTED: dict[str, tuple[str, set[tuple[str, str | None, str]]]] = {
    "masquerade-missing": ("masquerade-missing", {("Pod", "default", "client")}),
    "ip-forward-disabled": ("ip-forward-disabled", {("Pod", "default", "client")}),
    "no-route": ("no-route", {("Pod", "default", "client")}),
    "hostport-conflict": ("hostport-conflict", {
        ("Pod", "monitoring", "metrics-6f7c9b8d4-q9m4d"),
        ("Pod", "monitoring", "metrics-6f7c9b8d4-x7k2p")}),
    "externalip-untranslated": ("externalip-untranslated", {
        ("Service", "default", "web"), ("Pod", "kube-system", "agent")}),
    "service-no-endpoints": ("service-no-endpoints", {("Service", "default", "orders"),
                                                      ("Pod", "default", "client")}),
    "dns-unreachable": ("dns-unreachable", {("Service", "kube-system", "kube-dns"),
                                            ("Pod", "kube-system", "coredns"),
                                            ("Node", None, "node2")}),
    "nodeport-remote-endpoint": ("pod-network-unreachable", {
        ("Service", "default", "web"), ("Pod", "default", "web-a"), ("Node", None, "node1")}),
    "nexthop-not-adjacent": ("nexthop-unreachable", {("Service", "default", "api"),
                                                     ("Pod", "default", "api")}),
    "policy-drop": ("netfilter-drop", {("Pod", "default", "client"),
                                       ("Pod", "default", "web-a")}),
    "connection-refused": ("connection-refused", {("Service", "default", "web"),
                                                  ("Pod", "default", "web-a")}),
    "rp-filter-drop": ("rp-filter-drop", {("Pod", "default", "vpn-gw"),
                                          ("Pod", "default", "api")}),
}


def _objects(f: dict[str, Any]) -> set[tuple[str, str | None, str]]:
    return {(o["kind"], o["namespace"], o["name"]) for o in f["objects"]}


def _trace(lab: Lab, tmp: Path, first: tuple[Probe, ...] = ()) -> \
        tuple[list[dict[str, Any]], float, Path]:
    """`trace -o jsonl --record` in the scenario's node for WINDOW_S from the moment it
    is attached, the scenario's traffic driven at once; its findings, the wall time the
    traffic started, and the recording."""
    node = lab.scenario.trace_node
    ready, rec, out = tmp / "ready", tmp / "run.ntrec", tmp / "trace.jsonl"
    argv = [sys.executable, "-m", "tracer.cli.main", "trace", "-o", "jsonl",
            "--duration", str(WINDOW_S), "--ready-file", str(ready), "--record", str(rec),
            "--metadata", lab.state.objects_file, "--node", node,
            "--cluster-cidr", CLUSTER_CIDR, "--service-cidr", SERVICE_CIDR]
    with out.open("wb") as stdout:
        tracer = start_tracer(lab, node, argv, stdout=stdout, stderr=subprocess.PIPE,
                              cwd=REPO)
        try:
            wait_for_file(ready, tracer, 180)
            started = time.time()
            for probe in (*first, *probes_of(lab.scenario)):
                if time.time() - started < WINDOW_S - probe.timeout_s:
                    lab.probe(probe)
            _out, err = tracer.communicate(timeout=WINDOW_S + 60)
        finally:
            if tracer.poll() is None:
                tracer.send_signal(signal.SIGKILL)
                tracer.wait()
    assert tracer.returncode == 0, err
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    return [e for e in lines if e["kind"] == "finding"], started, rec


def _diagnose_from(rec: Path, objects: str, node: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "tracer.cli.main", "diagnose", "--from",
                           str(rec), "--metadata", objects, "--node", node, "-o", "json"],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


@pytest.mark.parametrize("lab_scenario", [*EXPECTED, "healthy"], indirect=True)
def test_scenario_diagnosed(lab_scenario: Lab, tmp_path: Path) -> None:
    name = lab_scenario.scenario.name
    findings, started, rec = _trace(lab_scenario, tmp_path)
    if name == "healthy":
        assert findings == []
    else:
        kind, objects = EXPECTED[name]
        assert {f["finding"] for f in findings} == {kind}, findings
        f = findings[0]
        assert objects <= _objects(f), f
        assert wall_ns(f["time"]) / 1e9 - started < WINDOW_S, f
        assert f["summary"] and f["fix"] and f["evidence"]
    # the recording of the same run, diagnosed anywhere, says the same
    replayed = _diagnose_from(rec, lab_scenario.state.objects_file,
                              lab_scenario.scenario.trace_node)
    assert [(f["kind"], f["summary"]) for f in replayed["findings"]] == \
        [(f["finding"], f["summary"]) for f in findings]
    assert replayed["coverage"]["node_state"] is True
    # the recording's header says which probe families ran: none was blind
    assert replayed["coverage"]["partly_blind"] == {}


@pytest.mark.parametrize("lab_scenario", ["rp-filter-drop"], indirect=True)
def test_rp_filter_drop_on_the_node(lab_scenario: Lab, tmp_path: Path) -> None:
    """The other shape of rp-filter-drop: the vpn-gw pod's neighbour entry for its
    gateway is fresh (a connection from its own address first), so its SYN from
    172.16.0.5 reaches node1 and is dropped there (IP_RPFILTER)."""
    warm = Probe("vpn-gw", "http", "10.42.1.11", 8080, what="from the pod's own address")
    findings, _started, _rec = _trace(lab_scenario, tmp_path, (warm,))
    assert [f["finding"] for f in findings] == ["rp-filter-drop"], findings
    assert EXPECTED["rp-filter-drop"][1] <= _objects(findings[0])
    assert any(e.get("reason") == "IP_RPFILTER" for e in findings[0]["evidence"])


@pytest.mark.parametrize("lab_scenario", ["masquerade-missing"], indirect=True)
def test_diagnose_command_live(lab_scenario: Lab, tmp_path: Path) -> None:
    """`nodetrace diagnose -o json`: the document, with coverage, at the end."""
    ready = tmp_path / "ready"
    argv = [sys.executable, "-m", "tracer.cli.main", "diagnose", "-o", "json",
            "--duration", "6", "--ready-file", str(ready),
            "--metadata", lab_scenario.state.objects_file]
    tracer = start_tracer(lab_scenario, "node1", argv, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, cwd=REPO)
    try:
        wait_for_file(ready, tracer, 180)
        assert lab_scenario.scenario.probe is not None
        lab_scenario.probe(lab_scenario.scenario.probe)
        out, err = tracer.communicate(timeout=60)
    finally:
        if tracer.poll() is None:
            tracer.kill()
            tracer.wait()
    assert tracer.returncode == 0, err
    doc = json.loads(out)
    assert [f["kind"] for f in doc["findings"]] == ["masquerade-missing"]
    f = doc["findings"][0]
    assert {"kind", "severity", "summary", "objects", "evidence", "fix", "first_seen",
            "count"} <= set(f)
    assert ("Pod", "default", "client") in _objects(f)
    assert "10.42.0.10" in f["summary"] and "node1" in f["summary"]
    cov = doc["coverage"]
    assert cov["metadata"].startswith("file ") and cov["node_state"] is True
    assert any(a.startswith("tc/") for a in cov["attached"])
    # every probe family ran (the loader says so, not the labels' spelling): no finding
    # kind was partly blind
    assert cov["partly_blind"] == {}, cov
