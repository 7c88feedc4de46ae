"""The joined connection view: per connection, what each point of the node saw.

A connection is keyed by its tuple as the client sent it (the `orig` tuple of
conntrack).  Every event that concerns it is attached, whatever tuple it carries:

- `flow` records at pod veths and uplinks, before NAT (pod veth ingress: as the pod
  sent it), after NAT (uplink egress: as it left the node) and in the reply direction;
- `nat` (conntrack) events, which tell how the tuple was rewritten: the table learns
  the translated tuples as aliases, and merges what it had already attached to them
  (conntrack events arrive milliseconds after the packets they describe);
- `drop` records and the ICMP errors about its packets (`icmp`): IPv4 errors the node
  sent, ICMPv6 errors seen on its interfaces (whoever sent them);
- `tcp` socket events of the client and server (the client's `connect`/`failed` carry
  no source port until the port is chosen: they are matched by addresses and time).

Events that belong to no single connection — ICMP errors the node received (their
inner packet is not parsed), failed neighbours, failed route lookups, failed binds —
are kept in short recent lists for the rules to correlate by address and time.

Bounded: connections idle for IDLE_NS are forgotten; at most MAX_CONNECTIONS are kept
(the first created go first, counted in `evicted` and in diagnosis' coverage).  Of the
connections diagnosis settled, the newest SETTLED_MAX are kept whole (a storm of
one-packet "connections" settles tens of thousands a second); older ones leave only
their key's hash behind, so a retransmission of one is known as settled, not judged
and counted again (`settled_forgotten`: those forgotten and not seen again).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tracer.events.icmp_names import is_error as icmp_is_error
from tracer.events.model import (
    DropEvent,
    Endpoint,
    Event,
    FlowEvent,
    IcmpEvent,
    NatEvent,
    NeighEvent,
    RouteEvent,
    SockEvent,
    TcpEvent,
    proto_name,
    tcp_flag_names,
)
from tracer.util.memo import BoundedMemo

Key = tuple[int, str | None, int | None, str | None, int | None]
Marks = tuple[str, ...]

TCP_FIN, TCP_SYN, TCP_RST, TCP_ACK = 0x01, 0x02, 0x04, 0x10
IDLE_NS = 120 * 1_000_000_000
MAX_CONNECTIONS = 50_000
SETTLED_MAX = 4096         # settled connections kept whole
SETTLED_MEMO = 65_536      # hashes of the keys of settled connections forgotten since
RECENT_MAX = 4096          # per list of loose events
MEMO_MAX = 4096
TCP_MATCH_NS = 15 * 1_000_000_000   # a socket event this close to a connection belongs to it


def key_of(proto: int, src: Endpoint, dst: Endpoint) -> Key:
    return (proto, src.ip, src.port, dst.ip, dst.port)


def reverse(k: Key) -> Key:
    return (k[0], k[3], k[4], k[1], k[2])


def ep_text(ip: str | None, port: int | None) -> str:
    if port is None:
        return str(ip)
    return f"[{ip}]:{port}" if ip and ":" in ip else f"{ip}:{port}"


@dataclass(slots=True)
class Hop:
    """One hook's view of one direction of the connection (the latest flow report)."""

    ifname: str
    role: str              # "pod" | "uplink"
    direction: str         # "ingress" | "egress"
    reply: bool            # the reply direction
    src: Endpoint
    dst: Endpoint
    packets: int
    tcp_flags: int         # every flag seen
    first_ns: int
    last_ns: int
    marks: tuple[str, ...] = ()
    bytes: int = 0         # of the latest report (the TUI's connection view shows it)

    def record(self) -> dict[str, Any]:
        return {"kind": "flow", "ifname": self.ifname, "role": self.role,
                "direction": self.direction, "reply": self.reply,
                "src": ep_text(self.src.ip, self.src.port),
                "dst": ep_text(self.dst.ip, self.dst.port), "packets": self.packets,
                "tcp_flags": tcp_flag_names(self.tcp_flags), **(
                    {"marks": list(self.marks)} if self.marks else {})}


@dataclass(slots=True)
class Connection:
    key: Key
    first_ns: int
    last_ns: int
    hops: dict[tuple[str, str, bool], Hop] = field(default_factory=dict)
    nat: NatEvent | None = None
    drops: list[DropEvent] = field(default_factory=list)
    icmp_sent: list[IcmpEvent] = field(default_factory=list)
    tcp: list[TcpEvent] = field(default_factory=list)
    diagnosed: bool = False    # a rule explained it (or none could, and it was reported)
    # kept as events arrive, so that the table can tell cheaply which connections a
    # rule still has to look at
    reply_seen: bool = False   # a reply at some hook
    reply_flags: int = 0       # TCP flags of every reply, OR-ed
    established: bool = False  # the client's socket connected
    refused_socket: bool = False   # ECONNREFUSED, or the server's kernel sent a RST

    def note_tcp(self, t: TcpEvent) -> None:
        self.tcp.append(t)
        self.established |= t.event == "established"
        self.refused_socket |= t.error == "ECONNREFUSED" or t.event == "reset_sent"

    @property
    def proto(self) -> int:
        return self.key[0]

    @property
    def src(self) -> Endpoint:
        return Endpoint(self.key[1], self.key[2])

    @property
    def dst(self) -> Endpoint:
        return Endpoint(self.key[3], self.key[4])

    @property
    def translated_dst(self) -> Endpoint:
        """Where the node sent it: the DNAT endpoint, else the original destination."""
        if self.nat is not None and "dnat" in self.nat.translation:
            return self.nat.reply_src
        return self.dst

    @property
    def translated_src(self) -> Endpoint:
        if self.nat is not None and "snat" in self.nat.translation:
            return self.nat.reply_dst
        return self.src

    @property
    def dnat(self) -> bool:
        return self.nat is not None and "dnat" in self.nat.translation

    def forward_hops(self) -> list[Hop]:
        return sorted((h for h in self.hops.values() if not h.reply), key=lambda h: h.first_ns)

    def reply_hops(self) -> list[Hop]:
        return sorted((h for h in self.hops.values() if h.reply), key=lambda h: h.first_ns)

    def left_via(self, role: str) -> Hop | None:
        return next((h for h in self.forward_hops()
                     if h.role == role and h.direction == "egress"), None)

    @property
    def answered(self) -> bool:
        """Anything came back: a reply at a hook, conntrack saw one, or the socket
        connected."""
        return self.reply_seen or self.established or \
            (self.nat is not None and self.nat.replied)

    @property
    def refused(self) -> bool:
        """Answered with a RST instead of a SYN-ACK (a RST after an established
        connection is a normal ending, not a refusal)."""
        if self.reply_flags & TCP_RST:
            return not self.reply_flags & TCP_SYN and not self.established
        return self.refused_socket and not self.established

    @property
    def open_question(self) -> bool:
        """Worth a rule's look: not diagnosed, and unanswered or refused."""
        return not self.diagnosed and (not self.answered or self.refused)

    @property
    def syn_retransmits(self) -> int:
        hops = [h.packets - 1 for h in self.forward_hops() if h.tcp_flags == TCP_SYN]
        tcp = [t.syn_retransmits for t in self.tcp]
        return max([0, *hops, *tcp])

    def failed_socket(self) -> TcpEvent | None:
        return next((t for t in self.tcp if t.event == "failed"), None)

    def stopped_at(self) -> str:
        """Where the connection was last seen going forward, or that it was answered."""
        if self.answered:
            return "answered"
        hops = self.forward_hops()
        if self.drops:
            d = self.drops[-1]
            return f"dropped at {d.ifname or 'a local socket'} ({d.reason})"
        if hops:
            h = hops[-1]
            return f"no reply after {h.ifname} {h.direction}"
        return "not seen on any traced interface"

    def record(self) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "kind": "connection", "proto": proto_name(self.proto),
            "src": ep_text(*self.key[1:3]), "dst": ep_text(*self.key[3:5]),
            "path": [f"{h.ifname} {h.direction}" for h in self.forward_hops()],
            "reply_path": [f"{h.ifname} {h.direction}" for h in self.reply_hops()],
            "answered": self.answered, "stopped": self.stopped_at()}
        if self.nat is not None:
            rec["nat"] = {"translation": list(self.nat.translation),
                          "to": ep_text(self.nat.reply_src.ip, self.nat.reply_src.port)
                          + " from " + ep_text(self.nat.reply_dst.ip, self.nat.reply_dst.port),
                          "replied": self.nat.replied}
        if self.syn_retransmits:
            rec["syn_retransmits"] = self.syn_retransmits
        return rec


class ConnectionTable:
    def __init__(self) -> None:
        self.conns: dict[Key, Connection] = {}
        self._alias: dict[Key, tuple[Key, bool]] = {}   # tuple seen -> (orig key, reply)
        self._aliases_of: dict[Key, list[Key]] = {}
        self.icmp_in: deque[FlowEvent] = deque(maxlen=RECENT_MAX)   # errors received
        self.neigh: deque[NeighEvent] = deque(maxlen=RECENT_MAX)
        self.routes: deque[RouteEvent] = deque(maxlen=RECENT_MAX)
        self.socks: deque[SockEvent] = deque(maxlen=RECENT_MAX)
        self.tcp: deque[TcpEvent] = deque(maxlen=RECENT_MAX)
        # socket events by (src ip, dst ip, dst port): the client's end has no port yet
        self._tcp_by: dict[tuple[str | None, str | None, int | None], deque[TcpEvent]] = {}
        # connections a rule may still have to look at (unanswered or refused): the
        # rest are skipped without a look, however many there are
        self.candidates: dict[Key, Connection] = {}
        # a hop's marks and a report's, merged (a report repeats its hop's marks)
        self._marks: BoundedMemo[tuple[Marks, Marks], Marks] = BoundedMemo(
            MEMO_MAX, lambda both: tuple(dict.fromkeys((*both[0], *both[1]))))
        self.evicted = 0
        self.now_ns = 0
        self._settled: dict[Key, None] = {}        # oldest first
        self._settled_gone: dict[int, None] = {}   # hash(key), oldest first
        self.settled_forgotten = 0

    def __iter__(self) -> Iterator[Connection]:
        return iter(list(self.conns.values()))

    # --- building ---------------------------------------------------------------------

    def _alias_to(self, seen: Key, orig: Key, reply: bool) -> None:
        if self._alias.get(seen) != (orig, reply):
            self._alias[seen] = (orig, reply)
            self._aliases_of.setdefault(orig, []).append(seen)

    def _create(self, k: Key, t: int) -> Connection:
        if len(self.conns) >= MAX_CONNECTIONS:
            self._forget(next(iter(self.conns)))   # the first created (dicts keep order)
            self.evicted += 1
        c = Connection(k, t, t)
        self.conns[k] = c
        gone = self._settled_gone
        h = hash(k) if gone else 0
        if gone and (h in gone or (h := hash(reverse(k))) in gone):
            c.diagnosed = True            # settled before, and forgotten since: kept
            self._settled[k] = None       # again (and counted once, as kept)
            del gone[h]
            self.settled_forgotten -= 1
        else:
            self.candidates[k] = c
        self._alias_to(k, k, False)
        self._alias_to(reverse(k), k, True)
        return c

    def _forget(self, k: Key) -> None:
        self.conns.pop(k, None)
        self.candidates.pop(k, None)
        self._settled.pop(k, None)
        for seen in self._aliases_of.pop(k, []):
            if self._alias.get(seen, (None,))[0] == k:
                del self._alias[seen]

    def _find(self, k: Key) -> tuple[Connection, bool] | None:
        hit = self._alias.get(k)
        if hit is None or hit[0] not in self.conns:
            return None
        return self.conns[hit[0]], hit[1]

    def _merge(self, into: Connection, other: Connection) -> None:
        into.first_ns = min(into.first_ns, other.first_ns)
        into.last_ns = max(into.last_ns, other.last_ns)
        for hk, hop in other.hops.items():
            into.hops.setdefault(hk, hop)
        into.drops.extend(other.drops)
        into.icmp_sent.extend(other.icmp_sent)
        for t in other.tcp:
            if t not in into.tcp:
                into.note_tcp(t)
        into.reply_seen |= other.reply_seen
        into.reply_flags |= other.reply_flags
        into.nat = into.nat or other.nat
        self._forget(other.key)

    def add(self, ev: Event) -> Connection | None:
        """Attach one event; returns the connection it concerns, if any."""
        if isinstance(ev, FlowEvent):
            return self.flow(ev)
        t = ev.wall_ns
        if t > self.now_ns:
            self.now_ns = t
        if isinstance(ev, TcpEvent):      # the most frequent after flows
            c = self._tcp(ev)
        elif isinstance(ev, NatEvent):
            c = self._nat(ev, t)
        else:
            c = self._add(ev, t)
        if c is not None and not c.open_question:
            self.candidates.pop(c.key, None)
        return c

    def settle(self, c: Connection) -> None:
        """A rule explained `c` (or none will): no more looks."""
        c.diagnosed = True
        self.candidates.pop(c.key, None)
        self._settled[c.key] = None
        if len(self._settled) > SETTLED_MAX:
            old = next(iter(self._settled))
            self._forget(old)
            self._settled_gone[hash(old)] = None
            if len(self._settled_gone) > SETTLED_MEMO:
                del self._settled_gone[next(iter(self._settled_gone))]
            self.settled_forgotten += 1

    def _add(self, ev: Event, t: int) -> Connection | None:
        if isinstance(ev, DropEvent):
            # a storm the kernel folded by destination is many connections, not its
            # first source's: diagnosis joins it to the finding of its first flows
            if ev.family and ev.proto in (6, 17) and ev.src.port is not None \
                    and ev.aggregated is None:
                c = self._conn_for(key_of(ev.proto, ev.src, ev.dst), t)
                c.drops.append(ev)
                return c
            return None
        if isinstance(ev, IcmpEvent):
            if ev.proto in (6, 17):
                c = self._conn_for(key_of(ev.proto, ev.src, ev.dst), t)
                c.icmp_sent.append(ev)
                return c
            return None
        if isinstance(ev, NeighEvent):
            self.neigh.append(ev)
        elif isinstance(ev, RouteEvent):
            self.routes.append(ev)
        elif isinstance(ev, SockEvent):
            self.socks.append(ev)
        return None

    def _tcp(self, ev: TcpEvent) -> Connection | None:
        self.tcp.append(ev)
        src, dst = ev.src, ev.dst
        # indexed by (src ip, dst ip, dst port) both ways: the client's end has no port yet
        by = self._tcp_by
        for k3 in ((src.ip, dst.ip, dst.port), (dst.ip, src.ip, src.port)):
            q = by.get(k3)
            if q is None:
                if len(by) >= RECENT_MAX:       # the oldest address pair goes
                    del by[next(iter(by))]
                q = by[k3] = deque(maxlen=16)
            q.append(ev)
        if src.port and dst.port:     # connect/failed: no source port yet, no tuple
            for k in ((6, src.ip, src.port, dst.ip, dst.port),
                      (6, dst.ip, dst.port, src.ip, src.port)):
                found = self._find(k)
                if found is not None:
                    found[0].note_tcp(ev)
                    return found[0]
        return None

    def _conn_for(self, k: Key, t: int) -> Connection:
        found = self._find(k)
        c = found[0] if found is not None else self._create(k, t)
        c.last_ns = max(c.last_ns, t)
        return c

    def flow(self, ev: FlowEvent) -> Connection | None:
        """`add` for a flow report, the event nearly every one is.  Whether a rule still
        needs the connection is re-judged only when the report changed that: a reply's
        flags (nothing else a flow carries moves `open_question`)."""
        t = ev.wall_ns
        if t > self.now_ns:
            self.now_ns = t
        if ev.aggregated is not None:   # a storm's flows folded by destination: no one
            return None                 # connection (its drops still reach the rules)
        proto = ev.proto
        if proto != 6 and proto != 17:
            if (proto == 1 or proto == 58) and icmp_is_error(proto, ev.icmp_type):
                self.icmp_in.append(ev)
            return None
        src, dst = ev.src, ev.dst
        k = (proto, src.ip, src.port, dst.ip, dst.port)   # key_of and _find, inlined
        hit = self._alias.get(k)
        c = self.conns.get(hit[0]) if hit is not None else None
        if c is not None and hit is not None:
            reply = hit[1]
            if t > c.last_ns:
                c.last_ns = t
        else:
            first_flags = ev.tcp_flags if ev.report == "new" else ev.tcp_flags_seen
            if proto == 6 and first_flags & TCP_SYN and first_flags & TCP_ACK:
                c, reply = self._create(reverse(k), t), True    # a SYN-ACK: the answer
            else:
                c, reply = self._create(k, t), False
        if reply:
            flags = c.reply_flags | ev.tcp_flags_seen
            if flags != c.reply_flags or not c.reply_seen:
                c.reply_seen = True
                c.reply_flags = flags
                if not c.open_question:
                    self.candidates.pop(c.key, None)
        hk = (ev.ifname, ev.direction, reply)
        hop = c.hops.get(hk)
        if hop is not None:     # a later report of the same hook: counters move on
            hop.packets, hop.tcp_flags, hop.last_ns = ev.packets, ev.tcp_flags_seen, t
            hop.bytes = ev.bytes
            if ev.marks:
                hop.marks = self._marks[hop.marks, ev.marks]
        else:
            c.hops[hk] = Hop(ifname=ev.ifname, role=ev.role, direction=ev.direction,
                             reply=reply, src=src, dst=dst, packets=ev.packets,
                             tcp_flags=ev.tcp_flags_seen, first_ns=t, last_ns=t,
                             marks=ev.marks, bytes=ev.bytes)
        return c

    def _nat(self, ev: NatEvent, t: int) -> Connection:
        find = self._find
        proto, o_src, o_dst = ev.proto, ev.orig_src, ev.orig_dst
        k = (proto, o_src.ip, o_src.port, o_dst.ip, o_dst.port)
        found = find(k)
        if found is not None and not found[1] and found[0].key != k:
            c = found[0]
        else:
            c = self.conns.get(k) or self._create(k, t)
        c.nat = ev
        if t > c.last_ns:
            c.last_ns = t
        # the tuple after translation, both ways: what uplinks and endpoints saw
        r_src, r_dst = ev.reply_src, ev.reply_dst
        for seen, reply in (((proto, r_dst.ip, r_dst.port, r_src.ip, r_src.port), False),
                            ((proto, r_src.ip, r_src.port, r_dst.ip, r_dst.port), True)):
            other = find(seen)
            if other is not None and other[0] is c and other[1] == reply:
                continue    # known already (every later event of the connection)
            if other is not None and other[0] is not c:
                self._merge(c, other[0])
            self._alias_to(seen, c.key, reply)
        return c

    def expire(self, now_ns: int) -> None:
        for c in list(self.conns.values()):
            if now_ns - c.last_ns > IDLE_NS:
                self._forget(c.key)

    # --- questions the rules ask ------------------------------------------------------

    def tcp_for(self, c: Connection) -> list[TcpEvent]:
        """The client's socket events for `c` (connect/failed carry no source port),
        and the server's reset for it."""
        out = list(c.tcp)
        for ev in self._tcp_by.get((c.src.ip, c.dst.ip, c.dst.port), ()):
            if ev in out or ev.src.port not in (0, c.src.port):
                continue
            if c.first_ns - TCP_MATCH_NS <= ev.wall_ns <= c.last_ns + TCP_MATCH_NS:
                out.append(ev)
        return out
