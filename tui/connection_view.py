"""The connections the TUI shows: the tracer's own connection table, fed from records.

The feeds hand the app `trace -o jsonl` records (tui/feed.py); the join of flow, nat,
drop, icmp and tcp events into connections is tracer/pipeline/connections.py's, the
one diagnosis uses.  `ConnectionView` is the one adapter between the two: it turns
each record back into its event with the JSON-lines parser (tracer/events/jsonl.py),
adds it to a `ConnectionTable`, and keeps beside each connection what the table does
not hold: the Kubernetes names its records carried.  `Row` is how one connection is
shown (name, state, counters, timeline), computed from the table's connection and
cached until an event concerns it again.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tracer.events.jsonl import event_of
from tracer.events.model import (
    DropEvent,
    Endpoint,
    Event,
    FlowEvent,
    IcmpEvent,
    NatEvent,
    TcpEvent,
    proto_name,
    tcp_flag_names,
)
from tracer.pipeline.connections import (
    Connection,
    ConnectionTable,
    Hop,
    Key,
    ep_text,
)
from tui.feed import Record
from tui.filtering import Subject, add_endpoint
from tui.records import clock, name

Ends = tuple[str | None, str | None, int | None]    # src ip, dst ip, dst port
JOINED_KINDS = frozenset({"flow", "nat", "drop", "icmp", "tcp"})
EVENT_TYPES = (FlowEvent, NatEvent, DropEvent, IcmpEvent, TcpEvent)   # of those kinds
BENIGN_DROPS = frozenset({"QUEUE_PURGE"})   # a socket purging its queue: the peer was reached
FINAL_TCP = ("established", "failed", "reset_received", "reset_sent", "error")
# what a record that is not the event it claims to be raises in the parser
BAD_RECORD = (ValueError, KeyError, TypeError, AttributeError, IndexError)
# connect() comes microseconds before its SYN is seen: a portless socket event belongs to
# the newest connection of its addresses that started before it (or this soon after)
CONNECT_SLACK_NS = 10_000_000
ENDS_KEPT = 64      # connections (and portless events) kept per address pair


def _named(ep: Any) -> bool:
    return isinstance(ep, dict) and ("pod" in ep or "service" in ep or "node" in ep)


def _scoped(ep: Any) -> bool:
    """Named by the enrich stage (an external address too: it has a scope)."""
    return isinstance(ep, dict) and ("scope" in ep or _named(ep))


def _at(ep: Any, ip: str | None, port: int | None) -> bool:
    return isinstance(ep, dict) and ep.get("ip") == ip and ep.get("port") == port


def _tuple(src: Endpoint, dst: Endpoint) -> str:
    return f"{ep_text(src.ip, src.port)} -> {ep_text(dst.ip, dst.port)}"


def nat_text(nat: NatEvent) -> str:
    parts = []
    if "dnat" in nat.translation:
        parts.append(f"DNAT {ep_text(nat.orig_dst.ip, nat.orig_dst.port)} -> "
                     f"{ep_text(nat.reply_src.ip, nat.reply_src.port)}")
    if "snat" in nat.translation:
        parts.append(f"SNAT {ep_text(nat.orig_src.ip, nat.orig_src.port)} -> "
                     f"{ep_text(nat.reply_dst.ip, nat.reply_dst.port)}")
    return "; ".join(parts)


@dataclass(frozen=True)
class Step:
    """One line of a connection's timeline."""

    time_ns: int
    kind: str
    where: str
    tuple: str
    detail: str
    failure: bool


def _hop_step(h: Hop) -> Step:
    flags = ",".join(tcp_flag_names(h.tcp_flags))
    marks = sorted(h.marks)
    return Step(h.first_ns, "flow", f"{h.ifname} ({h.role}) {h.direction}",
                _tuple(h.src, h.dst),
                ("reply " if h.reply else "") + f"{h.packets} pkts {h.bytes} B"
                + (f" [{flags}]" if flags else "")
                + (f" until {clock(h.last_ns)}" if h.last_ns != h.first_ns else "")
                + (f" marks: {', '.join(marks)}" if marks else ""),
                bool(set(h.marks) - {"syn-retransmits"}))


def _tcp_step(t: TcpEvent) -> Step:
    who = f" by {t.process.comm}[{t.process.pid}]" if t.process is not None else ""
    return Step(t.wall_ns, "tcp", "socket", _tuple(t.src, t.dst),
                f"{t.event} {t.error or ''} syn retransmits {t.syn_retransmits}{who}",
                t.event in ("failed", "reset_received", "error"))


@dataclass
class Row:
    """One connection of the table as the TUI shows it."""

    conn: Connection
    view: ConnectionView
    # the richest endpoint records seen: the client, what it asked for, the backend
    src_ep: dict[str, Any]
    dst_ep: dict[str, Any]
    backend_ep: dict[str, Any] | None = None
    named: bool = False        # both ends (and a DNAT backend) by name: no more looks
    version: int = 0           # bumped by every event that concerns the connection
    _cached_version: int = -1
    _cache: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> Key:
        return self.conn.key

    @property
    def proto(self) -> str:
        return proto_name(self.conn.proto)

    def _cached(self) -> dict[str, Any]:
        """state, failed, tcp, counters: the table asks every row at every redraw."""
        if self._cached_version != self.version:
            self._cache = self._compute()
            self._cached_version = self.version
        return self._cache

    def _compute(self) -> dict[str, Any]:
        c = self.conn
        # the table matches a portless event to every connection of its addresses in
        # a window (what diagnosis needs); a row shows each event once, on its own
        tcp = sorted([*c.tcp, *self.view.portless(self)], key=lambda t: t.wall_ns)
        fwd = [h for h in c.hops.values() if not h.reply]
        rev = [h for h in c.hops.values() if h.reply]
        marks = {m for h in c.hops.values() for m in h.marks}
        marks.update(m for d in c.drops for m in d.marks)
        drops: Counter[str] = Counter()
        for d in c.drops:
            drops[d.reason] += d.count
        state = self._state(tcp, drops, marks)
        return {"tcp": tcp, "marks": marks, "drops": drops, "state": state,
                # the socket's outcome is news too (a connect() that failed, later)
                "last_ns": max([c.last_ns, *(t.wall_ns for t in tcp)]),
                "failed": state not in ("established", "replied", "no reply yet")
                or bool(marks - {"syn-retransmits"}),
                "packets": max((h.packets for h in fwd), default=0)
                + max((h.packets for h in rev), default=0),
                "bytes": max((h.bytes for h in fwd), default=0)
                + max((h.bytes for h in rev), default=0),
                "retransmits": c.syn_retransmits if not tcp else
                max(c.syn_retransmits, *(t.syn_retransmits for t in tcp))}

    def _state(self, tcp: list[TcpEvent], drops: Counter[str], marks: set[str]) -> str:
        c = self.conn
        if c.icmp_sent:
            last = c.icmp_sent[-1].meaning
            return f"refused: {last}" if "port-unreachable" in last else f"unreachable: {last}"
        final = [t for t in tcp if t.event in FINAL_TCP]
        # an error after the outcome does not replace it
        outcome = next((t for t in reversed(final) if t.event != "error"),
                       final[-1] if final else None)
        if outcome is not None and outcome.event == "failed" \
                and outcome.error == "ECONNREFUSED":
            return "refused"
        real = [r for r in drops if r not in BENIGN_DROPS]
        if real:
            return "dropped: " + ", ".join(real)
        if outcome is not None and outcome.event == "failed":
            if outcome.error in (None, "ETIMEDOUT") and (
                    c.syn_retransmits or outcome.syn_retransmits
                    or outcome.error == "ETIMEDOUT"):
                return "timed out"
            return f"failed: {outcome.error or 'closed'}"
        if outcome is not None and outcome.event in ("reset_received", "reset_sent"):
            return "reset"
        if c.refused:
            return "refused"
        if c.established or (outcome is not None and outcome.event == "established"):
            return "established"
        if c.answered:
            return "replied"
        if "syn-retransmits" in marks:
            return "no reply (SYN retransmits)"
        return "no reply yet"

    @property
    def state(self) -> str:
        return str(self._cached()["state"])

    @property
    def failed(self) -> bool:
        return bool(self._cached()["failed"])

    @property
    def marks(self) -> set[str]:
        marks: set[str] = self._cached()["marks"]
        return marks

    @property
    def drops(self) -> Counter[str]:
        drops: Counter[str] = self._cached()["drops"]
        return drops

    @property
    def packets(self) -> int:
        return int(self._cached()["packets"])

    @property
    def bytes(self) -> int:
        return int(self._cached()["bytes"])

    @property
    def retransmits(self) -> int:
        return int(self._cached()["retransmits"])

    @property
    def last_ns(self) -> int:
        return int(self._cached()["last_ns"])

    @property
    def nat(self) -> str:
        return nat_text(self.conn.nat) if self.conn.nat is not None else ""

    @property
    def src_name(self) -> str:
        return name(self.src_ep)

    @property
    def dst_name(self) -> str:
        text = name(self.dst_ep)
        if self.backend_ep is not None:
            text += f" => {name(self.backend_ep)}"
        return text

    def timeline(self) -> list[Step]:
        """Every hook it crossed (with the tuple seen there), its NAT, drops, ICMP
        errors and socket events, in time order."""
        c = self.conn
        steps = [_hop_step(h) for h in c.hops.values()]
        if c.nat is not None:
            n = c.nat
            steps.append(Step(n.wall_ns, "nat", f"conntrack {n.ct_event or n.manip or ''}"
                              .rstrip(), _tuple(n.reply_dst, n.reply_src),
                              nat_text(n) + (" replied" if n.replied else " not replied"),
                              False))
        for d in c.drops:
            steps.append(Step(d.wall_ns, "drop", d.ifname or f"netns {d.netns}",
                              _tuple(d.src, d.dst),
                              f"{d.reason} x{d.count} at {d.location or '?'}",
                              d.reason not in BENIGN_DROPS))
        for i in c.icmp_sent:
            icmp = "ICMPv6" if i.via == "tc" else "ICMP"
            steps.append(Step(i.wall_ns, "icmp", i.ifname, _tuple(i.src, i.dst),
                              f"{icmp} {i.meaning} sent to {ep_text(i.src.ip, i.src.port)}",
                              True))
        steps.extend(_tcp_step(t) for t in self._cached()["tcp"])
        return sorted(steps, key=lambda s: s.time_ns)

    def subject(self) -> Subject:
        c = self.conn
        key = _tuple(c.src, c.dst)
        s = Subject(text=f"{self.src_name} {self.dst_name} {self.state} {self.nat} "
                         f"{' '.join(self.marks)} {key}".lower())
        for ep in (self.src_ep, self.dst_ep, self.backend_ep):
            add_endpoint(s, ep)
        for r in self.drops:
            s.add("reason", r)
        for t in self._cached()["tcp"]:
            s.add("reason", t.error)
            s.add("kind", "tcp")
        for i in c.icmp_sent:
            s.add("reason", i.meaning)
            s.add("kind", "icmp")
        if c.hops:
            s.add("kind", "flow")
        if c.nat is not None:
            s.add("kind", "nat")
        if c.drops:
            s.add("kind", "drop")
        return s


class ConnectionView:
    """Records in, rows out (see the module's docstring)."""

    def __init__(self) -> None:
        self.table = ConnectionTable()
        self.rows: dict[Key, Row] = {}
        self.skipped = 0           # records of a joined kind the parser could not read
        # the client's socket events carry no source port: the connections of each
        # (src ip, dst ip, dst port), oldest first, the newest ENDS_KEPT
        self._by_ends: dict[Ends, list[Row]] = {}
        self._portless: dict[Ends, deque[TcpEvent]] = {}     # their socket events

    def __len__(self) -> int:
        return len(self.table.conns)

    def __iter__(self) -> Iterator[Row]:
        rows = self.rows
        for k in self.table.conns:
            row = rows.get(k)
            if row is not None:
                yield row

    def apply(self, rec: Record, made_from: object | None = None) -> Row | None:
        """`made_from`: the event `rec` was made from, when the feed has it; else the
        record is parsed back into it."""
        if rec.get("kind") not in JOINED_KINDS:
            return None
        if isinstance(made_from, EVENT_TYPES):
            ev: Event = made_from
        else:
            try:
                parsed = event_of(rec)
            except BAD_RECORD:
                self.skipped += 1
                return None
            if parsed is None:
                return None
            ev = parsed
        c = self.table.add(ev)
        if c is None:
            if isinstance(ev, TcpEvent) and not ev.src.port:
                self._add_portless(ev)
            return None
        row = self._row(c, rec)
        row.version += 1
        if not row.named or isinstance(ev, NatEvent):
            self._name(row, ev, rec)
        return row

    def _row(self, c: Connection, rec: Record) -> Row:
        row = self.rows.get(c.key)
        if row is not None and row.conn is c:
            return row
        row = Row(c, self, {"ip": c.key[1], "port": c.key[2]},
                  {"ip": c.key[3], "port": c.key[4]})
        self.rows[c.key] = row
        same = self._by_ends.setdefault((c.key[1], c.key[3], c.key[4]), [])
        if same:    # the socket events after this one's start were the previous one's
            same[-1].version += 1
            if c.first_ns < same[-1].conn.first_ns:     # reports arrive out of order
                same.append(row)
                same.sort(key=lambda r: r.conn.first_ns)
            else:
                same.append(row)
        else:
            same.append(row)
        if len(same) > ENDS_KEPT:
            del same[0]
        if len(self.rows) > 2 * len(self.table.conns) + 1000:
            self._prune()     # merged and evicted connections
        return row

    def _prune(self) -> None:
        live = self.table.conns
        self.rows = {k: r for k, r in self.rows.items() if live.get(k) is r.conn}
        for ends, same in list(self._by_ends.items()):
            same[:] = [r for r in same if live.get(r.key) is r.conn]
            if not same:
                del self._by_ends[ends]
                self._portless.pop(ends, None)

    def _add_portless(self, ev: TcpEvent) -> None:
        ends = (ev.src.ip, ev.dst.ip, ev.dst.port)
        q = self._portless.get(ends)
        if q is None:
            q = self._portless[ends] = deque(maxlen=ENDS_KEPT)
        q.append(ev)
        row = self._owner_row(ev)
        if row is not None:
            row.version += 1

    def _owner_row(self, ev: TcpEvent) -> Row | None:
        live, due = self.table.conns, ev.wall_ns + CONNECT_SLACK_NS
        for row in reversed(self._by_ends.get((ev.src.ip, ev.dst.ip, ev.dst.port), ())):
            if row.conn.first_ns <= due and live.get(row.key) is row.conn:
                return row
        return None

    def owner(self, ev: TcpEvent) -> Connection | None:
        """The connection a socket event without a source port belongs to: the newest
        of its addresses that started before it (or CONNECT_SLACK_NS after)."""
        row = self._owner_row(ev)
        return row.conn if row is not None else None

    def portless(self, row: Row) -> list[TcpEvent]:
        """The socket events without a source port that belong to `row`: from its
        start to the next connection's of the same addresses."""
        k = row.key
        ends = (k[1], k[3], k[4])
        q = self._portless.get(ends)
        same = self._by_ends.get(ends, [])
        i = next((i for i in range(len(same) - 1, -1, -1) if same[i] is row), None)
        if not q or i is None:       # none, or the row is older than those kept
            return []
        live = self.table.conns
        nxt = next((r for r in same[i + 1:] if live.get(r.key) is r.conn), None)
        lo = row.conn.first_ns - CONNECT_SLACK_NS
        hi = nxt.conn.first_ns - CONNECT_SLACK_NS if nxt is not None else None
        return [t for t in q if t.wall_ns >= lo and (hi is None or t.wall_ns < hi)]

    def _name(self, row: Row, ev: Event, rec: Record) -> None:
        """Keep the endpoint records that carry Kubernetes names."""
        k = row.conn.key
        if isinstance(ev, NatEvent):
            orig, reply = rec.get("orig") or {}, rec.get("reply") or {}
            ends = [orig.get("src"), orig.get("dst")]
            if "dnat" in ev.translation:
                backend = reply.get("src")
                if isinstance(backend, dict) and (row.backend_ep is None
                                                  or _named(backend)):
                    row.backend_ep = backend
        elif isinstance(ev, DropEvent | IcmpEvent | TcpEvent) or rec.get("kind") == "flow":
            ends = [rec.get("src"), rec.get("dst")]
        else:
            return
        for ep in ends:
            if not isinstance(ep, dict) or not _scoped(ep):
                continue
            if _at(ep, k[1], k[2]):
                row.src_ep = ep
            elif _at(ep, k[3], k[4]):
                row.dst_ep = ep
            elif row.conn.dnat and row.backend_ep is not None and \
                    _at(ep, row.backend_ep.get("ip"), row.backend_ep.get("port")):
                row.backend_ep = ep
        row.named = _scoped(row.src_ep) and _scoped(row.dst_ep) and (
            not row.conn.dnat or _scoped(row.backend_ep))
