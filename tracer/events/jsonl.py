"""Events from the JSON lines `nodetrace trace -o jsonl` printed (docs/events.md), back
into the decoded-event model, so diagnosis (and anything after the decoder) runs on
them as it runs live.  Fields the JSON form does not carry (the monotonic stamp, raw
kernel values that were not printed) are zero.

Hostile input like a recording: a line that is not JSON, not an object, of an unknown
kind or with fields of the wrong type is skipped and counted, never raised.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from tracer.events.model import (
    IPS_DST_NAT,
    IPS_SEEN_REPLY,
    IPS_SRC_NAT,
    PROTO_NAMES,
    TCP_FLAG_NAMES,
    DropEvent,
    Endpoint,
    Event,
    FlowEvent,
    Forwarding,
    IcmpEvent,
    LostEvent,
    NatEvent,
    NeighEvent,
    PodRef,
    PortHolder,
    Process,
    RouteEvent,
    SockEvent,
    TcpEvent,
)
from tracer.util.timefmt import parse_rfc3339 as wall_ns

_PROTOS = {v: k for k, v in PROTO_NAMES.items()}
_FLAGS = {name: bit for bit, name in TCP_FLAG_NAMES}


def _ep(d: Any) -> Endpoint:
    d = d or {}
    return Endpoint(d.get("ip"), d.get("port"))


def _proto(v: Any) -> int:
    if v is None:
        return 0
    return _PROTOS[v] if v in _PROTOS else int(v)


def _family(v: Any) -> int:
    return int(str(v)[3:]) if v else 0


def _flags(names: Any) -> int:
    return sum(_FLAGS.get(n, 0) for n in names or [])


def _fwd(d: Any) -> Forwarding | None:
    return None if not d else Forwarding(d["ip_forward"], d.get("rp_filter"), d.get("iface"))


def _process(d: Any) -> Process | None:
    return None if not d else Process(d["pid"], d["comm"], d.get("cgroup_id", 0))


def _pod(d: Any) -> PodRef | None:
    return None if not d else PodRef(d["uid"], d.get("container_id"), d.get("runtime"),
                                      d.get("qos"), d.get("cgroup", ""))


def _icmp(d: Any) -> tuple[int | None, int | None]:
    return (d.get("type"), d.get("code")) if d else (None, None)


def event_of(rec: dict[str, Any]) -> Event | None:
    """One record as the model's event; None for kinds that are not events (findings)."""
    kind = rec["kind"]
    t = wall_ns(rec["time"])
    if kind == "drop":
        it, ic = _icmp(rec.get("icmp"))
        return DropEvent(0, t, rec["netns"], rec.get("ifindex") or 0, rec.get("ifname") or "",
                         rec["reason"], rec.get("reason_raw", 0), rec.get("location", ""), 0,
                         _family(rec.get("family")), _proto(rec.get("proto")),
                         _ep(rec.get("src")), _ep(rec.get("dst")), _flags(rec.get("tcp_flags")),
                         it, ic, rec.get("len", 0), 0, rec.get("count", 1),
                         tuple(rec.get("marks") or ()), _fwd(rec.get("forwarding")))
    if kind == "flow":
        it, ic = _icmp(rec.get("icmp"))
        return FlowEvent(0, t, rec["netns"], rec.get("ifindex") or 0, rec.get("ifname") or "",
                         rec["direction"], rec["report"], _family(rec.get("family")),
                         _proto(rec.get("proto")), _ep(rec.get("src")), _ep(rec.get("dst")),
                         _flags(rec.get("packet_tcp_flags")), _flags(rec.get("tcp_flags")),
                         it, ic, rec["packets"], rec["bytes"], wall_ns(rec["first"]),
                         wall_ns(rec["last"]), rec.get("role") or "",
                         tuple(rec.get("marks") or ()))
    if kind == "nat":
        tr = rec.get("translation") or []
        status = ((IPS_DST_NAT if "dnat" in tr else 0) | (IPS_SRC_NAT if "snat" in tr else 0)
                  | (IPS_SEEN_REPLY if rec.get("replied") else 0))
        return NatEvent(0, t, rec["netns"], _family(rec.get("family")), _proto(rec["proto"]),
                        _ep(rec["orig"]["src"]), _ep(rec["orig"]["dst"]),
                        _ep(rec["reply"]["src"]), _ep(rec["reply"]["dst"]), status,
                        rec.get("origin", "conntrack"), rec.get("manip"), rec.get("ct_event"))
    if kind == "lost":
        return LostEvent(t, rec["layer"], rec["count"], rec["total"])
    if kind == "route":
        return RouteEvent(0, t, rec["netns"], _family(rec.get("family")),
                          _proto(rec.get("proto")), _ep(rec.get("src")), _ep(rec.get("dst")),
                          rec.get("gateway"), rec["table"], rec["error"],
                          rec.get("error_raw", 0), rec.get("oif", 0), rec.get("iif", 0),
                          rec.get("count", 1), _fwd(rec.get("forwarding")))
    if kind == "neigh":
        return NeighEvent(0, t, rec["netns"], _family(rec.get("family")), rec.get("addr"),
                          rec.get("ifindex") or 0, rec.get("ifname") or "", rec["event"],
                          rec["state"], rec.get("old_state"), rec.get("probes", 0))
    if kind == "icmp":
        icmp = rec.get("icmp") or {}
        return IcmpEvent(0, t, rec["netns"], icmp.get("type", 0), icmp.get("code", 0),
                         rec.get("meaning", ""), _family(rec.get("family")),
                         _proto(rec.get("proto")), _ep(rec.get("src")), _ep(rec.get("dst")),
                         rec.get("ifindex") or 0, rec.get("ifname") or "", rec.get("len", 0),
                         rec.get("via", "icmp_send"), rec.get("direction"), rec.get("mtu"),
                         rec.get("count", 1))
    if kind == "tcp":
        return TcpEvent(0, t, rec["netns"], rec["event"], _family(rec.get("family")),
                        _ep(rec.get("src")), _ep(rec.get("dst")), rec.get("state", ""),
                        rec.get("old_state"), rec.get("error"), rec.get("error_raw", 0),
                        rec.get("duration_ns"), rec.get("syn_retransmits", 0),
                        _process(rec.get("process")), _pod(rec.get("pod")))
    if kind == "sock":
        h = rec.get("holder")
        holder = None if not h else PortHolder(h["proto"], _ep(h.get("addr")), h.get("state", ""),
                                               h.get("pid"), h.get("comm"), _pod(h.get("pod")))
        process = _process(rec.get("process")) or Process(0, "", 0)
        err = rec.get("error") or ""
        return SockEvent(0, t, rec["netns"], rec["op"], rec.get("via", "return"),
                         _family(rec.get("family")),
                         _ep(rec.get("dst") if rec["op"] == "connect" else rec.get("src")),
                         err, rec.get("error_raw", getattr(errno, err, 0)), rec.get("fd", -1),
                         process, _pod(rec.get("pod")), holder)
    return None


class JsonlEvents:
    """Iterate the events of a JSON-lines file; `skipped` counts what was not usable."""

    def __init__(self, lines: Iterable[str]) -> None:
        self.lines = lines
        self.skipped = 0

    @classmethod
    def open(cls, path: Path) -> JsonlEvents:
        return cls(path.read_text(errors="replace").splitlines())

    def __iter__(self) -> Iterator[Event]:
        for line in self.lines:
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                ev = event_of(rec) if isinstance(rec, dict) else None
            except (ValueError, KeyError, TypeError, AttributeError, IndexError):
                self.skipped += 1
                continue
            if ev is None:
                if not (isinstance(rec, dict) and rec.get("kind") == "finding"):
                    self.skipped += 1
                continue
            yield ev
