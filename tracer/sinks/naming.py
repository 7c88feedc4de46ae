"""Kubernetes names (the enrich stage's NamedBatch) added to event records and table
lines: beside the raw fields, with the fixed names of docs/events.md."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tracer.events.finding import Finding, FindingUpdate
from tracer.events.model import Event, NatEvent, SockEvent
from tracer.metadata.names import SCOPE_POD, SCOPE_SERVICE, EndpointName, PodName
from tracer.pipeline.enrich import NAMED_FIELDS, Names

if TYPE_CHECKING:
    from tracer.events.records import Output

_NAT_PATHS = {"orig_src": ("orig", "src"), "orig_dst": ("orig", "dst"),
              "reply_src": ("reply", "src"), "reply_dst": ("reply", "dst")}


def _target(rec: dict[str, Any], ev: Event, field: str) -> dict[str, Any] | None:
    if field in _NAT_PATHS:
        outer, inner = _NAT_PATHS[field]
        got: dict[str, Any] | None = (rec.get(outer) or {}).get(inner)
        return got
    if field == "addr":
        assert isinstance(ev, SockEvent)
        field = "dst" if ev.op == "connect" else "src"
    if field == "@holder":
        holder = rec.get("holder")
        return holder.get("pod") if holder else None
    if field == "@pod":
        field = "pod"
    target = rec.get(field)
    return target if isinstance(target, dict) else None


# id(name) -> (name, its record): the resolver hands out the same few name objects
# again and again (one per pod, Service, node; EXTERNAL), and a record costs 0.5 us.
# The record's nested dicts are shared by the lines that use them: sinks only encode.
_RECORDS: dict[int, tuple[EndpointName, dict[str, Any]]] = {}
_RECORDS_MAX = 4096
_SRC_DST = frozenset(t for t, fields in NAMED_FIELDS.items() if fields == ("src", "dst"))


def name_record(name: EndpointName) -> dict[str, Any]:
    hit = _RECORDS.get(id(name))
    if hit is not None and hit[0] is name:
        return hit[1]
    if len(_RECORDS) >= _RECORDS_MAX:
        _RECORDS.clear()
    rec = name.record()
    _RECORDS[id(name)] = (name, rec)
    return rec


def add_names(rec: dict[str, Any], ev: Output, names: Names | None) -> dict[str, Any]:
    if names is None or isinstance(ev, (Finding, FindingUpdate)):
        return rec
    if type(ev) in _SRC_DST:       # nearly every event: the flows
        src, dst = names
        if type(src) is EndpointName:
            rec["src"].update(name_record(src))
        if type(dst) is EndpointName:
            rec["dst"].update(name_record(dst))
        return rec
    for field, name in zip(NAMED_FIELDS[type(ev)], names, strict=True):
        if name is None:
            continue
        target = _target(rec, ev, field)
        if target is None:
            continue
        if isinstance(name, EndpointName):
            target.update(name_record(name))
        elif isinstance(name, PodName):  # a process's pod: its names beside the uid
            target.update(namespace=name.namespace, name=name.name,
                          hostNetwork=name.host_network)
    if isinstance(ev, NatEvent):
        svc, backend = names[1], names[2]
        if isinstance(svc, EndpointName) and svc.scope == SCOPE_SERVICE \
                and svc.service is not None:
            rec["service"] = svc.service.record()
        if "dnat" in ev.translation and isinstance(backend, EndpointName) \
                and backend.pod is not None:
            rec["backend"] = {**backend.pod.record(), "node": backend.node}
    return rec


def endpoint_label(name: Any) -> str:
    """`default/web-a`, `svc default/web`, `node node1`; "" when nothing is known."""
    if isinstance(name, EndpointName):
        return name.label()
    return ""


def pod_label(name: Any) -> str:
    return str(name) if isinstance(name, PodName) else ""


__all__ = ["SCOPE_POD", "add_names", "endpoint_label", "name_record", "pod_label"]
