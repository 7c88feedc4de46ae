"""Drops on the real kernel: a two-namespace node, real packets, decoded events."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kernel.tracing import TraceRun, poke, tracing
from tracer.kernel.progstats import loaded_programs, programs_of
from tracer.lab.demo import CLOSED_UDP_PORT, DROPPED_TCP_PORT, DropDemo

pytestmark = pytest.mark.kernel

SPORT_V4, SPORT_V6, SPORT_UDP, SPORT_OUT = 41001, 41002, 41003, 41004


@pytest.fixture(scope="module")
def demo() -> Iterator[DropDemo]:
    d = DropDemo(prefix="nt-tdrop").up()
    try:
        yield d
    finally:
        d.down()


@pytest.fixture(scope="module")
def traced(demo: DropDemo, tmp_path_factory: pytest.TempPathFactory) -> TraceRun:
    """One trace of the node namespace while the pod and an outside pair send traffic."""
    with tracing(demo.node, tmp_path_factory.mktemp("trace")) as run:
        assert poke(demo.pod, "tcp", demo.node_addr.v4, DROPPED_TCP_PORT, sport=SPORT_V4,
                    timeout_s=1.2) == "timeout"
        assert poke(demo.pod, "tcp", demo.node_addr.v6, DROPPED_TCP_PORT, sport=SPORT_V6,
                    timeout_s=1.2) == "timeout"
        assert poke(demo.pod, "udp", demo.node_addr.v4, CLOSED_UDP_PORT,
                    sport=SPORT_UDP) == "sent"
        # Outside the node: the same firewall drop between two unrelated namespaces.
        assert poke(demo.out_a, "tcp", demo.out_b_addr.v4, DROPPED_TCP_PORT, sport=SPORT_OUT,
                    timeout_s=1.2) == "timeout"
        # A last drop inside the node marks the end: every event before it was drained.
        poke(demo.pod, "udp", demo.node_addr.v6, CLOSED_UDP_PORT, sport=SPORT_UDP)
        assert run.stop(signal.SIGINT) == 130, run.stderr   # interrupted, after the drain
    return run


def _tuple(e: dict[str, object]) -> tuple[object, ...]:
    src, dst = e["src"], e["dst"]
    assert isinstance(src, dict) and isinstance(dst, dict)
    return (e["proto"], src["ip"], src["port"], dst["ip"], dst["port"])


def test_ipv4_firewall_drop_has_reason_and_exact_tuple(traced: TraceRun,
                                                       demo: DropDemo) -> None:
    want = ("tcp", demo.pod_addr.v4, SPORT_V4, demo.node_addr.v4, DROPPED_TCP_PORT)
    hits = [e for e in traced.drops() if _tuple(e) == want]
    assert hits, f"no drop {want} in {traced.drops()}"
    assert all(e["reason"] == "NETFILTER_DROP" for e in hits)
    assert hits[0]["tcp_flags"] == ["SYN"]
    assert hits[0]["netns"] == demo.node.inode()
    assert hits[0]["ifname"] == "veth-pod"
    assert str(hits[0]["location"]).startswith("nf")  # nft_do_chain / nf_hook_slow
    # the SYN is retransmitted: every attempt is reported
    assert len(hits) >= 2


def test_ipv6_firewall_drop_has_reason_and_exact_tuple(traced: TraceRun,
                                                       demo: DropDemo) -> None:
    want = ("tcp", demo.pod_addr.v6, SPORT_V6, demo.node_addr.v6, DROPPED_TCP_PORT)
    hits = [e for e in traced.drops() if _tuple(e) == want]
    assert hits, f"no drop {want} in {traced.drops()}"
    assert {e["reason"] for e in hits} == {"NETFILTER_DROP"}
    assert hits[0]["family"] == "ipv6"


def test_udp_to_closed_port_has_its_own_reason(traced: TraceRun, demo: DropDemo) -> None:
    want = ("udp", demo.pod_addr.v4, SPORT_UDP, demo.node_addr.v4, CLOSED_UDP_PORT)
    hits = [e for e in traced.drops() if _tuple(e) == want]
    assert [e["reason"] for e in hits] == ["NO_SOCKET"]


def test_traffic_outside_the_traced_namespaces_is_not_reported(traced: TraceRun,
                                                               demo: DropDemo) -> None:
    outside = {demo.out_a_addr.v4, demo.out_b_addr.v4, demo.out_a_addr.v6, demo.out_b_addr.v6}
    leaked = [e for e in traced.drops()
              if {e["src"]["ip"], e["dst"]["ip"]} & outside]
    assert not leaked
    # and the run did see the node's drop that came after the outside traffic
    assert any(e["dst"]["ip"] == demo.node_addr.v6 and e["proto"] == "udp"
               for e in traced.drops())
    inodes = {e["netns"] for e in traced.drops()}
    assert inodes <= {demo.node.inode(), demo.pod.inode()}


def test_no_loss_reported_at_this_rate(traced: TraceRun) -> None:
    assert [e for e in traced.events if e["kind"] == "lost"] == []
    assert traced.stdout.strip(), "stdout holds the events"
    assert "tracing netns" in traced.stderr  # the start line goes to stderr


def test_all_netns_sees_the_outside_pair(demo: DropDemo, tmp_path: Path) -> None:
    with tracing(demo.node, tmp_path, "--all-netns") as run:
        poke(demo.out_a, "tcp", demo.out_b_addr.v4, DROPPED_TCP_PORT, sport=SPORT_OUT,
             timeout_s=0.5)
        assert run.stop() == 0
    assert any(e["src"]["ip"] == demo.out_a_addr.v4 for e in run.drops())


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "SIGHUP", "duration"])
def test_nothing_of_ours_stays_attached_after_exit(demo: DropDemo, tmp_path: Path,
                                                   how: str) -> None:
    extra = ["--duration", "1"] if how == "duration" else []
    with tracing(demo.node, tmp_path, *extra) as run:
        ours = programs_of(run.proc.pid)
        assert ours, "the tracer's programs are loaded"
        poke(demo.pod, "udp", demo.node_addr.v4, CLOSED_UDP_PORT)
        code = run.finish(timeout_s=30) if how == "duration" else run.stop(getattr(signal, how))
    # a stop asked for is a clean end; an interrupt or a lost terminal is not
    assert code == {"SIGINT": 130, "SIGHUP": 129}.get(how, 0), run.stderr
    assert "Traceback" not in run.stderr
    assert not ours & {p["id"] for p in loaded_programs()}, "a program outlived the tracer"
    # what was drained before exit was written
    assert any(e["dst"]["port"] == CLOSED_UDP_PORT for e in run.drops())


def test_a_drop_storm_is_aggregated_and_every_drop_is_counted(demo: DropDemo,
                                                              tmp_path: Path) -> None:
    sent = 5000
    with tracing(demo.node, tmp_path) as run:
        assert poke(demo.pod, "udp", demo.node_addr.v4, CLOSED_UDP_PORT, sport=41005,
                    count=sent) == "sent"
        assert run.stop() == 0, run.stderr
    storm = [e for e in run.drops() if e["src"]["port"] == 41005]
    assert {e["reason"] for e in storm} == {"NO_SOCKET"}
    assert len(storm) < 20, "aggregated in the kernel, not an event per packet"
    lost = sum(e["count"] for e in run.events if e["kind"] == "lost")
    assert sum(e["count"] for e in storm) + lost == sent


def test_ring_buffer_overflow_is_counted_and_fails_with_fail_on_loss(demo: DropDemo,
                                                                      tmp_path: Path) -> None:
    sent = 4000
    with tracing(demo.node, tmp_path, "--ringbuf-pages", "1", "--fail-on-loss",
                 "--storm-flows", "0") as run:
        # distinct source ports: every drop is a new tuple, none is aggregated away
        # (nor folded: --storm-flows 0)
        assert poke(demo.pod, "udp", demo.node_addr.v4, CLOSED_UDP_PORT, sport=20000,
                    count=sent, vary_sport=True) == "sent"
        code = run.stop()
    lost = [e for e in run.events if e["kind"] == "lost"]
    assert lost and {e["layer"] for e in lost} == {"ringbuf_reserve"}
    total_lost = max(e["total"] for e in lost)
    assert total_lost == sum(e["count"] for e in lost)
    storm = [e for e in run.drops() if e["dst"]["port"] == CLOSED_UDP_PORT]
    # nothing vanished silently: every drop was either delivered or counted as lost
    # (the loss counter also covers flow records of the same storm, hence >=)
    assert sum(e["count"] for e in storm) + total_lost >= sent
    assert code == 1 and "lost (--fail-on-loss)" in run.stderr
