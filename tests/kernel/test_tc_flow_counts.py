"""Flow counts stay exact with the per-CPU pending counts of bpf/tc.c (a run of one
flow's packets is added to its entry every 64 packets): the last record of a flow
carries every packet sent, the ones still pending at exit included."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kernel.tracing import of, poke, tracing
from tests.kernel.veth_pair import veth_pair
from tracer.lab.netns import Netns

pytestmark = pytest.mark.kernel

A_IP, B_IP = "10.98.4.1", "10.98.4.2"
SENT = 1000            # 1 + 15 x 64 reach the entry while tracing; 39 are pending at exit
PORT, SPORT = 9, 41234


@pytest.fixture
def pair() -> Iterator[tuple[Netns, Netns]]:
    with veth_pair("tfc", A_IP, B_IP) as ends:
        yield ends


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
