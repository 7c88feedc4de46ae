"""What a replay needs to say what the live session said, without root: diagnosis that
does not depend on how the stream was cut into batches, the live clock carried by the
recording, and the node's own knowledge (its addresses, its hostNetwork pods' sockets,
its pods by cgroup) carried into the replay's names.  The kernel tier checks the
whole (tests/kernel/test_replay_equals_live.py)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import msgpack

from tests.unit.recording_support import GOLDEN
from tracer.diagnosis.engine import TICK_NS, Diagnoser
from tracer.events.model import Endpoint, Event, FlowEvent
from tracer.metadata.resolver import Listener, LocalPodInfo
from tracer.modes import build
from tracer.pipeline.enrich import names_of
from tracer.pipeline.path import PathMarker
from tracer.recording.format import MAGIC, VERSION, Rec, checked_head
from tracer.recording.reader import ClockMark, LocalState, RecordingReader, load
from tracer.recording.writer import (
    EndInfo,
    RecordingWriter,
    RecordSpec,
    SessionFacts,
    build_header,
)


def _diagnoser() -> tuple[Diagnoser, PathMarker]:
    """As replay builds it (the recording's networks and namespace)."""
    with RecordingReader(GOLDEN) as reader:
        rep = build.diagnose_recording(reader, node="node1")
    marker = rep.pipeline.stage("path-marks")
    assert rep.diagnoser is not None and isinstance(marker, PathMarker)
    return rep.diagnoser, marker


def _findings(events: Sequence[Event], size: int, end_ns: int) -> list[dict[str, object]]:
    diag, marker = _diagnoser()
    for i in range(0, len(events), size):
        diag.process(marker.process(events[i:i + size]))
    diag.finish(end_ns)
    return [f.record() for f in diag.all_findings()]


def test_findings_do_not_depend_on_the_batches() -> None:
    events = load(GOLDEN).events
    end = max(ev.wall_ns for ev in events) + 5 * TICK_NS
    whole = _findings(events, len(events), end)
    assert whole, "the golden session has a finding"
    for size in (1, 3, 64):
        assert _findings(events, size, end) == whole, size


def test_a_clock_record_judges_as_the_live_clock_did() -> None:
    events = load(GOLDEN).events
    end = max(ev.wall_ns for ev in events) + 5 * TICK_NS
    quiet = events[0].wall_ns + 2_500_000_000   # the session idles, the clock goes on
    head = [ev for ev in events if ev.wall_ns < quiet]
    tail = [ev for ev in events if ev.wall_ns >= quiet]
    live, marker = _diagnoser()
    head, tail = marker.process(head), marker.process(tail)
    found_live = [*live.process(head), *live.process([], quiet), *live.process(tail),
                  *live.finish(end)]
    replay, _marker = _diagnoser()
    found_replay = [*replay.process(head)]
    replay.clock(quiet)        # findings of the clock come with the next call
    found_replay += [*replay.process(tail), *replay.finish(end)]
    assert found_live
    assert [f.record() for f in found_live] == [f.record() for f in found_replay]


FACTS = SessionFacts(kernel_release="6.1.0", attached=["tc"], unavailable={},
                     drop_reasons={}, mono_to_wall_ns=0, netns=7,
                     addresses=["192.168.1.11", "fe80::1"], node="node1")
UID = "0b1c2d3e-0000-4000-8000-000000000001"


def _flow(src: str, sport: int, dst: str, dport: int, wall_ns: int) -> FlowEvent:
    return FlowEvent(ts_ns=wall_ns, wall_ns=wall_ns, netns=7, ifindex=2, ifname="eth0",
                     direction="ingress", report="new", family=4, proto=6,
                     src=Endpoint(src, sport), dst=Endpoint(dst, dport), tcp_flags=2,
                     tcp_flags_seen=2, icmp_type=None, icmp_code=None, packets=1,
                     bytes=60, first_wall_ns=wall_ns, last_wall_ns=wall_ns, role="uplink")


def test_the_recording_carries_what_the_node_knew(tmp_path: Path) -> None:
    path = tmp_path / "r.ntrec"
    t = 1_700_000_000_000_000_000
    with RecordingWriter(RecordSpec(path), FACTS) as w:
        w.on_local([Listener("0.0.0.0", 9100, UID)],
                   [LocalPodInfo(UID, True, (), "monitoring", "metrics")], t / 1e9)
        w.write([_flow("192.168.2.10", 40000, "192.168.1.11", 9100, t)])
        w.write_clock(t + TICK_NS)
        w.write([_flow("fe80::2", 0, "fe80::1", 0, t + 2 * TICK_NS)])
        w.finish(EndInfo("stopped", wall_ns=t + 3 * TICK_NS))
    with RecordingReader(path) as reader:
        items = list(reader)
        h = reader.header
    assert reader.warnings() == []
    assert h.addresses == ("192.168.1.11", "fe80::1")
    assert ClockMark(t + TICK_NS) in items
    assert LocalState(t, (("0.0.0.0", 9100, UID),),
                      ((UID, True, (), "monitoring", "metrics"),)) in items
    rec = load(path)
    assert rec.end is not None and rec.end.wall_ns == t + 3 * TICK_NS
    assert len(rec.events) == 2   # the other records are no events

    with RecordingReader(path) as reader:
        rep = build.replay(reader)
        named = [n for batch in rep.source.batches(threading.Event())
                 for n in names_of(rep.pipeline.process(batch)[0])]
    (_src, metrics_dst), (ll_src, ll_dst) = named   # type: ignore[misc]
    assert metrics_dst.pod is not None and metrics_dst.pod.name == "metrics"  # by socket
    assert ll_dst.scope == "node" and ll_dst.node == "node1"   # the node's link-local
    assert ll_src.scope == "external"


def test_a_recording_without_them_reads_as_before() -> None:
    with RecordingReader(GOLDEN) as reader:
        assert reader.header.addresses == ()
        assert not any(isinstance(i, ClockMark | LocalState) for i in reader)
        assert reader.warnings() == []


def test_damaged_clock_and_local_records_are_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "r.ntrec"
    header = msgpack.packb([int(Rec.HEADER), MAGIC, list(VERSION),
                            build_header(FACTS, ["nodetrace"], 0)])
    bad = [[int(Rec.CLOCK), "soon"], [int(Rec.LOCAL), 1, {"listeners": [["::", "80"]]}],
           [int(Rec.LOCAL), 1, {"pods": [[UID, "yes", [], None, None]]}],
           [int(Rec.LOCAL), 1, []], [int(Rec.CLOCK), 5]]
    # each in a checked frame, whose checksum holds: the records themselves are bad
    path.write_bytes(header + b"".join(checked_head(d) + d
                                       for d in (msgpack.packb(r) for r in bad)))
    with RecordingReader(path) as reader:
        assert list(reader) == [ClockMark(5)]
        text = "\n".join(reader.warnings())
    assert "malformed record skipped (clock) (1 record)" in text
    assert "malformed record skipped (local listener) (1 record)" in text
    assert "malformed record skipped (local pod) (1 record)" in text
    assert "malformed record skipped (local) (1 record)" in text
