"""Folded storm records: the sketch's estimate, and the `aggregated` field through
record, parse and record again (a recording or a jsonl replay keeps it)."""

from __future__ import annotations

import random
import struct

import pytest

from tracer.events.common import Endpoint
from tracer.events.drop import DropEvent, drop_line, drop_record, parse_drop
from tracer.events.flow import FlowEvent, flow_line, flow_record, parse_flow
from tracer.events.storm import SKETCH_REGS, Aggregation, aggregation, sketch_estimate
from tracer.util.timefmt import rfc3339_ns


def _mix32(h: int) -> int:
    """bpf/include/common.h: mix32, in Python, to fill registers as the kernel does."""
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    return h ^ (h >> 16)


def _sketch(items: list[bytes]) -> bytes:
    regs = bytearray(SKETCH_REGS)
    for item in items:
        w = struct.unpack("<4I", item.ljust(16, b"\0"))
        h = _mix32(w[0] ^ _mix32(w[1] ^ _mix32(w[2] ^ _mix32(w[3] ^ 0x9E3779B9))))
        x = h >> 5
        rho = 28 if not x else (x & -x).bit_length()
        regs[h & (SKETCH_REGS - 1)] = max(regs[h & (SKETCH_REGS - 1)], rho)
    return bytes(regs)


@pytest.mark.parametrize("n", [1, 10, 100, 1000, 20000])
def test_the_estimate_is_within_three_standard_errors(n: int) -> None:
    rng = random.Random(n)
    items = [struct.pack("!I", rng.getrandbits(32)) for _ in range(n)]
    est = sketch_estimate(_sketch(items))
    assert abs(est - len(set(items))) <= max(2, 0.55 * len(set(items))), est


def test_an_empty_sketch_is_zero_and_one_source_is_exact() -> None:
    assert sketch_estimate(bytes(SKETCH_REGS)) == 0
    a = aggregation(("dst",), 0, _sketch([b"\x0a\0\0\1"]), _sketch([b"x"]), 1000, 5)
    assert (a.sources, a.exact_sources) == (1, True)


AGG = Aggregation(("dst", "dport", "proto", "reason", "ifindex"), 1700, 1650, False, 1000,
                  19936)


def test_a_folded_drop_keeps_its_aggregation_through_a_record() -> None:
    t = 1_765_000_000_000_000_000
    ev = DropEvent(0, t, 4026532174, 2, "veth-pod", "NETFILTER_DROP", 12, "nft_do_chain",
                   0, 4, 6, Endpoint("10.90.1.2", 0), Endpoint("10.88.0.1", 5432), 0, None,
                   None, 0, 0, count=19935, aggregated=AGG)
    rec = drop_record(ev)
    assert rec["aggregated"] == {"by": ["dst", "dport", "proto", "reason", "ifindex"],
                                 "flows": 1700, "sources": 1650, "exact_sources": False,
                                 "interval_ms": 1000, "packets": 19936}
    assert drop_record(parse_drop(rec, t)) == rec
    assert "folded by dst,dport,proto,reason,ifindex: ~1650 sources" in drop_line(ev)[1]
    plain = drop_record(parse_drop({**rec, "aggregated": None}, t))
    assert "aggregated" not in plain


def test_a_folded_flow_keeps_its_aggregation_through_a_record() -> None:
    t = 1_765_000_000_000_000_000
    ev = FlowEvent(0, t, 1, 2, "veth-pod", "ingress", "aggregated", 4, 6,
                   Endpoint("10.90.1.2", 0), Endpoint("10.88.0.1", 5432), 0, 0, None, None,
                   19936, 797440, t, t, "pod", aggregated=AGG)
    rec = flow_record(ev)
    assert rec["report"] == "aggregated" and rec["aggregated"]["packets"] == 19936
    assert rec["first"] == rfc3339_ns(t)
    assert flow_record(parse_flow(rec, t)) == rec
    assert "folded: ~1650 sources" in flow_line(ev)[1]
