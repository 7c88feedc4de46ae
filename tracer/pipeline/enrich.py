"""The enrich stage: Kubernetes names for every endpoint of every event, beside the raw
fields (never over them).

Events are immutable records of what the kernel said, and the recording stores them
as they were decoded; names are what the index knew at that moment.  So the stage
does not copy events (a copy of a 20-field record costs more than the whole lookup):
it returns the same events in a `NamedBatch`, a list whose `names[i]` holds the names
of `batch[i]`, one per entry of `NAMED_FIELDS[type(event)]`.  Sinks read them there.

Resolution (tracer/metadata/resolver.py), in order: (ip, port) exactly (Service
ports, NodePorts on every node address, endpoints backing Services, sockets of
hostNetwork pods), then the address (pod IPs, Service IPs, node addresses), then pod
CIDRs (a pod of that node), else external.  A process's pod (tcp, sock: from its
cgroup) names a hostNetwork pod's own end of a connection: by cgroup, not by address.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from tracer.events.model import (
    DropEvent,
    Endpoint,
    Event,
    FlowEvent,
    IcmpEvent,
    NatEvent,
    PodRef,
    RouteEvent,
    SockEvent,
    TcpEvent,
)
from tracer.metadata.index import MetadataIndex
from tracer.metadata.names import SCOPE_POD, EndpointName, PodName
from tracer.metadata.resolver import Resolver
from tracer.pipeline.stage import PassStage

if TYPE_CHECKING:   # the sinks import this module
    from tracer.events.records import Output

Names = tuple[Any, ...]   # EndpointName | PodName | None, per NAMED_FIELDS entry
Selected = tuple[frozenset[str], frozenset[int], frozenset[int]]

# event type -> what each position of its names tuple names.  "@pod": the process's
# pod (PodRef) by name; "@holder": the pod of a port's holder (sock EADDRINUSE).
NAMED_FIELDS: dict[type, tuple[str, ...]] = {
    DropEvent: ("src", "dst"),
    FlowEvent: ("src", "dst"),
    RouteEvent: ("src", "dst"),
    IcmpEvent: ("src", "dst"),
    TcpEvent: ("src", "dst", "@pod"),
    SockEvent: ("addr", "@pod", "@holder"),
    NatEvent: ("orig_src", "orig_dst", "reply_src", "reply_dst"),
}


class NamedBatch(list[Event]):
    """Events and, in parallel, their names (None: the event has no endpoints)."""

    names: list[Names | None]

    def __init__(self, events: Iterable[Event] = (), names: list[Names | None] | None = None):
        super().__init__(events)
        self.names = names if names is not None else [None] * len(self)

    def named(self) -> Iterable[tuple[Event, Names | None]]:
        return zip(self, self.names, strict=True)


def names_of(batch: Sequence[Output]) -> list[Names | None]:
    return batch.names if isinstance(batch, NamedBatch) else [None] * len(batch)


def _process_pod(r: Resolver, ref: PodRef | None) -> PodName | None:
    return r.pods_by_uid.get(ref.uid) if ref is not None else None


MEMO_MAX = 4096
ENDS_MAX = 1 << 16


class Enricher(PassStage):
    name = "kubernetes-names"

    def __init__(self, index: MetadataIndex, node_netns: int = 0) -> None:
        self.index = index
        self.node_netns = node_netns   # a process there without a pod netns: hostNetwork
        # names made here rather than found in the resolver, made once per resolver:
        # every event of a socket would otherwise carry a new (equal) name object, and
        # the sinks cache what they render by the name's identity
        self._memo_of: Resolver | None = None
        self._memo: dict[tuple[Any, ...], Any] = {}
        # (ip, port) -> its name, per resolver: one look-up where the resolver's order
        # takes two to five
        self._ends_of: Resolver | None = None
        self._ends: dict[tuple[Any, Any], EndpointName | None] = {}
        # (id(src), id(dst), id(pod ref), netns) -> (src, dst, ref, the names), per
        # resolver: a tcp event's names take five look-ups and three calls (0.9 us); the
        # recording's reader hands out one object per endpoint and pod, so this one
        # look-up finds them (the entry holds the objects: their ids stay theirs).
        # Events decoded live carry new objects: they miss, and pay for one entry.
        self._tcp_of: Resolver | None = None
        self._tcp: dict[tuple[int, int, int, int], tuple[Any, Any, Any, Names]] = {}

    def _memo_for(self, r: Resolver) -> dict[tuple[Any, ...], Any]:
        if self._memo_of is not r or len(self._memo) >= MEMO_MAX:
            self._memo_of, self._memo = r, {}
        return self._memo

    def _ends_for(self, r: Resolver) -> dict[tuple[Any, Any], EndpointName | None]:
        if self._ends_of is not r or len(self._ends) >= ENDS_MAX:
            self._ends_of, self._ends = r, {}
        if self._tcp_of is not r or len(self._tcp) >= MEMO_MAX:
            self._tcp_of, self._tcp = r, {}
        return self._ends

    def _pod_of(self, r: Resolver, netns: int, ref: PodRef) -> PodName:
        """The process's pod by uid; one the index does not know (yet: the local scan
        runs every 2 s, a crash-looping container lives for less) by its uid alone."""
        known = r.pods_by_uid.get(ref.uid)
        if known is not None:
            return known
        host = bool(self.node_netns) and netns == self.node_netns
        memo = self._memo_for(r)
        key = ("pod", ref.uid, host)
        pod: PodName | None = memo.get(key)
        if pod is None:
            pod = memo[key] = PodName(None, None, ref.uid, host, self.index.local_node)
        return pod

    def _process_pod(self, r: Resolver, ev: TcpEvent | SockEvent) -> PodName | None:
        return self._pod_of(r, ev.netns, ev.pod) if ev.pod is not None else None

    def _own_end(self, r: Resolver, netns: int, ref: PodRef | None,
                 found: EndpointName | None) -> EndpointName | None:
        """A socket's own end is its process's pod: by cgroup, which is the only way to
        name a hostNetwork pod's end (its address is the node's)."""
        if ref is None or (found is not None and found.pod is not None
                           and found.pod.uid == ref.uid):
            return found
        pod = self._pod_of(r, netns, ref)
        memo = self._memo_for(r)
        key = ("end", id(found), id(pod))
        hit = memo.get(key)   # (found, pod, own): kept, so that their ids stay theirs
        if hit is not None and hit[0] is found and hit[1] is pod:
            return hit[2]     # type: ignore[no-any-return]
        own = EndpointName(SCOPE_POD, pod=pod, node=pod.node,
                           service=found.service if found is not None else None,
                           services=found.services if found is not None else ())
        memo[key] = (found, pod, own)
        return own

    def process(self, batch: Sequence[Event]) -> NamedBatch:
        r = self.index.resolver()
        resolve = r.resolve
        # the hot path, inlined: endpoints already resolved with this resolver (keys
        # may hold None: an endpoint the decoder could not parse; resolved to None,
        # again each time, cheaply)
        ends = self._ends_for(r)
        tcp = self._tcp
        known: Callable[[Any], EndpointName | None] = ends.get

        def new_end(key: tuple[Any, Any]) -> EndpointName | None:
            if len(ends) >= ENDS_MAX:
                ends.clear()
            name = ends[key] = resolve(*key)
            return name

        def end(ep: Endpoint) -> EndpointName | None:
            key = (ep.ip, ep.port)
            return known(key) or new_end(key)

        names: list[Names | None] = []
        append = names.append
        for ev in batch:
            t = type(ev)
            if t is FlowEvent or t is DropEvent or t is RouteEvent or t is IcmpEvent:
                src, dst = ev.src, ev.dst  # type: ignore[union-attr]
                skey, dkey = (src.ip, src.port), (dst.ip, dst.port)
                append((known(skey) or new_end(skey), known(dkey) or new_end(dkey)))
            elif t is NatEvent:
                assert isinstance(ev, NatEvent)
                append((end(ev.orig_src), end(ev.orig_dst), end(ev.reply_src),
                        end(ev.reply_dst)))
            elif t is TcpEvent:
                assert isinstance(ev, TcpEvent)
                tkey = (id(ev.src), id(ev.dst), id(ev.pod), ev.netns)
                hit = tcp.get(tkey)
                if hit is None:
                    own = self._own_end(r, ev.netns, ev.pod, end(ev.src))
                    hit = tcp[tkey] = (ev.src, ev.dst, ev.pod,
                                       (own, end(ev.dst), self._process_pod(r, ev)))
                append(hit[3])
            elif t is SockEvent:
                assert isinstance(ev, SockEvent)
                addr = resolve(ev.addr.ip, ev.addr.port)
                if ev.op != "connect":   # bind/listen: the address is the process's own
                    addr = self._own_end(r, ev.netns, ev.pod, addr)
                holder = ev.holder.pod if ev.holder is not None else None
                append((addr, self._process_pod(r, ev), _process_pod(r, holder)))
            else:
                append(None)
        return NamedBatch(batch, names)


class PodFilter(PassStage):
    """`-l`/`-n`/`--pod`: keeps the events of the selected pods (by namespace inode,
    resolved endpoint or process pod) and loss records; drops the rest.  With no
    selection, every event passes."""

    name = "pod-filter"

    def __init__(self, selected: Callable[[], Selected] | None = None) -> None:
        self.selected = selected   # () -> (pod uids, their namespace inodes, veth ifindexes)

    def select(self, selected: Callable[[], Selected] | None) -> None:
        """A new selection (the display's -l), from the next batch on."""
        self.selected = selected

    def process(self, batch: Sequence[Event]) -> Sequence[Event]:
        if self.selected is None:
            return batch
        uids, inodes, ifindexes = self.selected()
        events: list[Event] = []
        names: list[Names | None] = []
        for ev, n in zip(batch, names_of(batch), strict=True):
            if (type(ev) is FlowEvent and ev.ifindex in ifindexes) \
                    or self._keep(ev, n, uids, inodes):
                events.append(ev)
                names.append(n)
        return NamedBatch(events, names)

    @staticmethod
    def _keep(ev: Event, n: Names | None, uids: frozenset[str],
              inodes: frozenset[int]) -> bool:
        if ev.kind == "lost":
            return True
        if getattr(ev, "netns", 0) in inodes:
            return True
        for x in n or ():
            if isinstance(x, EndpointName):
                x = x.pod
            if isinstance(x, PodName) and x.uid in uids:
                return True
        return False
