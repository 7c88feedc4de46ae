"""The decoder turns wire records into events with the documented JSON names."""

from __future__ import annotations

import json
import socket

from tracer.events import schema
from tracer.events.model import DropEvent
from tracer.events.records import event_record
from tracer.pipeline.decode import DecodeContext, Decoder
from tracer.sinks.jsonl import JsonlSink

CTX = DecodeContext(drop_reasons={12: "NETFILTER_DROP", 3: "NO_SOCKET"},
                    resolve_location=lambda a: f"fn+{a:#x}",
                    mono_to_wall_ns=1_700_000_000_000_000_000)


def drop_bytes(**over: object) -> bytes:
    values: dict[str, object] = {name: 0 for name in schema.DROP.names}
    for name, fmt in ((f.name, f.fmt) for f in schema.DROP.fields):
        if fmt.endswith("s"):
            values[name] = b""
    values.update({
        "hdr.ts_ns": 5_000_000_123, "hdr.netns_ino": 4026531840, "hdr.kind": 1,
        "hdr.len": schema.DROP.size,
        "tuple.saddr": socket.inet_pton(socket.AF_INET, "10.42.0.5"),
        "tuple.daddr": socket.inet_pton(socket.AF_INET, "192.168.2.10"),
        "tuple.sport": 40000, "tuple.dport": 5432, "tuple.family": 4, "tuple.proto": 6,
        "tuple.tcp_flags": 0x02, "location": 0xFFFF0000, "reason_raw": 12, "ifindex": 3,
        "skb_len": 60, "l3_proto": 0x0800, "ifname": b"eth0", "count": 1,
    })
    values.update(over)
    return schema.DROP.struct.pack(*(values[n] for n in schema.DROP.names))


def test_ipv4_tcp_drop_decodes_every_field() -> None:
    ev = Decoder(CTX).decode(drop_bytes())
    assert isinstance(ev, DropEvent)
    assert (ev.src.ip, ev.src.port, ev.dst.ip, ev.dst.port) == ("10.42.0.5", 40000,
                                                                 "192.168.2.10", 5432)
    assert ev.reason == "NETFILTER_DROP" and ev.reason_raw == 12
    assert ev.location == "fn+0xffff0000"
    assert ev.ifname == "eth0" and ev.ifindex == 3 and ev.netns == 4026531840
    assert ev.wall_ns == 1_700_000_005_000_000_123


def test_jsonl_record_has_the_fixed_names() -> None:
    ev = Decoder(CTX).decode(drop_bytes())
    assert ev is not None
    rec = event_record(ev)
    assert rec == {
        "kind": "drop", "time": "2023-11-14T22:13:25.000000123Z", "netns": 4026531840,
        "ifname": "eth0", "ifindex": 3, "proto": "tcp", "family": "ipv4",
        "src": {"ip": "10.42.0.5", "port": 40000}, "dst": {"ip": "192.168.2.10", "port": 5432},
        "reason": "NETFILTER_DROP", "reason_raw": 12, "location": "fn+0xffff0000", "len": 60,
        "count": 1, "tcp_flags": ["SYN"],
    }


def test_ipv6_icmp_has_type_and_code_not_ports() -> None:
    raw = drop_bytes(**{"tuple.family": 6, "tuple.proto": 58, "tuple.sport": 1,
                        "tuple.dport": 4,
                        "tuple.saddr": socket.inet_pton(socket.AF_INET6, "fd00::1"),
                        "tuple.daddr": socket.inet_pton(socket.AF_INET6, "fd00::2")})
    ev = Decoder(CTX).decode(raw)
    assert isinstance(ev, DropEvent)
    rec = event_record(ev)
    assert rec["src"] == {"ip": "fd00::1", "port": None}
    assert rec["proto"] == "icmpv6" and rec["icmp"] == {"type": 1, "code": 4}


def test_unknown_reason_value_is_kept_raw() -> None:
    ev = Decoder(CTX).decode(drop_bytes(reason_raw=999))
    assert isinstance(ev, DropEvent) and ev.reason == "reason_999"


def test_bad_records_are_counted_not_fatal() -> None:
    d = Decoder(CTX)
    assert d.decode(b"\x00" * 4) is None
    assert d.decode(drop_bytes()[:-8]) is None
    assert d.decode(drop_bytes(**{"hdr.kind": 200})) is None
    assert (d.errors, d.unknown_kinds) == (2, 1)


def test_jsonl_sink_writes_one_parsable_object_per_line() -> None:
    import io

    out = io.StringIO()
    d = Decoder(CTX)
    JsonlSink(out).write(d.decode_all([drop_bytes(), drop_bytes(reason_raw=3)]))
    lines = out.getvalue().splitlines()
    assert [json.loads(line)["reason"] for line in lines] == ["NETFILTER_DROP", "NO_SOCKET"]


def _tuple_fields(prefix: str, src: str, dst: str, sport: int, dport: int) -> dict[str, object]:
    return {f"{prefix}.saddr": socket.inet_pton(socket.AF_INET, src),
            f"{prefix}.daddr": socket.inet_pton(socket.AF_INET, dst),
            f"{prefix}.sport": sport, f"{prefix}.dport": dport, f"{prefix}.family": 4,
            f"{prefix}.proto": 6, f"{prefix}.tcp_flags": 0, f"{prefix}._pad": 0}


def _pack(ws: schema.WireStruct, values: dict[str, object]) -> bytes:
    full: dict[str, object] = {f.name: (b"" if f.fmt.endswith("s") else 0) for f in ws.fields}
    full.update(values)
    return ws.struct.pack(*(full[n] for n in ws.names))


def test_kprobe_nat_record_decodes_to_the_nat_json_form() -> None:
    raw = _pack(schema.NAT, {
        "hdr.ts_ns": 1, "hdr.netns_ino": 7, "hdr.kind": int(schema.EvKind.NAT),
        "hdr.len": schema.NAT.size, "status": 0x1BE, "manip": 1, "dir": 0,
        **_tuple_fields("orig", "10.42.0.5", "10.43.0.10", 40000, 80),
        **_tuple_fields("reply", "10.42.1.7", "192.168.1.11", 8080, 40000)})
    ev = Decoder(CTX).decode(raw)
    assert ev is not None
    rec = event_record(ev)
    assert rec["orig"] == {"src": {"ip": "10.42.0.5", "port": 40000},
                           "dst": {"ip": "10.43.0.10", "port": 80}}
    assert rec["reply"]["src"] == {"ip": "10.42.1.7", "port": 8080}
    assert rec["translation"] == ["dnat", "snat"] and rec["replied"] is True
    assert rec["origin"] == "kprobe" and rec["manip"] == "dst"


def test_flow_record_has_the_fixed_names() -> None:
    raw = _pack(schema.FLOW, {
        "hdr.ts_ns": 10, "hdr.netns_ino": 7, "hdr.kind": int(schema.EvKind.FLOW),
        "hdr.len": schema.FLOW.size, "first_ns": 5, "last_ns": 10, "packets": 3,
        "bytes": 180, "ifindex": 4, "direction": 1, "report": 2, "tcp_flags_seen": 0x12,
        **_tuple_fields("tuple", "10.42.0.5", "192.168.2.10", 40000, 5432)})
    ctx = DecodeContext(drop_reasons={}, resolve_location=str, mono_to_wall_ns=0,
                        ifname_of=lambda i: {4: "eth0"}[i], role_of=lambda i: "uplink")
    ev = Decoder(ctx).decode(raw)
    assert ev is not None
    rec = event_record(ev)
    assert {k: rec[k] for k in ("kind", "ifname", "role", "direction", "report", "packets",
                                "bytes", "tcp_flags")} == {
        "kind": "flow", "ifname": "eth0", "role": "uplink", "direction": "egress",
        "report": "tcp_control", "packets": 3, "bytes": 180, "tcp_flags": ["SYN", "ACK"]}
    assert rec["src"] == {"ip": "10.42.0.5", "port": 40000}
