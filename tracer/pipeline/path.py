"""Marks on a packet's path that are findings by themselves.

`untranslated-pod-source`: a flow leaves the node through an uplink with a pod address
as its source, to a destination outside the pod and service networks.  Replies to a
pod address cannot come back from outside the cluster: this is the shape of a missing
MASQUERADE (or of an overlay/route that is not there).  Only for connections the pod
opened: a pod answering a client outside (a NodePort SNATed by another node) replies
with its own address, through conntrack, as it must; such a flow's reverse came in
first, or its first TCP packet is a SYN|ACK.

`syn-retransmits`: a TCP flow that has carried only SYNs, more than one: the handshake
is being retried and nothing has answered on this hook.

`dnat-endpoint-dropped`: a packet to an endpoint the node just chose by DNAT (a
Service backend) was dropped: the translation happened, the backend is unreachable.
A socket purging its queues as it closes (QUEUE_PURGE) is the endpoint reached, not lost.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from tracer.events.model import IPS_DST_NAT, DropEvent, Event, FlowEvent, NatEvent
from tracer.node.interfaces import ROLE_UPLINK
from tracer.pipeline.stage import PassStage
from tracer.util import frozen

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

UNTRANSLATED_POD_SOURCE = "untranslated-pod-source"
SYN_RETRANSMITS = "syn-retransmits"
DNAT_ENDPOINT_DROPPED = "dnat-endpoint-dropped"
TCP_SYN, TCP_ACK = 0x02, 0x10
ENDPOINT_REACHED_REASONS = frozenset({"QUEUE_PURGE"})
MAX_INBOUND = 65536
FlowTuple = tuple[int, str | None, int | None, str | None, int | None]
DNAT_MEMORY_NS = 120 * 1_000_000_000   # how long a DNAT choice is remembered
MAX_DNAT_ENDPOINTS = 65536
T = TypeVar("T")
E = TypeVar("E", FlowEvent, DropEvent)


def _marks_replacer(cls: type[T]) -> Callable[[T, tuple[str, ...]], T]:
    """dataclasses.replace(ev, marks=...) without its per-call field walk and the
    frozen __init__ (a third of the flows of the bench's recording get a mark): a copy
    through the plain slotted twin (tracer/util/frozen.py), one specialised slot read and
    write per field (0.25 us for a flow, 0.7 with attrgetter and the twin's __init__).
    The code is generated from the dataclass's own field names, as dataclasses does."""
    names = [f.name for f in dataclasses.fields(cls)]   # type: ignore[arg-type]
    plain = frozen.twin(cls)
    if plain is None:
        return lambda ev, marks: dataclasses.replace(ev, marks=marks)  # type: ignore
    body = "".join(f"    o.{n} = ev.{n}\n" for n in names if n != "marks")
    code = ("def with_marks(ev, marks):\n    o = new(plain)\n" + body
            + "    o.marks = marks\n    o.__class__ = cls\n    return o\n")
    scope: dict[str, Any] = {"new": object.__new__, "plain": plain, "cls": cls}
    exec(code, scope)   # the field names of our own model, nothing else
    return scope["with_marks"]  # type: ignore[no-any-return]


_REPLACERS: dict[type, Callable[[Any, tuple[str, ...]], Any]] = {
    cls: _marks_replacer(cls) for cls in (FlowEvent, DropEvent)}

_WITH_FLOW_MARKS = _REPLACERS[FlowEvent]


def _with_marks(ev: E, marks: tuple[str, ...]) -> E:
    return _REPLACERS[type(ev)](ev, marks)  # type: ignore[no-any-return]


class PathMarker(PassStage):
    name = "path-marks"

    def __init__(self, pod_networks: Iterable[Network],
                 service_networks: Iterable[Network] = ()) -> None:
        self.pod_networks = tuple(pod_networks)
        self.cluster_networks = self.pod_networks + tuple(service_networks)
        # (endpoint ip, port) -> wall time it was last chosen by DNAT
        self._dnat_endpoints: dict[tuple[str | None, int | None], int] = {}
        # tuples that came in from outside, reversed: what a reply to them looks like
        self._inbound: dict[FlowTuple, None] = {}
        # (ip, networks) -> inside: parsing an address costs more than the rest of a
        # flow's marks, and a node sees few distinct addresses (bounded all the same)
        self._inside_cache: dict[tuple[str, int], bool] = {}
        # (src ip, dst ip) -> src in a pod network and dst outside the cluster
        self._pair_cache: dict[tuple[str | None, str | None], bool] = {}

    def _inside(self, ip: str | None, nets: Sequence[Network]) -> bool:
        if ip is None:
            return False
        key = (ip, id(nets))
        hit = self._inside_cache.get(key)
        if hit is None:
            addr = ipaddress.ip_address(ip)
            hit = any(addr in net for net in nets if net.version == addr.version)
            if len(self._inside_cache) >= MAX_DNAT_ENDPOINTS:
                self._inside_cache.clear()
            self._inside_cache[key] = hit
        return hit

    def _forget_before(self, wall_ns: int) -> None:
        self._dnat_endpoints = {k: t for k, t in self._dnat_endpoints.items() if t >= wall_ns}
        if len(self._dnat_endpoints) > MAX_DNAT_ENDPOINTS:  # still too many: oldest go
            newest = sorted(self._dnat_endpoints.items(), key=lambda kv: kv[1])
            self._dnat_endpoints = dict(newest[-MAX_DNAT_ENDPOINTS // 2:])

    def _is_reply(self, ev: FlowEvent) -> bool:
        key = (ev.proto, ev.src.ip, ev.src.port, ev.dst.ip, ev.dst.port)
        if ev.report == "new" and ev.proto == 6 and ev.tcp_flags & (TCP_SYN | TCP_ACK) == \
                TCP_SYN | TCP_ACK:
            self._inbound[key] = None   # its later reports are replies too
        return key in self._inbound

    def _pod_to_outside(self, src_ip: str | None, dst_ip: str | None) -> bool:
        """A pod's address to one outside the cluster: one look-up per uplink flow
        where the two address checks take two."""
        key = (src_ip, dst_ip)
        hit = self._pair_cache.get(key)
        if hit is None:
            hit = self._inside(src_ip, self.pod_networks) \
                and not self._inside(dst_ip, self.cluster_networks)
            if len(self._pair_cache) >= MAX_DNAT_ENDPOINTS:
                self._pair_cache.clear()
            self._pair_cache[key] = hit
        return hit

    def _flow_marks(self, ev: FlowEvent) -> tuple[str, ...]:
        # Nearly every flow is a pod's veth hook with no retried SYN: one test of the
        # direction, one of the role, one of the flags decide it (0.1 us a flow; the
        # marks of a third of the bench's flows took a generator and a list, 0.7 us).
        untranslated = False
        direction = ev.direction
        if direction == "ingress":
            if ev.report == "new":
                self._inbound[(ev.proto, ev.dst.ip, ev.dst.port, ev.src.ip, ev.src.port)] = None
                if len(self._inbound) > MAX_INBOUND:   # oldest first (insertion order)
                    for key in list(self._inbound)[:MAX_INBOUND // 2]:
                        del self._inbound[key]
        elif ev.role == ROLE_UPLINK and direction == "egress":
            src, dst = ev.src, ev.dst
            untranslated = self._pod_to_outside(src.ip, dst.ip) and not self._is_reply(ev)
        retried = ev.tcp_flags_seen == TCP_SYN and ev.proto == 6 and ev.packets >= 2
        if not (untranslated or retried):
            return ()
        if untranslated:
            marks: tuple[str, ...] = (UNTRANSLATED_POD_SOURCE, SYN_RETRANSMITS) if retried \
                else (UNTRANSLATED_POD_SOURCE,)
        else:
            marks = (SYN_RETRANSMITS,)
        if ev.marks:   # marked before (a recording of marked events): each mark once
            marks = tuple(m for m in marks if m not in ev.marks)
        return marks

    def process(self, batch: Sequence[Event]) -> list[Event]:
        out: list[Event] = []
        append, flow_marks, with_marks = out.append, self._flow_marks, _WITH_FLOW_MARKS
        for ev in batch:
            if type(ev) is FlowEvent:
                # what can mark a flow, tested here: most flows go no further
                if ev.tcp_flags_seen == TCP_SYN or ev.role == ROLE_UPLINK \
                        or (ev.report == "new" and ev.direction == "ingress"):
                    new = flow_marks(ev)
                    if new:
                        ev = with_marks(ev, ev.marks + new)
            # `status & IPS_DST_NAT` is `"dnat" in ev.translation` without the tuple
            elif isinstance(ev, NatEvent) and ev.status & IPS_DST_NAT:
                # the reply comes from the endpoint the connection was DNATed to
                self._dnat_endpoints[(ev.reply_src.ip, ev.reply_src.port)] = ev.wall_ns
                if len(self._dnat_endpoints) > MAX_DNAT_ENDPOINTS:
                    self._forget_before(ev.wall_ns - DNAT_MEMORY_NS)
            elif (isinstance(ev, DropEvent) and self._dnat_endpoints
                  and ev.reason not in ENDPOINT_REACHED_REASONS):
                chosen = self._dnat_endpoints.get((ev.dst.ip, ev.dst.port))
                if chosen is not None and ev.wall_ns - chosen < DNAT_MEMORY_NS:
                    ev = _with_marks(ev, (*ev.marks, DNAT_ENDPOINT_DROPPED))
            append(ev)
        return out
