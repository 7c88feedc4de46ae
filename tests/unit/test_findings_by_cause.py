"""Findings fold by cause: one finding per thing one fix changes, however many
sources a storm brings; its totals grow in place and an update says so at most once a
second of diagnosis' own clock, so a replay cut into other batches says the same."""

from __future__ import annotations

import itertools
import random

from tracer.diagnosis.engine import QUIET_NS, TICK_NS, Diagnoser
from tracer.diagnosis.names import NoNames
from tracer.diagnosis.nodefacts import NodeFacts
from tracer.events.affected import TRACK_MAX, Tally, parse_tally
from tracer.events.finding import Finding, FindingUpdate
from tracer.events.model import DropEvent, Endpoint, Event
from tracer.events.records import event_record
from tracer.events.storm import Aggregation
from tracer.pipeline.connections import SETTLED_MAX
from tui.findings import apply_update, parse_finding

T0 = 1_700_000_000_000_000_000
NODE = {"ip_addr": "2: eth0    inet 10.0.2.15/24 scope global eth0\n"
                   "3: cni0    inet 10.42.0.1/24 scope global cni0\n",
        "ip_route": "default via 10.0.2.2 dev eth0\n10.42.0.0/24 dev cni0 scope link\n"}


def _drop(t: int, src: str, sport: int, dst: str = "10.42.0.7", dport: int = 8080,
          agg: Aggregation | None = None, count: int = 1) -> DropEvent:
    return DropEvent(t, t, 1, 3, "cni0", "NETFILTER_DROP", 12, "nft_do_chain+0x46f", 0, 4, 17,
                     Endpoint(src, sport), Endpoint(dst, dport), 0, None, None, 60, 0x800,
                     count=count, aggregated=agg)


def _storm(n: int, seed: int = 1, step_ns: int = 2_000_000) -> list[Event]:
    rnd = random.Random(seed)
    return [_drop(T0 + i * step_ns, f"10.{rnd.randrange(1, 255)}.{rnd.randrange(256)}."
                  f"{rnd.randrange(1, 255)}", rnd.randrange(1024, 65535)) for i in range(n)]


def _diagnose(events: list[Event], batch: int) -> list[Finding | FindingUpdate]:
    d = Diagnoser(NoNames(), NodeFacts.from_snapshot(NODE), node_netns=1)
    out: list[Finding | FindingUpdate] = []
    for i in range(0, len(events), batch):
        part = events[i:i + batch]
        out += d.process(part, part[-1].wall_ns)
    return out + d.finish()


def test_a_storm_of_sources_is_one_finding_with_updates() -> None:
    events = _storm(3000)        # 6 s of a scanner's datagrams to one pod port
    out = _diagnose(events, 64)
    found = [f for f in out if isinstance(f, Finding)]
    updates = [u for u in out if isinstance(u, FindingUpdate)]
    assert [f.kind for f in found] == ["netfilter-drop"]
    assert updates and all(u.id == found[0].id for u in updates)
    # at most one a second of the stream's time, and one at its end
    assert len(updates) <= 6 + 1, [u.judged_ns for u in updates]
    gaps = [b.judged_ns - a.judged_ns for a, b in itertools.pairwise(updates)]
    assert all(g >= 1_000_000_000 for g in gaps[:-1]), gaps
    last = updates[-1]
    assert last.count == 3000 and last.affected.total == 3000
    assert last.affected.distinct == len({e.src.ip for e in events})
    rec = event_record(last)
    assert rec["kind"] == "finding-update" and len(rec["affected"]["top"]) == 5
    assert rec["affected"]["more"] == last.affected.distinct - 5


def test_the_updates_do_not_depend_on_the_batches() -> None:
    events = _storm(1500, seed=2)
    records = [[event_record(f) for f in _diagnose(events, b)] for b in (1, 7, 64, 1500)]
    assert records[0] == records[1] == records[2] == records[3]


def test_other_destinations_are_other_causes() -> None:
    events = [*_storm(200, seed=3), _drop(T0 + 10**9, "10.9.9.9", 4000, dst="10.42.0.8")]
    events.sort(key=lambda e: e.wall_ns)
    found = [f for f in _diagnose(events, 32) if isinstance(f, Finding)]
    assert sorted(f.summary.split(" to ")[1].split(" port")[0] for f in found) == \
        ["10.42.0.7", "10.42.0.8"]


def test_a_kernel_folded_storm_joins_the_finding_without_overcounting() -> None:
    events: list[Event] = _storm(64, seed=4)
    t = events[-1].wall_ns
    # the fold's records carry running totals of their window: 1000, then 1800 sources
    for i, (flows, sources, packets, count) in enumerate(
            [(1100, 1000, 1100, 1100), (2000, 1800, 2000, 900)]):
        agg = Aggregation(("dst", "dport", "proto", "reason", "ifindex"), flows, sources,
                          False, 1000, packets)
        events.append(_drop(t + (i + 1) * 10**9, "10.77.0.1", 0, agg=agg, count=count))
    out = _diagnose(events, 16)
    assert len([x for x in out if isinstance(x, Finding)]) == 1
    last = [u for u in out if isinstance(u, FindingUpdate)][-1]
    assert last.count == 64 + 2000
    assert last.affected.distinct == 64 + 1800 and not last.affected.exact


def test_the_tally_caps_names_not_counts() -> None:
    t = Tally()
    for i in range(TRACK_MAX + 10):
        t.add(f"10.0.{i // 256}.{i % 256}")
    t.add("10.0.0.0", 5)
    assert t.total == TRACK_MAX + 15 and t.distinct == TRACK_MAX + 10 and not t.exact
    assert t.record()["top"][0] == ["10.0.0.0", 6]
    assert t.text().endswith(f"and ~{TRACK_MAX + 5:,} more".replace(",", " "))
    again = parse_tally(t.record())
    assert again is not None and again.distinct == t.distinct and again.total == t.total


def test_the_tui_updates_the_row_of_the_finding() -> None:
    out = _diagnose(_storm(800, seed=5), 64)
    rows: dict[str, Finding] = {}
    for item in out:
        rec = event_record(item)
        if rec["kind"] == "finding":
            f = parse_finding(rec)
            assert f is not None
            rows[f.key] = f
        else:
            assert apply_update(rows, rec)
    (row,) = rows.values()
    assert row.count == 800 and row.affected.total == 800
    assert not apply_update({}, {"kind": "finding-update", "id": "nope", "count": 3})


def test_counting_a_known_cause_says_what_writing_it_out_again_would() -> None:
    # the engine counts a connection of a cause it has a finding for without building
    # the finding's text; with that shortcut off (no known keys) the answer is the same
    events = _storm(2000, seed=5)
    fast = [event_record(f) for f in _diagnose(events, 64)]
    d = Diagnoser(NoNames(), NodeFacts.from_snapshot(NODE), node_netns=1)
    d.ctx.known = frozenset()
    slow: list[Finding | FindingUpdate] = []
    for i in range(0, len(events), 64):
        part = events[i:i + 64]
        slow += d.process(part, part[-1].wall_ns)
    assert fast == [event_record(f) for f in slow + d.finish()]


def test_settled_one_packet_connections_are_bounded_and_not_counted_twice() -> None:
    n = 3 * SETTLED_MAX
    events = _storm(n, seed=6, step_ns=200_000)
    # the first 100 tuples again, long after they were settled and forgotten
    late = events[-1].wall_ns + 2_000_000_000
    again = [_drop(late + i, e.src.ip or "", e.src.port or 0) for i, e in
             enumerate(events[:100]) if isinstance(e, DropEvent)]
    d = Diagnoser(NoNames(), NodeFacts.from_snapshot(NODE), node_netns=1)
    out: list[Finding | FindingUpdate] = []
    stream = events + again
    for i in range(0, len(stream), 256):
        part = stream[i:i + 256]
        out += d.process(part, part[-1].wall_ns)
        # kept whole: the settled ones kept, and those not judged yet (quiet too briefly)
        young = (QUIET_NS + TICK_NS) // 200_000 + 256
        assert len(d.ctx.table.conns) <= SETTLED_MAX + young + 100
    out += d.finish()
    last = [u for u in out if isinstance(u, FindingUpdate)][-1]
    distinct = len({(e.src.ip, e.src.port) for e in events if isinstance(e, DropEvent)})
    assert last.count == distinct, "a retransmission is not another connection"
    assert d.ctx.table.settled_forgotten >= n - SETTLED_MAX - young
    assert d.coverage.connections == distinct
