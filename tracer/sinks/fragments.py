"""-o jsonl lines of the kinds a node prints most (flow, tcp, drop), with the values
that repeat from line to line encoded once.

A flow line is 400-1000 bytes, most of them in its two endpoints with their
Kubernetes names (docs/events.md); the same endpoint appears in every report of its
flow at every hook, the same pod in every line of its traffic.  Building those nested
dicts for every line and encoding them again cost more than the rest of the line
(4.7 us of a replayed event's 11.6).  Here an endpoint with its names, a process, a
pod, a hook's fields and a TCP flags list are encoded once, keyed by their values (a
name by identity: the resolver hands out the same few name objects,
tracer/sinks/naming.py), and only the line's own fields are formatted per event: flow
and tcp lines as text with slots, drop lines as a dict with `orjson.Fragment`s.

The bytes are those of the canonical form, `float_free_line(add_names(event_record(ev),
ev, names))` (records.py, names.py, jsonline.py), which is what `json.dumps` writes:
- every cached part is the json module's encoding of the canonical sub-record (the
  json module's output is compositional: a value is encoded the same wherever it
  sits, and it is ASCII);
- a drop line around its fragments is orjson's, kept under jsonline.py's rule
  (printable ASCII only); any other, and any value orjson refuses, goes the canonical
  way.
tests/unit/test_jsonl_fragments.py compares the two on random events and names.
"""

from __future__ import annotations

from typing import Any

import orjson

from tracer.events.common import (
    Endpoint,
    PodRef,
    Process,
    endpoint,
    pod_record,
    process_record,
    proto_name,
    tcp_flag_names,
)
from tracer.events.drop import DropEvent, drop_record
from tracer.events.finding import Finding, FindingUpdate
from tracer.events.flow import FlowEvent
from tracer.events.nat import IPS_DST_NAT, IPS_SEEN_REPLY, NatEvent, nat_translation
from tracer.events.records import Output, event_record
from tracer.events.tcp import TcpEvent
from tracer.metadata.names import SCOPE_SERVICE, EndpointName, PodName
from tracer.pipeline.enrich import Names
from tracer.sinks.jsonline import float_free_line, json_line
from tracer.sinks.naming import add_names, name_record
from tracer.util.memo import BoundedMemo
from tracer.util.timefmt import rfc3339_ns

Fragment = orjson.Fragment
_OPTS = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
_DEL = b"\x7f"
CACHE_MAX = 4096     # entries per cache; cleared when full (a node has few endpoints)


def _json(value: Any) -> str:
    """A value as the json module writes it (ASCII)."""
    return json_line(value).decode()


# a short string field (an event name, a state) -> its JSON
_TEXTS: BoundedMemo[str | None, str] = BoundedMemo(CACHE_MAX, _json)
_text = _TEXTS.__getitem__

# wall time -> its text: a flow's first and last times repeat in each of its reports
_TIMES: BoundedMemo[int, str] = BoundedMemo(CACHE_MAX, rfc3339_ns)
_time = _TIMES.__getitem__


# every value of the flags byte (twice per TCP flow line)
_FLAG_TEXT = tuple(_json(tcp_flag_names(f)) for f in range(256))
_FLAGS = tuple(Fragment(text.encode()) for text in _FLAG_TEXT)


def _flags(flags: int) -> Any:
    return _FLAGS[flags] if 0 <= flags < 256 else tcp_flag_names(flags)


def _flag_text(flags: int) -> str:
    return _FLAG_TEXT[flags] if 0 <= flags < 256 else _json(tcp_flag_names(flags))


# (ip, port, id(name)) -> (name, its JSON, the same as a fragment): the name is kept
# so that its id is not reused while the entry lives
_ENDS: BoundedMemo[tuple[Any, Any, int], tuple[Any, str, Fragment]] = BoundedMemo(CACHE_MAX)


# id(endpoint) -> (endpoint, name, its JSON): the recording's reader hands out one
# Endpoint object per value, so most look-ups need no key built and hashed (the entry
# holds the endpoint: its id is not reused while the entry lives).  Events decoded
# live carry new endpoints: they miss here and take _ENDS.
_END_TEXTS: BoundedMemo[int, tuple[Endpoint, Any, str]] = BoundedMemo(CACHE_MAX)


def _end_text(ep: Endpoint, name: Any) -> str:
    hit = _END_TEXTS.get(id(ep))
    if hit is not None and hit[1] is name:
        return hit[2]
    return _END_TEXTS.keep(id(ep), (ep, name, _end(ep, name)[1]))[2]


def _end(ep: Endpoint, name: Any) -> tuple[Any, str, Fragment]:
    key = (ep.ip, ep.port, id(name))
    hit = _ENDS.get(key)
    if hit is not None and hit[0] is name:
        return hit
    rec = endpoint(ep)
    if isinstance(name, EndpointName):
        rec.update(name_record(name))
    text = float_free_line(rec)
    return _ENDS.keep(key, (name, text.decode(), Fragment(text)))


_PROCESSES: BoundedMemo[tuple[int, str, int], str] = BoundedMemo(CACHE_MAX)


def _process(p: Process | None) -> str:
    if p is None:
        return "null"
    key = (p.pid, p.comm, p.cgroup_id)
    text = _PROCESSES.get(key)
    return _PROCESSES.keep(key, _json(process_record(p))) if text is None else text


_PODS: BoundedMemo[tuple[Any, ...], tuple[Any, str]] = BoundedMemo(CACHE_MAX)


def _pod(ref: PodRef | None, name: Any) -> str:
    if ref is None:
        return "null"
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
    return _PODS.keep(key, (name, _json(rec)))[1]


# --- flow and tcp: text with slots, records.py's field order --------------------------
#
# A flow's hook fields are the same for every report of every flow at that hook, its
# endpoints repeat in every report: they come from caches, counters and times are
# formatted in.  Every slot holds JSON as the json module writes it (ASCII; ints with
# the format `d`, which is int.__repr__ as in json), so the line needs no encoder and
# no check.

def _hook(key: tuple[Any, ...]) -> str:
    netns, ifname, ifindex, role, direction, report, proto, family = key
    text = (f'"netns":{_json(netns)},"ifname":{_json(ifname or None)},'
            f'"ifindex":{_json(ifindex)},"role":{_json(role or None)},'
            f'"direction":{_json(direction)},"report":{_json(report)},'
            f'"proto":{_json(proto_name(proto))},"family":{_json(f"ipv{family}")}')
    return text


def _tail(proto: int, flags_seen: int, flags: int, marks: tuple[str, ...],
          icmp_type: int | None, icmp_code: int | None) -> str:
    tail = ""
    if proto == 6:
        tail = (f',"tcp_flags":{_flag_text(flags_seen)}'
                f',"packet_tcp_flags":{_flag_text(flags)}')
    if marks:
        tail += ',"marks":' + _json(list(marks))
    if icmp_type is not None:
        tail += ',"icmp":' + _json({"type": icmp_type, "code": icmp_code})
    return tail


def _hook_and_tail(key: tuple[Any, ...]) -> tuple[str, str]:
    return _hook(key[:8]), _tail(key[6], *key[8:])


# a flow's fields other than its endpoints, counters and times -> (the JSON of those
# before the endpoints, of those after the times): one key, one look-up
_HOOKS: BoundedMemo[tuple[Any, ...], tuple[str, str]] = BoundedMemo(CACHE_MAX,
                                                                  _hook_and_tail)


def _flow_line(ev: FlowEvent, names: Names | None) -> bytes:
    src, dst = names if names is not None else (None, None)
    hook, tail = _HOOKS[ev.netns, ev.ifname, ev.ifindex, ev.role, ev.direction, ev.report,
                        ev.proto, ev.family, ev.tcp_flags_seen, ev.tcp_flags, ev.marks,
                        ev.icmp_type, ev.icmp_code]
    # an f-string: % formatting parses its template every time, twice the cost; ints
    # without a format spec (`{n}` is int.__repr__ for an int, as json writes it, and
    # half the cost of `{n:d}`)
    return (f'{{"kind":"flow","time":"{rfc3339_ns(ev.wall_ns)}",{hook},'
            f'"src":{_end_text(ev.src, src)},"dst":{_end_text(ev.dst, dst)},'
            f'"packets":{ev.packets},"bytes":{ev.bytes},'
            f'"first":"{_time(ev.first_wall_ns)}","last":"{_time(ev.last_wall_ns)}"'
            f'{tail}}}').encode()


# id(process), id(pod) -> (it, [the pod's name,] its JSON): as _END_TEXTS, for the
# reader's interned structs; live events miss and take _PROCESSES, _PODS
_PROCESS_TEXTS: BoundedMemo[int, tuple[Any, str]] = BoundedMemo(CACHE_MAX)
_POD_TEXTS: BoundedMemo[int, tuple[Any, Any, str]] = BoundedMemo(CACHE_MAX)


def _process_text(p: Process | None) -> str:
    hit = _PROCESS_TEXTS.get(id(p))
    if hit is not None:     # the entry holds p: no other object has its id
        return hit[1]
    return _PROCESS_TEXTS.keep(id(p), (p, _process(p)))[1]


def _pod_text(ref: PodRef | None, name: Any) -> str:
    hit = _POD_TEXTS.get(id(ref))
    if hit is not None and hit[1] is name:
        return hit[2]
    return _POD_TEXTS.keep(id(ref), (ref, name, _pod(ref, name)))[2]


def _tcp_line(ev: TcpEvent, names: Names | None) -> bytes:
    src, dst, pod = names if names is not None else (None, None, None)
    duration = "null" if ev.duration_ns is None else ev.duration_ns
    return (f'{{"kind":"tcp","time":"{rfc3339_ns(ev.wall_ns)}","netns":{ev.netns},'
            f'"event":{_text(ev.event)},"family":{_FAMILIES[ev.family]},'
            f'"src":{_end_text(ev.src, src)},"dst":{_end_text(ev.dst, dst)},'
            f'"state":{_text(ev.state)},"old_state":{_text(ev.old_state)},'
            f'"error":{_text(ev.error)},"error_raw":{ev.error_raw},'
            f'"duration_ns":{duration},"syn_retransmits":{ev.syn_retransmits},'
            f'"process":{_process_text(ev.process)},"pod":{_pod_text(ev.pod, pod)}}}').encode()


# a family number -> its JSON (0: not parsed, null)
_FAMILIES: BoundedMemo[int, str] = BoundedMemo(
    CACHE_MAX, lambda family: _json(f"ipv{family}" if family else None))

# the conntrack status bits -> the JSON of the translation list and of "replied"
_STATUS: BoundedMemo[int, str] = BoundedMemo(
    CACHE_MAX, lambda status: f'"translation":{_json(list(nat_translation(status)))},'
                              f'"replied":{_json(bool(status & IPS_SEEN_REPLY))}')

# id(name) -> (name, the JSON of what it adds to a nat line: "service", "backend")
_NAT_NAMES: BoundedMemo[tuple[str, int], tuple[Any, str]] = BoundedMemo(CACHE_MAX)


def _nat_name(what: str, name: Any) -> str:
    hit = _NAT_NAMES.get((what, id(name)))
    if hit is not None and hit[0] is name:
        return hit[1]
    text = ""
    if what == "service" and isinstance(name, EndpointName) \
            and name.scope == SCOPE_SERVICE and name.service is not None:
        text = ',"service":' + _json(name.service.record())
    elif what == "backend" and isinstance(name, EndpointName) and name.pod is not None:
        text = ',"backend":' + _json({**name.pod.record(), "node": name.node})
    return _NAT_NAMES.keep((what, id(name)), (name, text))[1]


def _nat_line(ev: NatEvent, names: Names | None) -> bytes:
    osrc, odst, rsrc, rdst = names if names is not None else (None, None, None, None)
    tail = ""
    if ev.manip is not None:
        tail += ',"manip":' + _text(ev.manip)
    if ev.ct_event is not None:
        tail += ',"ct_event":' + _text(ev.ct_event)
    if names is not None:
        tail += _nat_name("service", odst)
        if ev.status & IPS_DST_NAT:    # "dnat" in ev.translation, without the tuple
            tail += _nat_name("backend", rsrc)
    return (f'{{"kind":"nat","time":"{rfc3339_ns(ev.wall_ns)}","netns":{ev.netns},'
            f'"proto":{_text(proto_name(ev.proto))},"family":{_text(f"ipv{ev.family}")},'
            f'"orig":{{"src":{_end_text(ev.orig_src, osrc)},'
            f'"dst":{_end_text(ev.orig_dst, odst)}}},'
            f'"reply":{{"src":{_end_text(ev.reply_src, rsrc)},'
            f'"dst":{_end_text(ev.reply_dst, rdst)}}},'
            f'{_STATUS[ev.status]},"origin":{_text(ev.origin)}{tail}}}').encode()


# --- drop: a dict with fragments, encoded by orjson -----------------------------------

def _drop(ev: DropEvent, names: Names | None) -> dict[str, Any]:
    src, dst = names if names is not None else (None, None)
    return drop_record(ev, _end(ev.src, src)[2], _end(ev.dst, dst)[2], _flags)


def canonical_line(ev: Output, names: Names | None) -> bytes:
    """The line as the family's record (tracer/events/records.py) and names.py define
    it (no newline)."""
    if isinstance(ev, (Finding, FindingUpdate)):
        return json_line(event_record(ev))
    return float_free_line(add_names(event_record(ev), ev, names))


def jsonl_line(ev: Output, names: Names | None) -> bytes:
    """canonical_line(ev, names), byte for byte, from cached parts where it can.

    The families a node prints most have a fast line here (flow, tcp, nat, drop: 1.2 us
    a line against 6.6 the canonical way, for a recording's mix without names), checked by
    tests/unit/test_jsonl_fragments.py; any other type takes the canonical way, so a
    new family needs nothing here unless its lines are frequent.  Identity tests in
    order of frequency: cheaper per line than a table look-up and a call."""
    if type(ev) is FlowEvent and ev.aggregated is None:   # folded ones: rare
        return _flow_line(ev, names)
    if type(ev) is TcpEvent:
        return _tcp_line(ev, names)
    if type(ev) is NatEvent:
        return _nat_line(ev, names)
    if type(ev) is DropEvent:
        try:
            out = orjson.dumps(_drop(ev, names), option=_OPTS)
        except orjson.JSONEncodeError:
            pass
        else:
            if out.isascii() and _DEL not in out:
                return out
    return canonical_line(ev, names)
