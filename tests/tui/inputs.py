"""The TUI tests' input: real lab captures (tests/data/tui/README.md), taken before
the enrich stage named endpoints: the lab cluster's names are added here, and a
finding record in the shape the diagnosis writes (tests/tui/test_defects.py runs the
real pipeline on the golden recording)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from tracer.lab.cluster import build_cluster
from tui.feed import FeedStatus
from tui.feeds.replay import ReplayFeed

DATA = Path(__file__).resolve().parent.parent / "data" / "tui"

Record = dict[str, Any]

MASQUERADE_FINDING: Record = {
    "kind": "finding", "finding": "masquerade-missing", "severity": "error",
    "summary": "pod default/client reaches 192.168.2.10:5432 untranslated: no MASQUERADE "
               "on node1, replies cannot come back",
    "objects": [{"kind": "Pod", "namespace": "default", "name": "client"},
                {"kind": "Node", "namespace": "", "name": "node1"}],
    "evidence": ["flow 10.42.0.10 -> 192.168.2.10:5432 leaves eth0 with a pod source "
                 "(mark untranslated-pod-source)",
                 "SYN retransmitted, no reply: connect() failed after 2 s"],
    "fix": "restore the MASQUERADE rule for traffic from 10.42.0.0/16 leaving the cluster "
           "(flannel --ip-masq, or iptables -t nat -A POSTROUTING -s 10.42.0.0/16 "
           "! -d 10.42.0.0/16 -j MASQUERADE)",
    "first_seen": "2026-11-23T08:49:35.950008957Z", "count": 2,
    "time": "2026-11-23T08:49:38.165958735Z",
}


def _names() -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    cluster = build_cluster()
    pods = {p.ip: {"namespace": p.namespace, "name": p.name, "hostNetwork": False}
            for p in cluster.pods if p.ip}
    services = {s.cluster_ip: {"namespace": s.namespace, "name": s.name}
                for s in cluster.services}
    return pods, services


def annotate(rec: Record) -> Record:
    """The enrich stage's names on every src/dst (and nat orig/reply) the lab can name."""
    pods, services = _names()
    rec = copy.deepcopy(rec)

    def name(ep: Any) -> None:
        if not isinstance(ep, dict):
            return
        ip = ep.get("ip")
        if ip in pods:
            ep["scope"], ep["pod"] = "pod", pods[ip]
        elif ip in services:
            ep["scope"], ep["service"] = "service", {**services[ip], "port": ep.get("port")}

    for key in ("src", "dst"):
        name(rec.get(key))
    for key in ("orig", "reply"):
        if isinstance(rec.get(key), dict):
            name(rec[key].get("src"))
            name(rec[key].get("dst"))
    return rec


def records(scenario: str, *, finding: bool = True) -> list[Record]:
    lines = (DATA / f"{scenario}.jsonl").read_text().splitlines()
    out = [annotate(json.loads(line)) for line in lines if line.strip()]
    if finding and scenario == "masquerade-missing":
        out.append(dict(MASQUERADE_FINDING))
    return out


def replay(recs: list[Record], speed: float = 0.0) -> ReplayFeed:
    return ReplayFeed(recs, FeedStatus(source="masquerade-missing.jsonl", node="node1",
                                       kernel="6.18.44-fc-v669", metadata="recorded",
                                       attached=("tracepoint/skb:kfree_skb", "tc/tcx")),
                      speed=speed)
