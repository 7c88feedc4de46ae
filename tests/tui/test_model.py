"""The TUI's data side on real lab captures: connections joined across NAT and
interfaces, states, drops, filters, the bounded feed output (no Textual)."""

from __future__ import annotations

import threading

import pytest

from tests.tui.inputs import MASQUERADE_FINDING, records
from tui.feed import FeedBatch, FeedOutput
from tui.filtering import Filter, FilterError
from tui.findings import evidence_line, object_text, parse_finding
from tui.model import Model
from tui.widgets.connections import select


def model_of(scenario: str) -> Model:
    m = Model()
    m.apply(records(scenario))
    return m


def test_masquerade_missing_connections_time_out_untranslated() -> None:
    m = model_of("masquerade-missing")
    failed = select(m.connections, Filter(), False, "last seen")
    assert len(failed) == 2
    for c in failed:
        assert c.state == "timed out"
        assert c.src_name.startswith("default/client:")
        assert c.dst_name == "192.168.2.10:5432"
        assert "untranslated-pod-source" in c.marks
        assert c.retransmits == 1
        # both hooks it crossed, each with the tuple seen there (no NAT: the same one)
        where = {h.where for h in c.timeline() if h.kind == "flow"}
        assert any(w.startswith("eth0 (uplink) egress") for w in where)
        assert any("(pod) ingress" in w for w in where)


def test_service_dnat_joins_both_sides_of_the_translation() -> None:
    m = model_of("masquerade-missing")
    (web,) = [c for c in m.connections if c.key[3] == "10.43.0.20"]
    assert web.state == "established" and not web.failed
    assert web.nat == "DNAT 10.43.0.20:80 -> 10.42.0.11:8080"
    assert web.dst_name == "svc/default/web:80 => default/web-a:8080"
    tuples = {h.tuple for h in web.timeline() if h.kind == "flow"}
    port = web.key[2]
    assert f"10.42.0.10:{port} -> 10.43.0.20:80" in tuples          # the client's veth
    assert f"10.42.0.10:{port} -> 10.42.0.11:8080" in tuples        # web-a's veth, after DNAT
    assert web.packets == 10 and web.bytes == 820


def test_service_without_endpoints_is_refused_with_its_drop() -> None:
    m = model_of("service-no-endpoints")
    failed = [c for c in m.connections if c.failed]
    assert len(failed) == 2
    for c in failed:
        assert c.state == "refused: port-unreachable"
        assert c.drops["NETFILTER_DROP"] == 1
        assert any(h.kind == "icmp" for h in c.timeline())
    assert m.drops_by_reason["NETFILTER_DROP"] == 2
    assert m.drops_by_pod["default/client"] >= 2


def test_finding_record_parsed_in_one_place() -> None:
    f = parse_finding(MASQUERADE_FINDING)
    assert f is not None
    assert f.kind == "masquerade-missing" and f.severity == "error" and f.count == 2
    assert [object_text(o) for o in f.objects] == ["Pod default/client", "Node node1"]
    assert "MASQUERADE" in f.fix
    assert parse_finding({"kind": "drop"}) is None
    # hostile: wrong types do not raise
    g = parse_finding({"kind": "finding", "objects": [1, {"x": 1}], "evidence": "one",
                       "count": "many"})
    assert g is not None and g.objects == [] and g.count == 1
    assert [evidence_line(e) for e in g.evidence] == ["one"]


def test_filter_terms() -> None:
    m = model_of("masquerade-missing")
    conns = list(m.connections)

    def rows(text: str) -> int:
        return len(select(conns, Filter.parse(text), True, "last seen"))

    assert rows("") == 3
    assert rows("pod:client") == 3
    assert rows("pod:web-a") == 1
    assert rows("svc:web") == 1
    assert rows("ns:default pod:web") == 1
    assert rows("192.168.2.10") == 2
    assert rows("kind:nat") == 1
    assert rows("pod:nothing-here") == 0
    with pytest.raises(FilterError, match="unknown field"):
        Filter.parse("pods:web")
    with pytest.raises(FilterError, match="needs a value"):
        Filter.parse("pod:")


def test_lost_records_are_kept_by_layer() -> None:
    m = Model()
    m.apply([{"kind": "lost", "layer": "ringbuf_reserve", "count": 3, "total": 3},
             {"kind": "lost", "layer": "ringbuf_reserve", "count": 4, "total": 7},
             {"kind": "lost", "layer": "decode", "count": 1, "total": 1}])
    assert m.lost == {"ringbuf_reserve": 7, "decode": 1}
    assert m.lost_total == 8


def test_feed_output_is_bounded_and_loses_nothing() -> None:
    posted: list[FeedBatch] = []
    out = FeedOutput(posted.append, interval_s=0.0, max_pending=10)
    stop = threading.Event()
    # the app takes nothing: after two batches in flight the producer must wait
    def produce() -> None:
        for i in range(100):
            out.emit([{"kind": "x", "i": i}], stop)

    producer = threading.Thread(target=produce)
    producer.start()
    producer.join(0.5)
    assert producer.is_alive(), "the producer did not wait for the app"
    assert len(posted) == 2
    # the app catches up: everything arrives, in order, exactly once
    while producer.is_alive() or len(posted) < 100:
        out.taken()
        producer.join(0.01)
        if not producer.is_alive():
            out.final()
            break
    got = [r["i"] for b in posted for r in b.records]
    assert got == list(range(100))
