"""tcp: handshakes, resets and socket errors (bpf/tcp.c: sock:inet_sock_set_state,
tcp:tcp_send_reset, tcp:tcp_receive_reset, sock:inet_sk_error_report).  An active
open is followed by socket from connect() to its outcome (struct tcp_handshake), so
the outcome carries its duration and the caller."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from tracer.events.common import (
    NO_LABELS,
    Endpoint,
    Labels,
    PodRef,
    Process,
    endpoint,
    ep,
    errno_name,
    family_text,
    parse_endpoint,
    parse_family,
    parse_pod,
    parse_process,
    pod_record,
    process_record,
    who_text,
)
from tracer.events.decoding import DecodeContext, Fields, cstr, tuple_endpoints
from tracer.events.family import Family
from tracer.events.wire import HDR, TUPLE, EvKind, Field, WireStruct
from tracer.util.timefmt import rfc3339_ns

# --- wire layout: struct ev_tcp, tcp_handshake ----------------------------------------

class TcpEv(IntEnum):
    """enum tcp_event."""

    CONNECT = 1
    ESTABLISHED = 2
    FAILED = 3
    RESET_SENT = 4
    RESET_RECEIVED = 5
    ERROR = 6


TCP_HANDSHAKE = WireStruct("tcp_handshake", Field("start_ns", "Q"), Field("cgroup_id", "Q"),
                           Field("pid", "I"), Field("syn_retransmits", "I"),
                           Field("comm", "16s"))
TCP = WireStruct("ev_tcp", HDR.nested("hdr"), TUPLE.nested("tuple"), Field("duration_ns", "Q"),
                 Field("cgroup_id", "Q"), Field("pid", "I"), Field("err", "I"),
                 Field("comm", "16s"), Field("event", "B"), Field("state", "B"),
                 Field("old_state", "B"), Field("syn_retransmits", "B"), Field("_pad", "I"))

TCP_STATES = ("", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2",
              "TIME_WAIT", "CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING",
              "NEW_SYN_RECV", "BOUND_INACTIVE")  # include/net/tcp_states.h


def tcp_state_name(state: int) -> str:
    return TCP_STATES[state] if 0 < state < len(TCP_STATES) else f"state_{state}"


# --- model -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class TcpEvent:
    ts_ns: int
    wall_ns: int
    netns: int
    event: str            # connect | established | failed | reset_sent | reset_received | error
    family: int
    src: Endpoint         # this socket's end
    dst: Endpoint         # the peer
    state: str
    old_state: str | None
    error: str | None     # "ECONNREFUSED", "ETIMEDOUT"
    error_raw: int
    duration_ns: int | None   # connect() to established/failed
    syn_retransmits: int
    process: Process | None   # the connect() caller; None when not known
    pod: PodRef | None = None

    kind = "tcp"


# --- decode --------------------------------------------------------------------------

_TCP_EVENTS = {int(e): e.name.lower() for e in TcpEv}
_HANDSHAKE_END = (TcpEv.ESTABLISHED, TcpEv.FAILED)


def decode_tcp(v: Fields, ctx: DecodeContext) -> TcpEvent:
    src, dst, _, _ = tuple_endpoints(v, "tuple.")
    ts_ns = v["hdr.ts_ns"]
    event = v["event"]
    err = v["err"]
    pid = v["pid"]
    old = v["old_state"]
    return TcpEvent(
        ts_ns=ts_ns, wall_ns=ts_ns + ctx.mono_to_wall_ns, netns=v["hdr.netns_ino"],
        event=_TCP_EVENTS.get(event, str(event)), family=v["tuple.family"], src=src, dst=dst,
        state=tcp_state_name(v["state"]), old_state=tcp_state_name(old) if old else None,
        error=errno_name(err) if err else None, error_raw=err,
        duration_ns=v["duration_ns"] if event in _HANDSHAKE_END else None,
        syn_retransmits=v["syn_retransmits"],
        process=Process(pid, cstr(v["comm"]), v["cgroup_id"]) if pid else None)


# --- JSON record, table line, parse --------------------------------------------------
# -o jsonl writes tcp lines from cached parts (tracer/sinks/fragments.py), byte for
# byte this record with its names.

def tcp_record(ev: TcpEvent) -> dict[str, Any]:
    return {"kind": "tcp", "time": rfc3339_ns(ev.wall_ns), "netns": ev.netns,
            "event": ev.event, "family": family_text(ev.family),
            "src": endpoint(ev.src), "dst": endpoint(ev.dst), "state": ev.state,
            "old_state": ev.old_state, "error": ev.error, "error_raw": ev.error_raw,
            "duration_ns": ev.duration_ns, "syn_retransmits": ev.syn_retransmits,
            "process": process_record(ev.process), "pod": pod_record(ev.pod)}


def tcp_line(ev: TcpEvent, labels: Labels = NO_LABELS) -> tuple[str, str]:
    text = f"{ev.event} {ep(ev.src, labels.get('src', ''))} → {ep(ev.dst, labels.get('dst', ''))}"
    if ev.error:
        text += f"  {ev.error}"
    if ev.duration_ns is not None:
        text += f"  after {ev.duration_ns / 1e6:.0f} ms"
    if ev.syn_retransmits:
        text += f", {ev.syn_retransmits} SYN retransmits"
    return (ev.state, text + who_text(ev.process, ev.pod, labels.get("@pod", "")))


def parse_tcp(rec: dict[str, Any], t: int) -> TcpEvent:
    return TcpEvent(0, t, rec["netns"], rec["event"], parse_family(rec.get("family")),
                    parse_endpoint(rec.get("src")), parse_endpoint(rec.get("dst")),
                    rec.get("state", ""), rec.get("old_state"), rec.get("error"),
                    rec.get("error_raw", 0), rec.get("duration_ns"),
                    rec.get("syn_retransmits", 0), parse_process(rec.get("process")),
                    parse_pod(rec.get("pod")))


FAMILY = Family(name="tcp", model=TcpEvent, record=tcp_record, line=tcp_line,
                parse=parse_tcp, ev_kind=EvKind.TCP, wire=TCP, decode=decode_tcp,
                map_structs=(TCP_HANDSHAKE,), c_enums=(("TCP_EV", TcpEv),))
