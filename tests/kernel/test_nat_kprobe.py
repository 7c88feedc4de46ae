"""The per-packet NAT path (kprobe on nf_nat_manip_pkt), on kernels that have kprobes.

This machine's kernel has none: these tests run inside the kernel matrix VM
(tests/kernels/), which boots a distro kernel with kprobes and reports back.  They are
marked `kprobes`, not `kernel`, so a host without kprobes skips them honestly while
the matrix test proves they ran.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.kernel.nat_topology import BACKEND_PORT, EXT_IP, NODE_IP, POD_IP, VIP, VIP_PORT, NatNode
from tests.kernel.servers import send_and_check, start_server
from tests.kernel.tracing import raw, tracing
from tracer.kernel.features import ensure_tracefs, kprobes_available

pytestmark = [
    pytest.mark.kprobes,
    pytest.mark.skipif(not kprobes_available(ensure_tracefs()),
                       reason="this kernel has no kprobes; the kernel matrix VM runs these"),
]


@pytest.fixture(scope="module")
def node() -> Iterator[NatNode]:
    n = NatNode("nt-tkp", masquerade=True).up()
    try:
        yield n
    finally:
        n.down()


def test_kprobe_nat_reports_dnat_and_masquerade_and_agrees_with_conntrack(
        node: NatNode, tmp_path: Path) -> None:
    server = start_server(node.ext, EXT_IP, BACKEND_PORT, seconds=60)
    try:
        with tracing(node.node, tmp_path) as run:
            sent, received = send_and_check(node.pod, VIP, VIP_PORT, 10_000)
            assert run.stop() == 0, run.stderr
    finally:
        server.kill()
        server.wait()
    assert sent == received
    assert "kprobe/nf_nat_manip_pkt" in run.stderr
    nat: list[dict[str, Any]] = [e for e in run.events if e["kind"] == "nat"
                                 and raw(e["orig"]["dst"]) == {"ip": VIP, "port": VIP_PORT}]
    kprobe = [e for e in nat if e["origin"] == "kprobe"]
    conntrack = [e for e in nat if e["origin"] == "conntrack"]
    assert {e["manip"] for e in kprobe} >= {"dst", "src"}, kprobe
    for e in kprobe + conntrack:
        assert e["orig"]["src"]["ip"] == POD_IP
        # DNAT is decided first (PREROUTING/OUTPUT), so from then on the reply is
        # expected from the endpoint...
        assert raw(e["reply"]["src"]) == {"ip": EXT_IP, "port": BACKEND_PORT}
    for e in [*conntrack, *(k for k in kprobe if k["manip"] == "src")]:
        # ...and once MASQUERADE is decided (POSTROUTING), to the node's address
        assert e["reply"]["dst"]["ip"] == NODE_IP
    assert conntrack, "conntrack reports the same connection"
