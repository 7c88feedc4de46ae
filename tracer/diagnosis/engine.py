"""The diagnosis stage: events in, findings out, as soon as their evidence is complete.

    diag = Diagnoser(names, facts)
    for batch in source.batches(stop):
        findings = diag.process(batch, now_ns)    # now: the wall clock (live) or None
    findings += diag.finish()                     # the end of the stream

Live and replay share it: it reads only decoded events and their wall times.  Its clock
is the events' own: connections are judged at fixed instants (every TICK_NS of wall
time), each before the first event later than it is taken in, so the findings do not
depend on how the stream was cut into batches.  While nothing happens, live passes the
wall clock (a connection that gets no answer is diagnosed all the same); the recording
carries those instants (clock records), and a replay hands them back with `clock()`.
`finish()` decides what is left without waiting, so a recording replays to the
findings the live run printed.
"""

from __future__ import annotations

import ipaddress
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tracer.diagnosis.names import Names
from tracer.diagnosis.nodefacts import NodeFacts
from tracer.diagnosis.rules import (
    CONNECTION_RULES,
    NEIGH_MATCH_NS,
    RULES,
    SETTLE_NS,
    Context,
    Network,
    Repeat,
    Wait,
    folded_drop_key,
    hostport_conflict,
    rp_filter_arp,
)
from tracer.events.finding import Coverage, Finding, FindingUpdate, Found, InputCoverage
from tracer.events.model import (
    DropEvent,
    Event,
    FlowEvent,
    IcmpEvent,
    LostEvent,
    NatEvent,
    NeighEvent,
    RouteEvent,
    SockEvent,
    TcpEvent,
)
from tracer.node.interfaces import ROLE_UPLINK
from tracer.pipeline.connections import Connection, ConnectionTable

GIVE_UP_NS = 30 * 1_000_000_000    # a failed connection no rule explained by then
TICK_NS = 200_000_000              # judge at the multiples of this (wall-clock ns)
MAX_STEPS = 300                    # instants judged one by one in a gap; then its end
EXPIRE_EVERY_NS = 10_000_000_000   # forget idle connections this often
FACTS_REFRESH_NS = 2_000_000_000   # the live node's routes and sysctls, re-read
FOLDED_WAITING_MAX = 4096          # folded storm records waiting for their finding
UPDATE_NS = 1_000_000_000          # a growing finding's update, at most this often
QUIET_NS = 300_000_000             # conntrack events trail their packets by milliseconds:
                                   # a connection is judged once it has been quiet this long
# events that feed nothing but the connection view (flows do too, once the node's
# namespace is known)
TABLE_ONLY = frozenset({TcpEvent, NatEvent, DropEvent, IcmpEvent, RouteEvent})
_WALL = operator.attrgetter("wall_ns")


class Diagnoser:
    def __init__(self, names: Names, facts: NodeFacts, *, node_netns: int | None = None,
                 pod_networks: Sequence[Network] = (),
                 service_networks: Sequence[Network] = (),
                 refresh_facts: Callable[[], NodeFacts | None] | None = None,
                 coverage: Coverage | None = None) -> None:
        pods = list(pod_networks) or [ipaddress.ip_network(c, strict=False)
                                      for c in names.pod_cidrs()]
        self.ctx = Context(names=names, facts=facts, table=ConnectionTable(),
                           node_netns=node_netns, pod_networks=pods,
                           service_networks=list(service_networks))
        self.refresh_facts = refresh_facts
        self.coverage = coverage or Coverage(node_state=facts.known)
        self.coverage.needs = {r.kind: r.needs for r in RULES}
        self.findings: dict[str, Finding] = {}
        self.ctx.known = self.findings
        self._next_tick = 0                 # the next instant to judge at; 0: none yet
        self._held: list[Found] = []      # found by clock(), returned by the next call
        self._folded: list[DropEvent] = []        # kernel-folded storms, to join findings
        self._fold_seen: dict[tuple[Any, ...], tuple[int, int]] = {}
        self._dirty: dict[str, Finding] = {}      # grown since their last update
        self._updated_at: dict[str, int] = {}     # key -> when its last update was judged
        self._facts_at = 0
        self._expired_at = 0

    # --- what the session knows besides the events ----------------------------------------

    def use_names(self, names: Names) -> None:
        """Name objects from `names` from now on (the session's metadata index)."""
        self.ctx.names = names

    def set_node(self, netns: int | None, pod_networks: Sequence[Network] = (),
                 service_networks: Sequence[Network] = ()) -> None:
        """The node's own namespace, and the pod and Service networks where the
        constructor was given none (the caller's own stay)."""
        self.ctx.node_netns = netns
        if not self.ctx.pod_networks:
            self.ctx.pod_networks = list(pod_networks)
        if not self.ctx.service_networks:
            self.ctx.service_networks = list(service_networks)

    def set_attached(self, attached: Sequence[str], unavailable: Mapping[str, str],
                     families: Sequence[str] | None = None) -> None:
        """What the session attached, and what it could not (and why): the evidence
        there could be.  `families`: the probe families that ran, as the loader (or a
        recording's header) says; None when the input does not say."""
        self.coverage.attached = list(attached)
        self.coverage.unavailable = dict(unavailable)
        self.coverage.probe_families = list(families) if families is not None else None

    def set_unavailable(self, label: str, why: str) -> None:
        """Evidence the input could not give (JSON lines that are not events)."""
        self.coverage.unavailable[label] = why

    def set_metadata(self, label: str) -> None:
        """Where the names come from ("file PATH", "recording", "none")."""
        self.coverage.metadata = label

    def on_node_state(self, snapshot: Mapping[str, Any]) -> None:
        """A snapshot of the node's routes, addresses and sysctls
        (tracer/recording/nodestate.py), from now on."""
        self.ctx.facts = NodeFacts.from_snapshot(snapshot)
        self.coverage.node_state = True

    def set_input(self, read: InputCoverage) -> None:
        """What the file diagnosed held: whole records read, damage skipped."""
        self.coverage.input = read

    def add_lost(self, lost: Mapping[str, int]) -> None:
        """Losses the stream's source counted (by layer): no finding claims what they
        may have hidden."""
        self.coverage.lost.update(lost)

    # --- input ----------------------------------------------------------------------------

    def process(self, batch: Sequence[Event], now_ns: int | None = None) -> list[Found]:
        """Takes the events in; `now_ns`: the wall clock when nothing happened (an
        empty batch, live), recorded as a clock record so that replay judges then too."""
        out, self._held = self._held, []
        if batch:
            if max(map(_WALL, batch)) < self._next_tick:
                out += self._take(batch)    # nearly every batch: no instant crossed
            else:
                start = 0
                for i, ev in enumerate(batch):
                    if ev.wall_ns >= self._next_tick:
                        out += self._take(batch[start:i])
                        out += self._advance(ev.wall_ns)
                        start = i
                out += self._take(batch[start:])
        if now_ns is not None:
            out += self._advance(now_ns)
        return out

    def clock(self, now_ns: int) -> None:
        """A recorded clock record: the live session judged at `now_ns` here; what it
        finds comes with the next process() or finish()."""
        self._held += self._advance(now_ns)

    def _take(self, batch: Sequence[Event]) -> list[Found]:
        out: list[Found] = []
        table = self.ctx.table
        add, flow = table.add, table.flow
        node_netns = self.ctx.node_netns
        for ev in batch:
            if type(ev) is FlowEvent and node_netns is not None:
                flow(ev)    # nearly every event: nothing else to do
                continue
            if type(ev) in TABLE_ONLY:
                add(ev)
                if type(ev) is DropEvent and ev.aggregated is not None:
                    self._folded.append(ev)
                continue
            if isinstance(ev, LostEvent):
                self.coverage.lost[ev.layer] = ev.total
                continue
            if self.ctx.node_netns is None and isinstance(ev, FlowEvent) \
                    and ev.role == ROLE_UPLINK:
                self.ctx.node_netns = ev.netns   # tc runs in the node's namespace
            node_netns = self.ctx.node_netns
            add(ev)
            if isinstance(ev, SockEvent):
                f = hostport_conflict(self.ctx, ev)
                if f is not None:
                    out += self._emit(f)
            elif isinstance(ev, NeighEvent) and ev.netns != self.ctx.node_netns:
                # a pod that could not resolve its gateway: did it send from an address
                # the node's reverse-path filter rejects?
                out += self._rp_filter_arp(ev)
        return out

    def _advance(self, now_ns: int) -> list[Found]:
        """Judges at every instant up to `now_ns` not judged yet.  A long gap (or one
        with nothing to judge) is not walked instant by instant: its last instant is."""
        last = now_ns // TICK_NS * TICK_NS
        t = self._next_tick or last
        out: list[Found] = []
        steps = 0
        while t <= last:
            if not self.ctx.table.candidates or steps >= MAX_STEPS:
                t = max(t, last)
            out += self._evaluate(t)
            t += TICK_NS
            steps += 1
        self._next_tick = max(self._next_tick, t)
        return out

    def tick(self, now_ns: int) -> list[Found]:
        return self.process([], now_ns)

    def finish(self, end_ns: int | None = None) -> list[Found]:
        """The end of the stream (at `end_ns`, when the source knows it): decide every
        pending connection that had its time; younger ones are counted as undecided
        in the coverage, not guessed at."""
        now = max(self.ctx.table.now_ns, end_ns or 0)
        out, self._held = self._held, []
        out += self._evaluate(now, final=True)
        self.coverage.connections = len(self.ctx.table.conns) + \
            self.ctx.table.settled_forgotten
        if self.ctx.table.evicted:
            self.coverage.lost["connections_evicted"] = self.ctx.table.evicted
        return out

    # --- evaluation -----------------------------------------------------------------------

    def _ready(self, c: Connection, now: int, final: bool) -> bool:
        if not c.open_question:
            return False
        if now - c.last_ns < QUIET_NS and not final:
            return False
        hard = bool(c.drops or c.icmp_sent or c.refused) or any(
            t.event == "failed" for t in self.ctx.table.tcp_for(c))
        ready = hard or now - c.first_ns >= SETTLE_NS
        if final and not ready:
            self.coverage.undecided += 1
        return ready

    def _evaluate(self, now: int, final: bool = False) -> list[Found]:
        self.ctx.now_ns = now
        if self.refresh_facts is not None and not final and \
                now - self._facts_at >= FACTS_REFRESH_NS:
            fresh = self.refresh_facts()      # None: nothing changed since the last read
            if fresh is not None:
                self.ctx.facts = fresh
            self._facts_at = now
        out: list[Found] = []
        for c in list(self.ctx.table.candidates.values()):
            if not self._ready(c, now, final):
                continue
            for rule in CONNECTION_RULES:
                f = rule(self.ctx, c)
                if isinstance(f, Wait):
                    break
                if isinstance(f, Repeat):
                    self.ctx.table.settle(c)
                    self._repeat(f)
                    break
                if f is not None:
                    self.ctx.table.settle(c)
                    out += self._emit(f)
                    break
            else:
                if final or now - c.first_ns > GIVE_UP_NS:
                    self._unexplained(c)
        if self._folded:
            self._fold_storms()
        if self._dirty:
            out += self._updates(now, final)
        if now - self._expired_at >= EXPIRE_EVERY_NS:
            self.ctx.table.expire(now)
            self._expired_at = now
        return out

    def _rp_filter_arp(self, n: NeighEvent) -> list[Found]:
        out: list[Found] = []
        table = self.ctx.table
        for ev in [t for t in table.tcp if t.netns == n.netns and t.event == "connect"
                   and n.wall_ns - NEIGH_MATCH_NS <= t.wall_ns <= n.wall_ns]:
            f = rp_filter_arp(self.ctx, ev)
            if f is None:
                continue
            out += self._emit(f)
            for c in list(table.candidates.values()):
                if c.src.ip == ev.src.ip and c.dst.ip == ev.dst.ip:
                    table.settle(c)   # the connection it explains, as far as it was seen
        return out

    def _unexplained(self, c: Connection) -> None:
        self.ctx.table.settle(c)
        if len(self.coverage.unexplained) < 20 and not c.answered:
            self.coverage.unexplained.append(c.record())

    def _emit(self, f: Finding) -> list[Found]:
        """A cause seen before is the same finding explaining more: its totals grow,
        and an update says so (at most once a second, see _updates), never a new
        finding per source."""
        seen = self.findings.get(f.key)
        if seen is None:
            self.findings[f.key] = f
            return [f]
        seen.count += f.count
        seen.last_seen_ns = max(seen.last_seen_ns, f.last_seen_ns or f.first_seen_ns)
        for name, n in f.affected.counts.items():
            seen.affected.add(name, n)
        seen.affected.add_unnamed(f.affected.untracked, exact=f.affected.exact)
        self._dirty[f.key] = seen
        return []

    def _repeat(self, r: Repeat) -> None:
        """One more connection of a cause that has its finding (see _emit)."""
        seen = self.findings[r.key]
        seen.count += 1
        seen.last_seen_ns = max(seen.last_seen_ns, r.seen_ns)
        for name, n in r.affected.counts.items():
            seen.affected.add(name, n)
        seen.affected.add_unnamed(r.affected.untracked, exact=r.affected.exact)
        self._dirty[r.key] = seen

    def _fold_storms(self) -> None:
        """Drops the kernel folded by destination (a storm past its budget of flows)
        join the finding their first flows made: its count grows by the folded flows,
        its sources by the kernel's estimate (so neither is exact any more).  A fold's
        record carries its window's running totals (sketches), so only what exceeds the
        largest total seen is added.
        Records whose finding is not made yet wait for it (a bounded while)."""
        waiting: list[DropEvent] = []
        for d in self._folded:
            agg = d.aggregated
            key = folded_drop_key(self.ctx, d)
            if agg is None or key is None:
                continue
            f = self.findings.get(key)
            if f is None:
                if len(waiting) < FOLDED_WAITING_MAX:
                    waiting.append(d)
                continue
            window = (key, d.netns, d.ifindex, d.dst.ip, d.dst.port, d.proto)
            # never more than the largest total seen: a new window's totals start
            # again and are counted only past the old ones (too few, never too many)
            flows, sources = self._fold_seen.get(window, (0, 0))
            if len(self._fold_seen) >= FOLDED_WAITING_MAX:
                self._fold_seen.clear()
            f.count += max(0, agg.flows - flows)
            f.affected.add_unnamed(max(0, agg.sources - sources), exact=agg.exact_sources)
            f.last_seen_ns = max(f.last_seen_ns, d.wall_ns)
            self._fold_seen[window] = (max(flows, agg.flows), max(sources, agg.sources))
            self._dirty[key] = f
        self._folded = waiting

    def _updates(self, now: int, final: bool) -> list[Found]:
        # judged on diagnosis' own clock (the tick instants), so a replay of the
        # recording emits exactly the updates the live run did
        out: list[Found] = []
        for key, f in list(self._dirty.items()):
            last = self._updated_at.get(key)
            if final or last is None or now - last >= UPDATE_NS:
                out.append(FindingUpdate.of(f, now))
                self._updated_at[key] = now
                del self._dirty[key]
        return out

    def all_findings(self) -> list[Finding]:
        return sorted(self.findings.values(), key=lambda f: f.first_seen_ns)
