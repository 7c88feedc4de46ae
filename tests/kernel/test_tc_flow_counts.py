"""Flow counts stay exact with the per-CPU pending counts of bpf/tc.c (a run of one
flow's packets is added to its entry every 64 packets): the last record of a flow
carries every packet sent, the ones still pending at exit included."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kernel.tracing import of, poke, tracing
from tracer.lab.netns import Netns, veth

pytestmark = pytest.mark.kernel

A_IP, B_IP = "10.98.4.1", "10.98.4.2"
SENT = 1000            # not a multiple of 64: 40 are still pending at exit
PORT, SPORT = 9, 41234


@pytest.fixture
def pair() -> Iterator[tuple[Netns, Netns]]:
    a, b = Netns(f"nt-tfc-a-{os.getpid()}"), Netns(f"nt-tfc-b-{os.getpid()}")
    for ns in (a, b):
        ns.delete()
        ns.create()
    try:
        veth(a, "eth0", b, "eth0")
        a.ip("addr", "add", f"{A_IP}/24", "dev", "eth0")
        b.ip("addr", "add", f"{B_IP}/24", "dev", "eth0")
        yield a, b
    finally:
        for ns in (a, b):
            ns.delete()


@pytest.mark.parametrize("runs", [1, 3])
def test_every_packet_of_a_flow_is_counted(pair: tuple[Netns, Netns], tmp_path: Path,
                                           runs: int) -> None:
    """`runs` bursts, with another flow between them: each switch adds what was
    pending for the flow before."""
    a, _b = pair
    with tracing(a, tmp_path) as run:
        for i in range(runs):
            assert poke(a, "udp", B_IP, PORT, sport=SPORT, count=SENT) == "sent"
            if i < runs - 1:
                assert poke(a, "udp", B_IP, PORT, sport=SPORT + 1, count=3) == "sent"
        assert run.stop() == 0, run.stderr
    ours = of(run, "flow", direction="egress", src__port=SPORT, dst__port=PORT)
    assert ours, run.events
    assert max(e["packets"] for e in ours) == SENT * runs, ours
    assert max(e["bytes"] for e in ours) == SENT * runs * (14 + 20 + 8 + len(b"nodetrace"))
    other = of(run, "flow", direction="egress", src__port=SPORT + 1, dst__port=PORT)
    assert runs == 1 or max(e["packets"] for e in other) == 3 * (runs - 1), other
