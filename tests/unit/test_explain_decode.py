"""Wire records of the failure kinds (route, neigh, icmp, tcp, sock) decode into the
documented JSON names; errno, TCP state, NUD and ICMP names are the kernel's."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

from tracer.events import schema
from tracer.events.icmp import decode_unreported_icmp6, icmp_line
from tracer.events.icmp_names import icmp_meaning
from tracer.events.model import (
    Endpoint,
    IcmpEvent,
    PodRef,
    PortHolder,
    SockEvent,
    errno_name,
    nud_state_name,
    tcp_state_name,
)
from tracer.events.records import event_record
from tracer.events.route import route_error
from tracer.node.ports import parse_proc_net
from tracer.pipeline.decode import DecodeContext, Decoder
from tracer.sinks.jsonl import JsonlSink
from tracer.sinks.table import TableSink

CTX = DecodeContext(drop_reasons={}, resolve_location=lambda a: "",
                    mono_to_wall_ns=1_700_000_000_000_000_000)


def v4(ip: str) -> bytes:
    return socket.inet_pton(socket.AF_INET, ip)


def record(ws: schema.WireStruct, kind: schema.EvKind, **values: Any) -> bytes:
    full: dict[str, Any] = {f.name: (b"" if f.fmt.endswith("s") else 0) for f in ws.fields}
    full.update({"hdr.ts_ns": 1_000, "hdr.netns_ino": 4026531840, "hdr.kind": int(kind),
                 "hdr.len": ws.size})
    full.update(values)
    return ws.struct.pack(*(full[n] for n in ws.names))


def decode(raw: bytes) -> dict[str, Any]:
    ev = Decoder(CTX).decode(raw)
    assert ev is not None
    rec = event_record(ev)
    json.dumps(rec)
    return rec


def test_errno_and_state_names() -> None:
    assert errno_name(111) == "ECONNREFUSED"
    assert errno_name(110) == "ETIMEDOUT"
    assert errno_name(98) == "EADDRINUSE"
    assert errno_name(101) == "ENETUNREACH"
    assert errno_name(9999) == "errno_9999"
    assert tcp_state_name(2) == "SYN_SENT" and tcp_state_name(7) == "CLOSE"
    assert tcp_state_name(99) == "state_99"
    assert nud_state_name(0x20) == "FAILED" and nud_state_name(0) == "NONE"
    assert nud_state_name(0x01) == "INCOMPLETE"
    assert icmp_meaning(3, 3) == "port-unreachable"
    assert icmp_meaning(3, 4) == "fragmentation-needed"
    assert icmp_meaning(11, 0) == "ttl-exceeded"


def test_route_miss_in_the_main_table_is_what_fib_lookup_returns() -> None:
    assert route_error(-11, 254) == "ENETUNREACH"     # -EAGAIN: miss
    assert route_error(-113, 254) == "EHOSTUNREACH"   # an unreachable route
    assert route_error(-13, 100) == "EACCES"          # a prohibit route


def test_route_record() -> None:
    rec = decode(record(schema.ROUTE, schema.EvKind.ROUTE, **{
        "tuple.saddr": v4("10.42.0.10"), "tuple.daddr": v4("192.168.2.10"),
        "tuple.family": 4, "tb_id": 254, "err": -11, "iif": 5, "count": 3}))
    assert rec["kind"] == "route" and rec["error"] == "ENETUNREACH" and rec["error_raw"] == -11
    assert rec["src"] == {"ip": "10.42.0.10", "port": None}
    assert rec["dst"] == {"ip": "192.168.2.10", "port": None}
    assert (rec["table"], rec["iif"], rec["count"], rec["gateway"]) == (254, 5, 3, None)
    assert "forwarding" not in rec


def test_neigh_record() -> None:
    rec = decode(record(schema.NEIGH, schema.EvKind.NEIGH, addr=v4("192.168.3.12"),
                        family=4, nud_state=0x20, event=1, ifname=b"eth0", ifindex=2,
                        probes=3))
    assert rec == {**rec, "addr": "192.168.3.12", "ifname": "eth0", "event": "failed",
                   "state": "FAILED", "old_state": None, "probes": 3, "family": "ipv4"}


def test_icmp_record_has_the_offending_tuple() -> None:
    rec = decode(record(schema.ICMP, schema.EvKind.ICMP, **{
        "inner.saddr": v4("10.42.0.10"), "inner.daddr": v4("10.43.0.30"),
        "inner.sport": 40000, "inner.dport": 80, "inner.family": 4, "inner.proto": 6,
        "type": 3, "code": 3, "ifname": b"cni0"}))
    assert rec["icmp"] == {"type": 3, "code": 3} and rec["meaning"] == "port-unreachable"
    assert rec["dst"] == {"ip": "10.43.0.30", "port": 80} and rec["proto"] == "tcp"


def v6(ip: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6, ip)


def test_icmp_send_record_is_via_icmp_send_without_direction_or_mtu() -> None:
    rec = decode(record(schema.ICMP, schema.EvKind.ICMP, type=3, code=4, count=1))
    assert rec["via"] == "icmp_send" and rec["meaning"] == "fragmentation-needed"
    assert "direction" not in rec and "mtu" not in rec and rec["count"] == 1


@pytest.mark.parametrize(("icmp_type", "code", "meaning"), [
    (1, 4, "port-unreachable"), (1, 1, "admin-prohibited"), (1, 3, "address-unreachable"),
    (1, 0, "no-route"), (3, 0, "hop-limit-exceeded"), (3, 1, "reassembly-time-exceeded"),
    (4, 1, "unrecognized-next-header")])
def test_icmpv6_record_from_tc_is_named_as_icmpv6(icmp_type: int, code: int,
                                                   meaning: str) -> None:
    ctx = DecodeContext(drop_reasons={}, resolve_location=lambda a: "", mono_to_wall_ns=0,
                        ifname_of=lambda i: {7: "veth-b"}.get(i, ""))
    ev = Decoder(ctx).decode(record(schema.ICMP, schema.EvKind.ICMP, **{
        "inner.saddr": v6("fd00:5::1"), "inner.daddr": v6("fd00:5::2"),
        "inner.sport": 40000, "inner.dport": 9, "inner.family": 6, "inner.proto": 17,
        "type": icmp_type, "code": code, "via": int(schema.IcmpVia.TC),
        "direction": int(schema.FlowDirection.EGRESS), "ifindex": 7, "mtu": 1280,
        "count": 3}))
    assert ev is not None
    rec = event_record(ev)
    assert rec["meaning"] == meaning and rec["icmp"] == {"type": icmp_type, "code": code}
    assert (rec["via"], rec["direction"], rec["ifname"], rec["count"]) == (
        "tc", "egress", "veth-b", 3)
    assert rec["family"] == "ipv6" and rec["proto"] == "udp"
    assert rec["src"] == {"ip": "fd00:5::1", "port": 40000}
    assert rec["dst"] == {"ip": "fd00:5::2", "port": 9}
    assert "mtu" not in rec, "only packet too big carries an MTU"


def test_packet_too_big_carries_its_mtu_in_the_record_and_the_line() -> None:
    ev = Decoder(CTX).decode(record(schema.ICMP, schema.EvKind.ICMP, **{
        "inner.saddr": v6("fd00:5::1"), "inner.daddr": v6("fd00:5::2"),
        "inner.sport": 443, "inner.dport": 40000, "inner.family": 6, "inner.proto": 6,
        "type": 2, "code": 0, "via": int(schema.IcmpVia.TC), "direction": 0, "mtu": 1400,
        "count": 1}))
    assert isinstance(ev, IcmpEvent)
    rec = event_record(ev)
    assert rec["meaning"] == "packet-too-big" and rec["mtu"] == 1400
    assert rec["direction"] == "ingress"
    _iface, text = icmp_line(ev)
    assert text == ("ingress icmpv6 packet-too-big (mtu 1400) for tcp [fd00:5::1]:443 → "
                    "[fd00:5::2]:40000")


def test_unreported_icmpv6_errors_decode_from_their_key() -> None:
    ws = schema.ICMP6_KEY
    values: dict[str, Any] = {f.name: (b"" if f.fmt.endswith("s") else 0) for f in ws.fields}
    values.update({"inner.saddr": v6("fd00:5::1"), "inner.daddr": v6("fd00:5::2"),
                   "inner.sport": 40000, "inner.dport": 9, "inner.family": 6,
                   "inner.proto": 17, "ifindex": 7, "direction": 1, "type": 1, "code": 4})
    raw = ws.struct.pack(*(values[n] for n in ws.names))
    ev = decode_unreported_icmp6(raw, 41, 5_000, 4026531840, CTX)
    rec = event_record(ev)
    assert (rec["meaning"], rec["via"], rec["direction"], rec["count"]) == (
        "port-unreachable", "tc", "egress", 41)
    assert rec["netns"] == 4026531840 and rec["dst"] == {"ip": "fd00:5::2", "port": 9}


def test_icmpv6_names_are_not_icmp_names() -> None:
    # the same type number means different things in the two families
    assert icmp_meaning(3, 3) == "port-unreachable"
    assert icmp_meaning(3, 3, family=6) == "reassembly-time-exceeded"
    assert icmp_meaning(1, 4, family=6) == icmp_meaning(3, 3) == "port-unreachable"
    assert icmp_meaning(1, 1, family=6) == icmp_meaning(3, 13) == "admin-prohibited"
    assert icmp_meaning(135, 0, family=6) == "neighbour-solicitation"


def test_tcp_failed_record() -> None:
    rec = decode(record(schema.TCP, schema.EvKind.TCP, **{
        "tuple.saddr": v4("10.42.0.10"), "tuple.daddr": v4("10.42.0.1"),
        "tuple.sport": 40000, "tuple.dport": 9, "tuple.family": 4, "tuple.proto": 6,
        "event": 3, "state": 7, "old_state": 2, "err": 110, "duration_ns": 7_000_000_000,
        "syn_retransmits": 2, "pid": 42, "comm": b"curl", "cgroup_id": 77}))
    assert (rec["event"], rec["error"], rec["state"], rec["old_state"]) == (
        "failed", "ETIMEDOUT", "CLOSE", "SYN_SENT")
    assert rec["duration_ns"] == 7_000_000_000 and rec["syn_retransmits"] == 2
    assert rec["process"] == {"pid": 42, "comm": "curl", "cgroup_id": 77}
    assert rec["src"] == {"ip": "10.42.0.10", "port": 40000}


def test_tcp_reset_without_process() -> None:
    rec = decode(record(schema.TCP, schema.EvKind.TCP, event=4, state=0))
    assert rec["event"] == "reset_sent" and rec["process"] is None
    assert rec["duration_ns"] is None and rec["error"] is None


@pytest.mark.parametrize(("op", "where"), [(1, "src"), (2, "dst"), (3, "src")])
def test_sock_record_names_the_address_by_its_side(op: int, where: str) -> None:
    rec = decode(record(schema.SOCK, schema.EvKind.SOCK, addr=v4("0.0.0.0"), port=9100,
                        family=4, op=op, err=98, pid=7, fd=3, comm=b"node_exporter"))
    assert rec["error"] == "EADDRINUSE" and rec[where] == {"ip": "0.0.0.0", "port": 9100}
    assert rec["process"]["comm"] == "node_exporter" and rec["pod"] is None


def test_sink_lines_for_every_kind(capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    dec = Decoder(CTX)
    raws = [record(schema.ROUTE, schema.EvKind.ROUTE, err=-11, tb_id=254),
            record(schema.NEIGH, schema.EvKind.NEIGH, event=1, nud_state=0x20),
            record(schema.ICMP, schema.EvKind.ICMP, type=3, code=1),
            record(schema.TCP, schema.EvKind.TCP, event=3, err=111, pid=1, comm=b"x"),
            record(schema.SOCK, schema.EvKind.SOCK, op=1, err=98, pid=1)]
    events = dec.decode_all(raws)
    assert len(events) == 5 and dec.errors == 0
    from dataclasses import replace
    sock = events[-1]
    assert isinstance(sock, SockEvent)
    events[-1] = replace(sock, holder=PortHolder("tcp", Endpoint("0.0.0.0", 9100), "LISTEN",
                                                 11, "node_exporter",
                                                 PodRef("u", None, None, None, "/")))
    TableSink(sys.stdout).write(events)
    JsonlSink(sys.stdout).write(events)
    out = capsys.readouterr().out
    assert "ENETUNREACH" in out and "FAILED" in out and "host-unreachable" in out
    assert "ECONNREFUSED" in out and "held by node_exporter[11]" in out


def test_proc_net_rows() -> None:
    tcp = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt"
           "   uid  timeout inode\n"
           "   0: 00000000:238C 00000000:0000 0A 00000000:00000000 00:00000000 00000000"
           "     0        0 123456 1 0000000000000000 100 0 0 10 0\n")
    (row,) = parse_proc_net(tcp, "tcp")
    assert (row.ip, row.port, row.state, row.inode) == ("0.0.0.0", 9100, "LISTEN", 123456)
    tcp6 = ("  sl  local_address                         remote_address"
            "                        st tx_queue rx_queue tr tm->when retrnsmt"
            "   uid  timeout inode\n"
            "   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000"
            " 0A 00000000:00000000 00:00000000 00000000     0        0 654321 1\n")
    (row6,) = parse_proc_net(tcp6, "tcp")
    assert (row6.ip, row6.port, row6.inode) == ("::1", 8080, 654321)
