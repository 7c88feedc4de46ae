"""A storm of distinct flows at one drop point, on the real kernel: past the budget
of new flows the kernel folds the drops by destination, and the totals stay exact
(the firewall rule's own counter is the reference)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kernel.tracing import TraceRun, raw, tracing
from tracer.lab.demo import DROPPED_TCP_PORT, DropDemo
from tracer.lab.netns import Netns

pytestmark = pytest.mark.kernel

BUDGET = 64   # --storm-flows default


@pytest.fixture(scope="module")
def demo() -> Iterator[DropDemo]:
    d = DropDemo(prefix="nt-tstorm").up()
    # spoofed sources come in on veth-pod: reverse-path filtering must not drop them first
    for key in ("all", "default", "veth-pod"):
        d.node.sysctl(f"net.ipv4.conf.{key}.rp_filter", "0")
    try:
        yield d
    finally:
        d.down()


def _rule_packets(ns: Netns) -> int:
    """The packet counter of the demo's DROP rule."""
    out = ns.exec("iptables", "-L", "INPUT", "-v", "-x", "-n").stdout
    rows = [line.split() for line in out.splitlines() if f"dpt:{DROPPED_TCP_PORT}" in line]
    assert len(rows) == 1, out
    return int(rows[0][0])


def _flood(demo: DropDemo, count: int, flags: str, rate: float = 0) -> int:
    out = demo.pod.exec(sys.executable, "-m", "tracer.lab.flood", demo.node_addr.v4,
                        str(DROPPED_TCP_PORT), "--count", str(count), "--flags", flags,
                        "--rate", str(rate), timeout=120).stdout
    sent = int(json.loads(out)["sent"])
    assert sent == count
    return sent


def _storm(run: TraceRun) -> list[dict[str, object]]:
    return [e for e in run.drops() if isinstance(e["dst"], dict)
            and e["dst"]["port"] == DROPPED_TCP_PORT]


@pytest.mark.parametrize("flags", ["A", "S"])   # lone ACKs (per-flow path), a SYN scan
def test_a_storm_of_distinct_sources_folds_by_destination_with_exact_totals(
        demo: DropDemo, tmp_path: Path, flags: str) -> None:
    sent = 20000
    demo.node.exec("iptables", "-Z", "INPUT")
    with tracing(demo.node, tmp_path) as run:
        _flood(demo, sent, flags)
        assert run.stop() == 0, run.stderr
    dropped = _rule_packets(demo.node)
    assert dropped == sent, "the rule dropped every packet (nothing else was in the way)"
    storm = _storm(run)
    lost = [e for e in run.events if e["kind"] == "lost"]
    assert not lost, lost
    assert sum(int(e["count"]) for e in storm) == dropped   # type: ignore[call-overload]
    folded = [e for e in storm if "aggregated" in e]
    assert folded, "no aggregated record"
    per_flow = [e for e in storm if "aggregated" not in e]
    # the budget's worth of flows one by one, then a record per key and second
    assert BUDGET <= len(per_flow) <= BUDGET + 2, len(per_flow)
    assert len(folded) < 40, len(folded)
    last = folded[-1]["aggregated"]
    assert isinstance(last, dict)
    assert last["by"] == ["dst", "dport", "proto", "reason", "ifindex"]
    assert last["exact_sources"] is False
    # 20000 sources drawn from a /16: about 17 000 distinct; the sketch's error is ~18 %
    assert 8000 < int(last["sources"]) < 30000, last
    assert 8000 < int(last["flows"]) < 30000, last
    assert {e["reason"] for e in folded} == {"NETFILTER_DROP"}
    assert {raw(e["dst"])["ip"] for e in folded} == {demo.node_addr.v4}  # type: ignore[arg-type]

    # the tc hook on veth-pod saw the same storm of one-packet flows and folded it too:
    # its flows' packets (each flow's last report) add up to what was sent
    flows = [e for e in run.events if e["kind"] == "flow" and e["direction"] == "ingress"
             and e["dst"]["port"] == DROPPED_TCP_PORT]
    one_by_one = [e for e in flows if "aggregated" not in e]
    assert BUDGET <= len(one_by_one) <= BUDGET + 2, len(one_by_one)
    folded_flows = [e for e in flows if "aggregated" in e]
    assert folded_flows and len(folded_flows) < 40, len(folded_flows)
    assert {e["report"] for e in folded_flows} <= {"aggregated", "final"}
    last_fold = max(folded_flows, key=lambda e: int(e["packets"]))
    assert last_fold["report"] == "final"
    assert sum(int(e["packets"]) for e in one_by_one) + int(last_fold["packets"]) == sent
    fold = last_fold["aggregated"]
    assert fold["by"] == ["ifindex", "direction", "dst", "dport", "proto"]
    assert fold["packets"] == last_fold["packets"]
    assert 8000 < int(fold["sources"]) < 30000, fold


def test_below_the_budget_every_flow_has_its_own_record(demo: DropDemo,
                                                        tmp_path: Path) -> None:
    sent = BUDGET // 2
    demo.node.exec("iptables", "-Z", "INPUT")
    with tracing(demo.node, tmp_path) as run:
        _flood(demo, sent, "A")
        assert run.stop() == 0, run.stderr
    storm = _storm(run)
    assert not [e for e in storm if "aggregated" in e]
    assert not [e for e in run.events if e["kind"] == "flow" and "aggregated" in e]
    total = sum(int(e["count"]) for e in storm)  # type: ignore[call-overload]
    assert total == _rule_packets(demo.node) == sent
    flows = {(e["src"]["ip"], e["src"]["port"]) for e in storm}
    assert len(flows) == sent


def test_a_storm_is_one_finding_that_grows(demo: DropDemo, tmp_path: Path) -> None:
    """Thousands of sources hitting one firewall rule are one cause: one
    netfilter-drop finding, updated in place (at most once a second), and the
    recording diagnoses to the same folded finding."""
    sent = 3000
    rec = tmp_path / "storm.ntrec"
    with tracing(demo.node, tmp_path, "--record", str(rec)) as run:
        _flood(demo, sent, "S", rate=1000)     # ~3 s: several update intervals
        assert run.stop() == 0, run.stderr
    found = [e for e in run.events if e["kind"] == "finding"]
    assert [f["finding"] for f in found] == ["netfilter-drop"], found
    (finding,) = found
    updates = [e for e in run.events if e["kind"] == "finding-update"]
    assert updates and len(updates) <= 10, len(updates)
    assert {u["id"] for u in updates} == {finding["id"]}
    counts = [int(u["count"]) for u in updates]
    assert counts == sorted(counts)
    # the budget's flows one by one (a connection each), then the folded records
    # (and the kernel's estimate of the folded ones: never more than were sent)
    assert BUDGET < counts[-1] <= sent, counts
    affected = updates[-1]["affected"]
    assert isinstance(affected, dict) and affected["exact"] is False
    # 3000 random sources of a /16 (about 2 930 distinct), the sketch's error ~18 %
    assert 1500 < int(affected["distinct"]) < 5000, affected
    assert len(affected["top"]) == 5 and affected["more"] == int(affected["distinct"]) - 5

    done = subprocess.run([sys.executable, "-m", "tracer.cli.main", "diagnose", "--from",
                           str(rec), "-o", "json"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    (again,) = json.loads(done.stdout)["findings"]
    assert again["id"] == finding["id"] and again["count"] == counts[-1]
    assert again["affected"] == affected
