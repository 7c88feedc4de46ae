"""The live reader sleeps in poll() between bursts (tracer/sources/live.py); the
programs wake it every 64th record of a CPU (bpf/include/common.h: rb_flags) and never
in between.  Proven here with a reader whose own timer would not fire for an hour: a
burst of new flows must still reach it while the burst lasts, none lost, and what
was left below the wake-up threshold must come out in the final drain."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import pytest

from tests.kernel.veth_pair import veth_pair
from tracer.lab.netns import Netns

pytestmark = pytest.mark.kernel

A_IP, B_IP = "10.98.3.1", "10.98.3.2"
SENT = 3000          # more than the 64-page buffer holds (~2,500 flow records)
WAKE_EVERY = 64      # RB_WAKE_EVERY
CLOSED_PORT = 9

CHILD = r"""
import json, subprocess, sys, threading, time
from tracer.node.interfaces import discover
from tracer.kernel.loader import BuildSpec, Module
from tracer.kernel.tc import TcAttacher
from tracer.events.model import FlowEvent
from tracer.pipeline.decode import DecodeContext, Decoder
from tracer.events.schema import LossSlot
from tracer.sources.live import LiveSource

sent, b_ip, port, wake = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
# every datagram a new flow: storm folding off, or it would fold the burst
with Module(BuildSpec(families=frozenset({"tc"}), ringbuf_pages=64,
                      storm_flows=0)) as module:
    facts = module.load()
    with TcAttacher({d: p.fd for d, p in module.tc_programs().items()}) as tc:
        tc.sync(discover())
        decoder = Decoder(DecodeContext(drop_reasons=facts.drop_reasons,
                                        resolve_location=hex, mono_to_wall_ns=0))
        # no timer of its own for an hour: only the programs' wake-ups deliver
        source = LiveSource(module, decoder, idle_wait_s=3600, loss_interval_s=3600)
        stop = threading.Event()
        new = []
        def read():
            for batch in source.batches(stop):
                new.extend(e for e in batch if isinstance(e, FlowEvent)
                           and e.direction == "egress" and e.report == "new"
                           and e.proto == 17 and e.dst.port == port)
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        time.sleep(0.5)          # the reader is asleep in poll() now
        def burst(port, count):
            return subprocess.run([sys.executable, "-m", "tracer.lab.poke", "udp", b_ip,
                                   str(port), "--sport", "20000", "--count", str(count),
                                   "--vary-sport"], capture_output=True, text=True).stdout
        out = burst(port, sent)
        deadline = time.monotonic() + 20
        while len(new) < sent - 2 * wake and time.monotonic() < deadline:
            time.sleep(0.05)
        before_stop = len(new)
        stop.set()
        burst(port + 1, 4 * wake)   # the reader sees `stop` when next woken
        reader.join(timeout=20)
        if reader.is_alive():
            sys.exit("the reader did not wake up after the second burst")
        lost = module.loss_counts()[LossSlot.RINGBUF_RESERVE]
print(json.dumps({"poke": out.strip(), "before_stop": before_stop, "total": len(new),
                  "lost": lost}))
"""


@pytest.fixture
def pair() -> Iterator[tuple[Netns, Netns]]:
    with veth_pair("rbw", A_IP, B_IP) as ends:
        yield ends


def test_a_burst_wakes_the_sleeping_reader_and_nothing_is_lost(
        pair: tuple[Netns, Netns]) -> None:
    a, _b = pair
    out = json.loads(a.exec(sys.executable, "-c", CHILD, str(SENT), B_IP, str(CLOSED_PORT),
                            str(WAKE_EVERY), timeout=120).stdout)
    assert out["poke"] == "sent"
    # delivered while the reader's own timer slept: by the programs' wake-ups alone
    assert out["before_stop"] >= SENT - 2 * WAKE_EVERY, out
    assert out["lost"] == 0, out
    # the few under the threshold at the end: in the final drain
    assert out["total"] == SENT, out
