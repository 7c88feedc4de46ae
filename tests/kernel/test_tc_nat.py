"""tc flows and NAT on the real kernel: observe-only, Service DNAT, MASQUERADE, the
masquerade-missing shape, and nothing left behind after any exit."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.kernel.nat_topology import (
    BACKEND_PORT,
    EXT_HOST,
    EXT_IP,
    NODE_IP,
    NODE_PORT,
    POD_IP,
    POD_PORT,
    VIP,
    VIP_PORT,
    NatNode,
)
from tests.kernel.servers import send_and_check, start_server
from tests.kernel.tracing import poke, raw, start_trace, tracing
from tracer.kernel.libbpf import prog_test_run
from tracer.kernel.loader import BuildSpec, Module
from tracer.kernel.progstats import programs_of

pytestmark = pytest.mark.kernel

TC_ACT_UNSPEC = -1


# --- observe only --------------------------------------------------------------------
def _eth(proto: int) -> bytes:
    return b"\x02\x00\x00\x00\x00\x01" + b"\x02\x00\x00\x00\x00\x02" + struct.pack("!H", proto)


def _ipv4(proto: int, payload: bytes, frag: int = 0) -> bytes:
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, frag, 64, proto, 0,
                      socket.inet_aton(POD_IP), socket.inet_aton(EXT_HOST))
    return _eth(0x0800) + hdr + payload


def _ipv6(proto: int, payload: bytes) -> bytes:
    hdr = struct.pack("!IHBB16s16s", 6 << 28, len(payload), proto, 64,
                      socket.inet_pton(socket.AF_INET6, "fd00::5"),
                      socket.inet_pton(socket.AF_INET6, "fd00::10"))
    return _eth(0x86DD) + hdr + payload


TCP_SYN = struct.pack("!HHIIBBHHH", 40000, 80, 1, 0, 0x50, 0x02, 1000, 0, 0)
UDP = struct.pack("!HHHH", 40000, 53, 12, 0) + b"dns!"
ICMP = struct.pack("!BBHHH", 8, 0, 0, 1, 1) + b"ping"
# ICMPv6 errors quote the offending packet (RFC 4443): tc reads the inner tuple
ICMP6_UNREACH = struct.pack("!BBHI", 1, 4, 0, 0) + _ipv6(17, UDP)[14:]
ICMP6_TOO_BIG = struct.pack("!BBHI", 2, 0, 0, 1280) + _ipv6(6, TCP_SYN)[14:]

VALID = {
    "tcp4-syn": _ipv4(6, TCP_SYN), "udp4": _ipv4(17, UDP), "icmp4": _ipv4(1, ICMP),
    "tcp6": _ipv6(6, TCP_SYN), "udp6": _ipv6(17, UDP), "icmp6": _ipv6(58, ICMP),
    "icmp6-unreach": _ipv6(58, ICMP6_UNREACH), "icmp6-too-big": _ipv6(58, ICMP6_TOO_BIG),
    "fragment": _ipv4(6, TCP_SYN, frag=0x0010), "arp": _eth(0x0806) + bytes(28),
    "ipv4-options": _eth(0x0800) + struct.pack("!BBHHHBBH4s4s", 0x46, 0, 44, 1, 0, 64, 6, 0,
                                               socket.inet_aton("1.1.1.1"),
                                               socket.inet_aton("2.2.2.2"))
    + b"\x01\x01\x01\x00" + TCP_SYN,
}


def _truncated() -> dict[str, bytes]:
    out = {}
    for name in ("tcp4-syn", "udp4", "tcp6", "icmp6-unreach", "icmp6-too-big"):
        full = VALID[name]
        ip_end = 34 if name.endswith("4") or name == "udp4" else 54
        for cut in range(ip_end, len(full)):
            out[f"{name}[:{cut}]"] = full[:cut]
    for cut in range(14, 60):  # not IP: any length the kernel accepts
        out[f"arp[:{cut}]"] = (_eth(0x0806) + bytes(60))[:cut]
    return out


def _garbage(n: int) -> dict[str, bytes]:
    rng = random.Random(1234)
    out = {}
    for i in range(n):
        body = rng.randbytes(rng.randrange(60, 400))
        # half of them claim to be IP, with a garbage IP header behind the claim
        proto = rng.choice((0x0800, 0x86DD, rng.randrange(0, 0xFFFF)))
        out[f"garbage-{i}"] = body[:12] + struct.pack("!H", proto) + body[14:]
    return out


@pytest.fixture(scope="module")
def tc_progs() -> Iterator[dict[str, Any]]:
    with Module(BuildSpec(families=frozenset({"tc"}))) as m:
        m.load()
        yield m.tc_programs()


@pytest.mark.parametrize("direction", ["ingress", "egress"])
def test_tc_programs_never_change_a_verdict_or_a_byte(tc_progs: dict[str, Any],
                                                      direction: str) -> None:
    cases = {**VALID, **_truncated(), **_garbage(300)}
    fd = tc_progs[direction].fd
    bad = {}
    for name, pkt in cases.items():
        run = prog_test_run(fd, pkt)
        if run.retval != TC_ACT_UNSPEC or run.data_out != pkt:
            bad[name] = (run.retval, run.data_out == pkt)
    assert not bad, f"verdict or bytes changed: {bad}"
    assert len(cases) > 350


# --- NAT through a traced node -------------------------------------------------------
def _find(events: list[dict[str, Any]], kind: str, **match: Any) -> list[dict[str, Any]]:
    def ok(e: dict[str, Any]) -> bool:
        for path, want in match.items():
            v: Any = e
            for part in path.split("__"):
                v = v.get(part) if isinstance(v, dict) else None
            if v != want:
                return False
        return True
    return [e for e in events if e["kind"] == kind and ok(e)]


@pytest.fixture(scope="module")
def masq_node() -> Iterator[NatNode]:
    n = NatNode("nt-t4m", masquerade=True).up()
    try:
        yield n
    finally:
        n.down()


def test_service_dnat_and_masquerade_are_observed_and_data_is_intact(
        masq_node: NatNode, tmp_path: Path) -> None:
    server = start_server(masq_node.ext, EXT_IP, BACKEND_PORT, seconds=15)
    try:
        with tracing(masq_node.node, tmp_path) as run:
            sent, received = send_and_check(masq_node.pod, VIP, VIP_PORT, 2_000_000)
            assert run.stop() == 0, run.stderr
    finally:
        server.kill()
        server.wait()
    assert sent == received, "a TCP transfer across the traced veths arrives intact"
    ev = run.events
    nat = _find(ev, "nat", orig__src__ip=POD_IP, orig__dst__ip=VIP, orig__dst__port=VIP_PORT)
    assert nat, f"no nat event for the ClusterIP: {_find(ev, 'nat')}"
    first = nat[0]
    assert first["ct_event"] == "new"
    assert raw(first["reply"]["src"]) == {"ip": EXT_IP, "port": BACKEND_PORT}   # the endpoint
    assert first["reply"]["dst"]["ip"] == NODE_IP                          # masqueraded
    assert set(first["translation"]) == {"dnat", "snat"}
    assert any(e["replied"] for e in nat), "the backend's reply was seen"
    # the path: as the pod sent it on its veth, as it left on the uplink
    assert _find(ev, "flow", ifname="vethpod0", direction="ingress", src__ip=POD_IP,
                 dst__ip=VIP, dst__port=VIP_PORT, role="pod")
    out = _find(ev, "flow", ifname="eth0", direction="egress", dst__ip=EXT_IP,
                dst__port=BACKEND_PORT, role="uplink")
    assert out and {e["src"]["ip"] for e in out} == {NODE_IP}
    assert not [e for e in out if e.get("marks")]
    # flows are aggregated: far fewer flow records than packets
    packets = sum(e["packets"] for e in out if e["report"] != "new")
    assert len(_find(ev, "flow")) < max(packets, 1)


def test_nodeport_dnat_to_the_local_pod_is_observed(masq_node: NatNode, tmp_path: Path) -> None:
    server = start_server(masq_node.pod, POD_IP, POD_PORT, seconds=15)
    try:
        with tracing(masq_node.node, tmp_path) as run:
            sent, received = send_and_check(masq_node.ext, NODE_IP, NODE_PORT, 100_000)
            assert run.stop() == 0, run.stderr
    finally:
        server.kill()
        server.wait()
    assert sent == received
    nat = _find(run.events, "nat", orig__src__ip=EXT_IP, orig__dst__ip=NODE_IP,
                orig__dst__port=NODE_PORT)
    assert nat and raw(nat[0]["reply"]["src"]) == {"ip": POD_IP, "port": POD_PORT}
    assert nat[0]["translation"] == ["dnat"]
    assert _find(run.events, "flow", ifname="eth0", direction="ingress", dst__ip=NODE_IP,
                 dst__port=NODE_PORT, role="uplink")
    assert _find(run.events, "flow", ifname="vethpod0", direction="egress", dst__ip=POD_IP,
                 dst__port=POD_PORT, role="pod")


def test_masquerade_missing_leaves_with_the_pod_source_and_is_marked(tmp_path: Path) -> None:
    n = NatNode("nt-t4n", masquerade=False).up()
    try:
        with tracing(n.node, tmp_path) as run:
            assert poke(n.pod, "tcp", EXT_HOST, 5432, timeout_s=1.5) == "timeout"
            assert run.stop() == 0, run.stderr
    finally:
        n.down()
    out = _find(run.events, "flow", ifname="eth0", direction="egress", src__ip=POD_IP,
                dst__ip=EXT_HOST, dst__port=5432)
    assert out, "the SYN left the uplink untranslated"
    assert all("untranslated-pod-source" in e.get("marks", []) for e in out)
    assert any(e["packets"] >= 2 or e["report"] == "tcp_control" for e in out)
    # and no reply came back in on the uplink
    assert not _find(run.events, "flow", ifname="eth0", direction="ingress", dst__ip=POD_IP)


# --- nothing left behind -------------------------------------------------------------
def _tcx_links() -> list[dict[str, Any]]:
    out = subprocess.run(["bpftool", "link", "show", "--json"], capture_output=True,
                         text=True, check=True).stdout
    # bpftool older than the kernel prints BPF_LINK_TYPE_TCX as its number, 11
    return [ln for ln in json.loads(out or "[]") if ln.get("type") in ("tcx", 11)]


def _our_filters(ns: str, dev: str) -> str:
    return "".join(subprocess.run(["ip", "netns", "exec", ns, "tc", "filter", "show", "dev",
                                   dev, d], capture_output=True, text=True).stdout
                   for d in ("ingress", "egress"))


def test_kill_9_leaves_no_tcx_link(masq_node: NatNode, tmp_path: Path) -> None:
    run = start_trace(masq_node.node, tmp_path)
    try:
        # this run's links only: another tracer on the machine may hold its own
        ours = programs_of(run.proc.pid)
        links = [ln for ln in _tcx_links() if ln.get("prog_id") in ours]
        assert len(links) >= 4, f"ingress+egress on vethpod0 and eth0: {links}"
    finally:
        run.proc.send_signal(signal.SIGKILL)
        run.finish()
    left = {ln["id"] for ln in _tcx_links()} & {ln["id"] for ln in links}
    assert not left, f"tcx links outlived their process: {left}"


def test_legacy_filters_are_swept_after_kill_9_and_foreign_ones_kept(tmp_path: Path) -> None:
    n = NatNode("nt-t4l").up()
    try:
        # someone else's filter, installed before nodetrace ever ran
        n.node.exec("tc", "qdisc", "add", "dev", "eth0", "clsact")
        # (a classic-BPF filter: returns 0, "no match", so traffic goes on)
        n.node.exec("tc", "filter", "add", "dev", "eth0", "ingress", "pref", "100", "bpf",
                    "bytecode", "1,6 0 0 0,", "classid", "1:1")
        foreign_before = _our_filters(n.node.name, "eth0")
        run = start_trace(n.node, tmp_path, "--tc-mode", "legacy")
        during = _our_filters(n.node.name, "eth0")
        assert "nodetrace/" in during and "bytecode '1,6 0 0 0'" in during
        run.proc.send_signal(signal.SIGKILL)
        run.finish()
        assert "nodetrace/" in _our_filters(n.node.name, "eth0"), "legacy filters outlive us"
        # by hand: `nodetrace cleanup` removes them (and only them)
        by_hand = n.node.exec(sys.executable, "-m", "tracer.cli.main", "cleanup").stdout
        assert "4 stale nodetrace filter(s) removed" in by_hand
        assert _our_filters(n.node.name, "eth0") == foreign_before
        run = start_trace(n.node, tmp_path, "--tc-mode", "legacy")
        run.proc.send_signal(signal.SIGKILL)
        run.finish()
        # the next start sweeps them; its own filters go on a clean exit
        (tmp_path / "again").mkdir()
        with tracing(n.node, tmp_path / "again", "--tc-mode", "legacy") as again:
            assert again.stop() == 0, again.stderr
        assert "removed stale nodetrace filter" in again.stderr
        assert _our_filters(n.node.name, "eth0") == foreign_before
        assert "nodetrace/" not in _our_filters(n.node.name, "vethpod0")
    finally:
        n.down()
    assert os.path.exists(tmp_path)


# --- kprobe NAT programs -------------------------------------------------------------
def test_nat_hook_program_passes_the_verifier_and_attach_degrades_without_kprobes() -> None:
    from tracer.kernel.features import ensure_tracefs, fentry_available, kprobes_available

    with Module(BuildSpec(families=frozenset({"nat"}))) as m:
        m.load()
        assert m.load_only() == ["kp_nf_nat_manip_pkt"]  # verifier accepted it
        attached = m.attach_all()
        fentry_ok, fentry_why = fentry_available()
        if fentry_ok:  # doctor's fentry check decides (tests/kernel/test_nat_hook.py)
            assert attached == ["fentry/nf_nat_manip_pkt"]
        elif kprobes_available(ensure_tracefs()):
            assert attached == ["kprobe/nf_nat_manip_pkt"]
        else:
            assert attached == []
            assert m.unavailable == {"kprobe/nf_nat_manip_pkt":
                                     f"kernel has no kprobes, and {fentry_why}"}
