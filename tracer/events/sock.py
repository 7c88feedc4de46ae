"""sock: a failed bind(), connect() or listen() on an AF_INET/AF_INET6 socket
(bpf/sockets.c, the syscall tracepoints; struct sock_call holds a call from its
entry to its exit).  A bind that failed with EADDRINUSE gets the port's holder from
user space (tracer/node/ports.py)."""

from __future__ import annotations

import errno
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
from tracer.events.decoding import DecodeContext, Fields, addr, cstr
from tracer.events.family import Family
from tracer.events.wire import HDR, EvKind, Field, WireStruct
from tracer.util.timefmt import rfc3339_ns

# --- wire layout: struct ev_sock, sock_call ------------------------------------------

class SockOp(IntEnum):
    """enum sock_op."""

    BIND = 1
    CONNECT = 2
    LISTEN = 3
    CONNECT_ASYNC = 4   # a non-blocking connect's outcome, read with SO_ERROR


SOCK = WireStruct("ev_sock", HDR.nested("hdr"), Field("addr", "16s"), Field("port", "H"),
                  Field("family", "B"), Field("op", "B"), Field("err", "I"), Field("pid", "I"),
                  Field("fd", "I"), Field("cgroup_id", "Q"), Field("comm", "16s"))
SOCK_CALL = WireStruct("sock_call", Field("uaddr", "Q"), Field("fd", "I"), Field("op", "B"),
                       Field("_pad", "3s"))


# --- model -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PortHolder:
    """Who holds an address another process failed to bind (EADDRINUSE)."""

    proto: str                # "tcp" | "udp"
    addr: Endpoint
    state: str                # "LISTEN", "ESTABLISHED", ... ("" for udp)
    pid: int | None           # None: no process could be shown to have it open
    comm: str | None
    pod: PodRef | None        # by the process's cgroup, else by the socket's own


@dataclass(frozen=True, slots=True)
class SockEvent:
    ts_ns: int
    wall_ns: int
    netns: int
    op: str               # bind | connect | listen
    via: str              # "return": the call's own errno; "so_error": a non-blocking
                          # connect's outcome, as getsockopt(SO_ERROR) told it
    family: int
    addr: Endpoint        # the sockaddr passed in (bind: local, connect: remote)
    error: str
    error_raw: int
    fd: int
    process: Process
    pod: PodRef | None = None
    holder: PortHolder | None = None   # EADDRINUSE on bind/listen: who has the port

    kind = "sock"


# --- decode --------------------------------------------------------------------------

_SOCK_OPS = {int(o): o.name.lower() for o in SockOp}


def decode_sock(v: Fields, ctx: DecodeContext) -> SockEvent:
    ts_ns = v["hdr.ts_ns"]
    family = v["family"]
    is_async = v["op"] == SockOp.CONNECT_ASYNC
    return SockEvent(
        ts_ns=ts_ns, wall_ns=ts_ns + ctx.mono_to_wall_ns, netns=v["hdr.netns_ino"],
        op="connect" if is_async else _SOCK_OPS.get(v["op"], str(v["op"])),
        via="so_error" if is_async else "return", family=family,
        addr=Endpoint(addr(family, v["addr"]), v["port"] if family else None),
        error=errno_name(v["err"]), error_raw=v["err"], fd=v["fd"],
        process=Process(v["pid"], cstr(v["comm"]), v["cgroup_id"]))


# --- JSON record, table line, parse --------------------------------------------------

def sock_record(ev: SockEvent) -> dict[str, Any]:
    # bind/listen name the local end, connect the remote one: the fixed src/dst names
    where = "dst" if ev.op == "connect" else "src"
    rec: dict[str, Any] = {
        "kind": "sock", "time": rfc3339_ns(ev.wall_ns), "netns": ev.netns, "op": ev.op,
        "via": ev.via,
        "family": family_text(ev.family), where: endpoint(ev.addr), "error": ev.error,
        "error_raw": ev.error_raw, "fd": ev.fd, "process": process_record(ev.process),
        "pod": pod_record(ev.pod),
    }
    if ev.holder is not None:
        h = ev.holder
        rec["holder"] = {"proto": h.proto, "addr": endpoint(h.addr), "state": h.state,
                         "pid": h.pid, "comm": h.comm, "pod": pod_record(h.pod)}
    return rec


def sock_line(ev: SockEvent, labels: Labels = NO_LABELS) -> tuple[str, str]:
    text = f"{ev.op}({ep(ev.addr, labels.get('addr', ''))}) {ev.error}"
    if ev.via == "so_error":
        text += " (non-blocking, SO_ERROR)"
    text += who_text(ev.process, ev.pod, labels.get("@pod", ""))
    if ev.holder is not None:
        h = ev.holder
        pod = f"pod {labels.get('@holder') or h.pod.uid}" if h.pod else ""
        if h.pid is not None:
            text += f"; held by {h.comm or '?'}[{h.pid}]" + (f" {pod}" if pod else "")
        else:   # its pod, if known, from the socket's own cgroup
            text += "; held by a socket whose owner could not be read" + (
                f" ({pod})" if pod else "")
    return (f"fd {ev.fd}", text)


def parse_sock(rec: dict[str, Any], t: int) -> SockEvent:
    h = rec.get("holder")
    holder = None if not h else PortHolder(h["proto"], parse_endpoint(h.get("addr")),
                                           h.get("state", ""), h.get("pid"), h.get("comm"),
                                           parse_pod(h.get("pod")))
    process = parse_process(rec.get("process")) or Process(0, "", 0)
    err = rec.get("error") or ""
    return SockEvent(0, t, rec["netns"], rec["op"], rec.get("via", "return"),
                     parse_family(rec.get("family")),
                     parse_endpoint(rec.get("dst") if rec["op"] == "connect"
                                    else rec.get("src")),
                     err, rec.get("error_raw", getattr(errno, err, 0)), rec.get("fd", -1),
                     process, parse_pod(rec.get("pod")), holder)


FAMILY = Family(name="sock", model=SockEvent, record=sock_record, line=sock_line,
                parse=parse_sock, ev_kind=EvKind.SOCK, wire=SOCK, decode=decode_sock,
                map_structs=(SOCK_CALL,), c_enums=(("SOCK_OP", SockOp),))
