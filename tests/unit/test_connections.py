"""The connection table's shortcuts give what it gave without them: a flow re-judges
`open_question` only when it can have changed it (so no candidate is ever left
settled, whatever the order of events: conntrack re-pointing tuples, merges,
evictions, a socket connected to itself), and merged marks come from a memo."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.recording_support import GOLDEN, write_recording
from tracer.events.model import DropEvent, Endpoint, Event, FlowEvent, IcmpEvent, NatEvent, TcpEvent
from tracer.modes.diagnose_file import diagnose_file
from tracer.pipeline import connections
from tracer.pipeline.connections import ConnectionTable
from tracer.recording import load

A, B, C = Endpoint("10.42.0.10", 1000), Endpoint("10.43.0.20", 80), Endpoint("10.42.0.11", 8080)


def flow(ifname: str, direction: str, src: Endpoint, dst: Endpoint, flags: int, t: int,
         *, proto: int = 6, report: str = "new", marks: tuple[str, ...] = ()) -> FlowEvent:
    return FlowEvent(0, t, 1, 1, ifname, direction, report, 4, proto, src, dst, flags, flags,
                     None, None, t % 5, 60, t, t, "pod", marks)


def nat(orig_src: Endpoint, orig_dst: Endpoint, reply_src: Endpoint, reply_dst: Endpoint,
        t: int, *, status: int = 0x20, proto: int = 6) -> NatEvent:
    return NatEvent(0, t, 1, 4, proto, orig_src, orig_dst, reply_src, reply_dst, status,
                    "conntrack", None, "new")


def tcp(event: str, src: Endpoint, dst: Endpoint, t: int, error: str | None = None) -> TcpEvent:
    return TcpEvent(0, t, 2, event, 4, src, dst, "SYN_SENT", None, error, 0, None, 0, None)


# --- every order of events --------------------------------------------------------------

IPS = ("10.42.0.10", "10.43.0.20")     # few: tuples collide, reverse and alias each other
PORTS = (1000, 80)
ENDPOINT = st.builds(Endpoint, st.sampled_from(IPS), st.sampled_from(PORTS))
MARKS = st.sampled_from([(), ("m1",), ("m2", "m1"), ("m1", "m1")])
FLAGS = st.sampled_from([0x02, 0x12, 0x10, 0x04, 0x14, 0x11])


def _flow(t: int) -> st.SearchStrategy[Event]:
    return st.builds(flow, st.sampled_from(["veth-a", "eth0"]),
                     st.sampled_from(["ingress", "egress"]), ENDPOINT, ENDPOINT, FLAGS,
                     st.just(t), proto=st.sampled_from([6, 6, 17]),
                     report=st.sampled_from(["new", "update", "tcp_control"]), marks=MARKS)


def _other(t: int) -> st.SearchStrategy[Event]:
    port0 = st.builds(Endpoint, st.sampled_from(IPS), st.just(0))
    drop = st.builds(lambda s, d: DropEvent(0, t, 1, 1, "eth0", "NETFILTER_DROP", 12, "x", 0,
                                            4, 6, s, d, 2, None, None, 60, 0x800), ENDPOINT,
                     ENDPOINT)
    icmp = st.builds(lambda s, d: IcmpEvent(0, t, 1, 3, 3, "port-unreachable", 4, 17, s, d,
                                            1, "eth0", 60), ENDPOINT, ENDPOINT)
    return st.one_of(
        st.builds(nat, ENDPOINT, ENDPOINT, ENDPOINT, ENDPOINT, st.just(t),
                  status=st.sampled_from([0x20, 0x22, 0x10, 0x02])),
        st.builds(tcp, st.sampled_from(["connect", "established", "failed", "reset_sent"]),
                  st.one_of(ENDPOINT, port0), ENDPOINT, st.just(t),
                  st.sampled_from([None, "ECONNREFUSED"])),
        drop, icmp)


@st.composite
def streams(draw: Callable[..., Any]) -> list[Event | int]:
    """Events, and now and then the time at which idle connections are forgotten."""
    out: list[Event | int] = []
    t = 0
    for _ in range(draw(st.integers(1, 50))):
        t += draw(st.sampled_from([1, 1000, connections.IDLE_NS + 1]))
        kind = draw(st.sampled_from(["flow", "flow", "flow", "other", "expire"]))
        out.append(t if kind == "expire" else draw(_flow(t) if kind == "flow" else _other(t)))
    return out


@settings(max_examples=150, deadline=None)
@given(streams(), st.sampled_from([2, 3, connections.MAX_CONNECTIONS]))
def test_no_candidate_is_left_settled(stream: list[Event | int], cap: int) -> None:
    """What lets a flow skip the question (the table used to ask it after every
    event): after any event, every candidate is still an open question."""
    with mock.patch.object(connections, "MAX_CONNECTIONS", cap):
        table = ConnectionTable()
        for item in stream:
            if isinstance(item, int):
                table.expire(item)
            else:
                table.add(item)
            assert all(c.open_question for c in table.candidates.values())


# --- the rare paths, one by one ---------------------------------------------------------

def test_self_connection_reports_after_the_first_are_replies() -> None:
    """A tuple that is its own reverse: created forward, then resolved as the reply
    (what the alias table says)."""
    table = ConnectionTable()
    for t in (1, 2, 3):
        table.add(flow("lo", "egress", A, A, 0x02, t))
    (c,) = table.conns.values()
    assert set(c.hops) == {("lo", "egress", False), ("lo", "egress", True)}
    assert c.hops["lo", "egress", True].last_ns == 3


def test_connection_replaced_under_its_key_takes_its_translated_tuples() -> None:
    """Conntrack re-points a connection's own tuples at a second one that is merged
    away; the next flow of that tuple creates a fresh connection under the same key,
    and the tuples translated for the first (still aliased to that key) now name the
    fresh one."""
    e, x, y = Endpoint("10.42.0.13", 9), Endpoint("10.42.0.12", 2000), Endpoint("10.43.0.21", 53)
    table = ConnectionTable()
    table.add(flow("veth-a", "ingress", A, B, 0x02, 1))
    table.add(nat(A, B, C, A, 2))                      # DNAT B -> C
    table.add(flow("veth-c", "egress", A, C, 0x02, 3))
    table.add(nat(B, A, e, B, 4))       # B -> A as a connection of its own: A -> B named it
    table.add(nat(x, y, e, B, 5))       # which is merged into a third, and forgotten
    k = (6, A.ip, A.port, B.ip, B.port)
    first = table.conns[k]
    table.add(flow("veth-a", "ingress", A, B, 0x02, 6))   # no alias of A -> B left: new
    table.add(flow("veth-c", "egress", A, C, 0x02, 7))
    fresh = table.conns[k]
    assert fresh is not first
    assert set(fresh.hops) == {("veth-a", "ingress", False), ("veth-c", "egress", False)}
    assert fresh.last_ns == 7 and first.last_ns == 3


def test_reply_flags_at_a_remembered_hook_still_settle_a_connection() -> None:
    """A flow re-judges `open_question` only when a reply's flags change: a refusal
    (RST) that a later report of the same hook shows was a SYN-ACK after all takes
    the connection off the candidates."""
    table = ConnectionTable()
    k = (6, A.ip, A.port, B.ip, B.port)
    table.add(flow("veth-a", "ingress", A, B, 0x02, 1))
    table.add(flow("veth-a", "egress", B, A, 0x14, 2))
    table.add(flow("veth-a", "egress", B, A, 0x14, 3))
    assert list(table.candidates) == [k] and table.conns[k].refused
    table.add(flow("veth-a", "egress", B, A, 0x12, 4))
    assert not table.candidates and not table.conns[k].refused


def test_conntrack_turns_a_known_tuple_around() -> None:
    """A nat event whose translated tuple the table already resolves to the same
    connection, but in the other direction, still re-points it (only a tuple known
    as the same connection and direction is left alone)."""
    table = ConnectionTable()
    table.add(flow("veth-a", "ingress", A, B, 0x02, 1))
    table.add(nat(A, B, A, B, 2))       # the reply expected from A to B: B -> A is sent
    table.add(flow("eth0", "egress", B, A, 0x02, 3))
    (c,) = table.conns.values()
    assert set(c.hops) == {("veth-a", "ingress", False), ("eth0", "egress", False)}
    assert not c.reply_seen


def test_merged_marks_as_before() -> None:
    """In order of first appearance, each once: duplicates a first report carried
    stay until the hook reports again."""
    table = ConnectionTable()
    hk = ("eth0", "egress", False)
    c = table.add(flow("eth0", "egress", A, B, 0x02, 1, marks=("m1", "m1")))
    assert c is not None and c.hops[hk].marks == ("m1", "m1")
    for t, marks, merged in ((2, ("m1", "m1"), ("m1",)), (3, ("m2", "m1"), ("m1", "m2")),
                             (4, (), ("m1", "m2")), (5, ("m3", "m2"), ("m1", "m2", "m3"))):
        table.add(flow("eth0", "egress", A, B, 0x02, t, marks=marks))
        assert c.hops[hk].marks == merged


def test_repeated_golden_recording_diagnoses_as_before(tmp_path: Any) -> None:
    """The bench's workload (the golden recording's events over and over, its tuples
    reused, 100 µs apart): the finding the stage gave before it was made cheaper
    (commit 6932f50), as often."""
    rec = load(GOLDEN)
    t0 = rec.events[0].wall_ns
    evs = [dataclasses.replace(rec.events[i % len(rec.events)], wall_ns=t0 + i * 100_000)
           for i in range(26 * 200)]
    path = tmp_path / "repeated.ntrec"
    write_recording(path, [evs[i:i + 1000] for i in range(0, len(evs), 1000)],
                    node_state=dict(rec.node_states[0].items))
    diag = diagnose_file(path)
    assert [(f.kind, f.count, f.summary) for f in diag.all_findings()] == [(
        "masquerade-missing", 2,
        "10.42.0.10 cannot reach 192.168.2.10:5432: its traffic leaves node1 via eth0 with "
        "source 10.42.0.10 (not masqueraded), so replies cannot return")]
    assert diag.coverage.undecided == 0 and not diag.coverage.unexplained
