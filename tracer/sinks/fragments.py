"""-o jsonl lines of the kinds a node prints most (flow, drop, tcp), with the values
that repeat from line to line encoded once and embedded as `orjson.Fragment`.

A flow line is 400-1000 bytes, most of them in its two endpoints with their
Kubernetes names (docs/events.md); the same endpoint appears in every report of its
flow at every hook, the same pod in every line of its traffic.  Building those nested
dicts for every line and encoding them again cost more than the rest of the line.
Here an endpoint with its names, a process, a pod and a TCP flags list are encoded
once, keyed by their values (a name by identity: the resolver hands out the same few
name objects, tracer/sinks/names.py), and only the line's own fields are encoded per
event.

The bytes are those of the canonical form, `float_free_line(add_names(event_record(ev),
ev, names))` (records.py, names.py, jsonline.py), which is what `json.dumps` writes:
- every fragment is written by `float_free_line` from the canonical sub-record, so it
  is the json module's encoding of that value (the json module's output is
  compositional: a nested value is encoded the same wherever it sits);
- the line around the fragments is orjson's, kept under jsonline.py's rule (printable
  ASCII only); any other line, and any value orjson refuses, goes the canonical way.
tests/unit/test_jsonl_fragments.py compares the two on random events and names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from tracer.diagnosis.finding import Finding
from tracer.metadata.names import EndpointName, PodName
from tracer.model import (
    DropEvent,
    Endpoint,
    FlowEvent,
    PodRef,
    Process,
    TcpEvent,
    proto_name,
    tcp_flag_names,
)
from tracer.pipeline.enrich import Names
from tracer.sinks.jsonline import float_free_line, json_line
from tracer.sinks.names import add_names, name_record
from tracer.sinks.records import (
    Output,
    endpoint,
    event_record,
    forwarding_record,
    pod_record,
    process_record,
)
from tracer.timefmt import rfc3339_ns

Fragment = orjson.Fragment
_OPTS = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
_DEL = b"\x7f"
CACHE_MAX = 4096     # entries per cache; cleared when full (a node has few endpoints)


def _fragment(value: Any) -> Fragment:
    return Fragment(float_free_line(value))


# every value of the flags byte (twice per TCP flow line)
_FLAGS = tuple(_fragment(tcp_flag_names(f)) for f in range(256))


def _flags(flags: int) -> Any:
    return _FLAGS[flags] if 0 <= flags < 256 else tcp_flag_names(flags)


# (ip, port, id(name)) -> (name, fragment): the name is kept so that its id is not
# reused while the entry lives
_ENDS: dict[tuple[Any, Any, int], tuple[Any, Fragment]] = {}


def _end(ep: Endpoint, name: Any) -> Fragment:
    key = (ep.ip, ep.port, id(name))
    hit = _ENDS.get(key)
    if hit is not None and hit[0] is name:
        return hit[1]
    rec = endpoint(ep)
    if isinstance(name, EndpointName):
        rec.update(name_record(name))
    frag = _fragment(rec)
    if len(_ENDS) >= CACHE_MAX:
        _ENDS.clear()
    _ENDS[key] = (name, frag)
    return frag


_PROCESSES: dict[tuple[int, str, int], Fragment] = {}


def _process(p: Process | None) -> Any:
    if p is None:
        return None
    key = (p.pid, p.comm, p.cgroup_id)
    frag = _PROCESSES.get(key)
    if frag is None:
        if len(_PROCESSES) >= CACHE_MAX:
            _PROCESSES.clear()
        frag = _PROCESSES[key] = _fragment(process_record(p))
    return frag


_PODS: dict[tuple[Any, ...], tuple[Any, Fragment]] = {}


def _pod(ref: PodRef | None, name: Any) -> Any:
    if ref is None:
        return None
    key = (ref.uid, ref.container_id, ref.runtime, ref.qos, ref.cgroup, id(name))
    hit = _PODS.get(key)
    if hit is not None and hit[0] is name:
        return hit[1]
    rec = pod_record(ref)
    assert rec is not None
    if isinstance(name, EndpointName):
        rec.update(name_record(name))
    elif isinstance(name, PodName):
        rec.update(namespace=name.namespace, name=name.name, hostNetwork=name.host_network)
    frag = _fragment(rec)
    if len(_PODS) >= CACHE_MAX:
        _PODS.clear()
    _PODS[key] = (name, frag)
    return frag


# wall time -> its text: a flow's first and last times repeat in each of its reports
_TIMES: dict[int, str] = {}


def _time(wall_ns: int) -> str:
    text = _TIMES.get(wall_ns)
    if text is None:
        if len(_TIMES) >= CACHE_MAX:
            _TIMES.clear()
        text = _TIMES[wall_ns] = rfc3339_ns(wall_ns)
    return text


# --- the kinds: records.py's field order, with fragments for the repeated values ------

def _flow(ev: FlowEvent, names: Names | None) -> dict[str, Any]:
    src, dst = names if names is not None else (None, None)
    rec: dict[str, Any] = {
        "kind": "flow",
        "time": rfc3339_ns(ev.wall_ns),
        "netns": ev.netns,
        "ifname": ev.ifname or None,
        "ifindex": ev.ifindex,
        "role": ev.role or None,
        "direction": ev.direction,
        "report": ev.report,
        "proto": proto_name(ev.proto),
        "family": f"ipv{ev.family}",
        "src": _end(ev.src, src),
        "dst": _end(ev.dst, dst),
        "packets": ev.packets,
        "bytes": ev.bytes,
        "first": _time(ev.first_wall_ns),
        "last": _time(ev.last_wall_ns),
    }
    if ev.proto == 6:
        rec["tcp_flags"] = _flags(ev.tcp_flags_seen)
        rec["packet_tcp_flags"] = _flags(ev.tcp_flags)
    if ev.marks:
        rec["marks"] = list(ev.marks)
    if ev.icmp_type is not None:
        rec["icmp"] = {"type": ev.icmp_type, "code": ev.icmp_code}
    return rec


def _drop(ev: DropEvent, names: Names | None) -> dict[str, Any]:
    src, dst = names if names is not None else (None, None)
    rec: dict[str, Any] = {
        "kind": "drop",
        "time": rfc3339_ns(ev.wall_ns),
        "netns": ev.netns,
        "ifname": ev.ifname or None,
        "ifindex": ev.ifindex,
        "proto": proto_name(ev.proto) if ev.family else None,
        "family": f"ipv{ev.family}" if ev.family else None,
        "src": _end(ev.src, src),
        "dst": _end(ev.dst, dst),
        "reason": ev.reason,
        "reason_raw": ev.reason_raw,
        "location": ev.location,
        "len": ev.length,
        "count": ev.count,
    }
    if ev.proto == 6:
        rec["tcp_flags"] = _flags(ev.tcp_flags)
    if ev.icmp_type is not None:
        rec["icmp"] = {"type": ev.icmp_type, "code": ev.icmp_code}
    if ev.marks:
        rec["marks"] = list(ev.marks)
    if ev.forwarding is not None:
        rec["forwarding"] = forwarding_record(ev.forwarding)
    return rec


def _tcp(ev: TcpEvent, names: Names | None) -> dict[str, Any]:
    src, dst, pod = names if names is not None else (None, None, None)
    return {"kind": "tcp", "time": rfc3339_ns(ev.wall_ns), "netns": ev.netns,
            "event": ev.event, "family": f"ipv{ev.family}" if ev.family else None,
            "src": _end(ev.src, src), "dst": _end(ev.dst, dst), "state": ev.state,
            "old_state": ev.old_state, "error": ev.error, "error_raw": ev.error_raw,
            "duration_ns": ev.duration_ns, "syn_retransmits": ev.syn_retransmits,
            "process": _process(ev.process), "pod": _pod(ev.pod, pod)}


_KINDS: dict[type, Callable[[Any, Names | None], dict[str, Any]]] = {
    FlowEvent: _flow, DropEvent: _drop, TcpEvent: _tcp}


def canonical_line(ev: Output, names: Names | None) -> bytes:
    """The line as records.py and names.py define it (no newline)."""
    if isinstance(ev, Finding):
        return json_line(event_record(ev))
    return float_free_line(add_names(event_record(ev), ev, names))


def jsonl_line(ev: Output, names: Names | None) -> bytes:
    """canonical_line(ev, names), byte for byte, from cached parts where it can."""
    kind = _KINDS.get(type(ev))
    if kind is not None:
        try:
            out = orjson.dumps(kind(ev, names), option=_OPTS)
        except orjson.JSONEncodeError:
            pass
        else:
            if out.isascii() and _DEL not in out:
                return out
    return canonical_line(ev, names)
