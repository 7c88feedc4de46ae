"""The decoder turns wire records into events with the documented JSON names."""

from __future__ import annotations

import json
import socket

from tracer import schema
from tracer.model import DropEvent
from tracer.pipeline.decode import DecodeContext, Decoder
from tracer.sinks.jsonl import JsonlSink
from tracer.sinks.records import event_record

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
        "skb_len": 60, "l3_proto": 0x0800, "ifname": b"eth0",
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
        "tcp_flags": ["SYN"],
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
