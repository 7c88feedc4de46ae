"""Connections joined from flow, nat, drop, tcp and icmp records, for the TUI.

STAND-IN: tracer/pipeline/connections.py builds the joined connection view
in the pipeline; at integration this module is replaced by it and the TUI reads that
view instead.  It is kept small on purpose.

A connection is keyed by its original 5-tuple (as the client sent it).  NAT records
alias the translated tuples to it (and fold in a connection that was started from a
translated tuple seen before the conntrack event arrived); a tuple seen reversed is
the reply direction.  TCP records whose source port is still 0 (`connect`, `failed`)
join the latest connection of the same source address and destination.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tui.feed import Record
from tui.filtering import Subject, add_endpoint
from tui.records import addr, name, time_ns

Tuple5 = tuple[str, Any, Any, Any, Any]   # proto, src ip, src port, dst ip, dst port

MAX_CONNECTIONS = 20_000
MAX_TIMELINE = 200
BENIGN_DROPS = frozenset({"QUEUE_PURGE"})   # a socket purging its queue: the peer was reached


def _tuple(proto: Any, src: Any, dst: Any) -> Tuple5 | None:
    if not isinstance(src, dict) or not isinstance(dst, dict) or src.get("ip") is None:
        return None
    return (str(proto), src.get("ip"), src.get("port"), dst.get("ip"), dst.get("port"))


def _reverse(t: Tuple5) -> Tuple5:
    return (t[0], t[3], t[4], t[1], t[2])


def _text(t: Tuple5) -> str:
    return f"{addr({'ip': t[1], 'port': t[2]})} -> {addr({'ip': t[3], 'port': t[4]})}"


@dataclass
class Hop:
    """One line of a connection's timeline: the record, formatted only when shown (the
    join runs for every event; the timeline is read for one connection at a time)."""

    time: str                  # RFC 3339 (sorts as text)
    kind: str
    rec: Record
    tuple5: Tuple5

    @property
    def time_ns(self) -> int:
        return time_ns(self.time)

    @property
    def tuple(self) -> str:
        return _text(self.tuple5)

    @property
    def where(self) -> str:
        r = self.rec
        if self.kind == "flow":
            return f"{r.get('ifname')} ({r.get('role')}) {r.get('direction')}"
        if self.kind == "nat":
            return f"conntrack {r.get('ct_event') or r.get('manip') or ''}".rstrip()
        if self.kind == "drop":
            return str(r.get("ifname") or f"netns {r.get('netns')}")
        if self.kind == "icmp":
            return str(r.get("ifname") or "")
        return "socket"

    @property
    def detail(self) -> str:
        r = self.rec
        if self.kind == "flow":
            flags = ",".join(r.get("packet_tcp_flags") or r.get("tcp_flags") or ())
            marks = sorted(r.get("marks") or ())
            return (f"{r.get('report')} {r.get('packets')} pkts {r.get('bytes')} B"
                    + (f" [{flags}]" if flags else "")
                    + (f" marks: {', '.join(marks)}" if marks else ""))
        if self.kind == "nat":
            return nat_text(r) + (" replied" if r.get("replied") else " not replied")
        if self.kind == "drop":
            return f"{r.get('reason')} x{r.get('count')} at {r.get('location') or '?'}"
        if self.kind == "icmp":
            icmp = "ICMPv6" if r.get("via") == "tc" else "ICMP"
            return f"{icmp} {r.get('meaning') or r.get('icmp')} sent to {addr(r.get('src'))}"
        proc = r.get("process") or {}
        who = f" by {proc.get('comm')}[{proc.get('pid')}]" if proc else ""
        return (f"{r.get('event')} {r.get('error') or ''} syn retransmits "
                f"{r.get('syn_retransmits')}{who}")

    @property
    def failure(self) -> bool:
        r = self.rec
        if self.kind == "flow":
            return bool(set(r.get("marks") or ()) - {"syn-retransmits"})
        if self.kind == "drop":
            return r.get("reason") not in BENIGN_DROPS
        if self.kind == "tcp":
            return r.get("event") in ("failed", "reset_received", "error")
        return self.kind == "icmp"


def nat_text(rec: Record) -> str:
    orig, reply = rec.get("orig") or {}, rec.get("reply") or {}
    trans = rec.get("translation") or ()
    parts = []
    if "dnat" in trans:
        parts.append(f"DNAT {addr(orig.get('dst'))} -> {addr(reply.get('src'))}")
    if "snat" in trans:
        parts.append(f"SNAT {addr(orig.get('src'))} -> {addr(reply.get('dst'))}")
    return "; ".join(parts)


@dataclass
class Connection:
    key: Tuple5
    src: dict[str, Any]
    dst: dict[str, Any]
    first_time: str
    last_time: str = ""
    nat: str = ""
    backend: dict[str, Any] | None = None
    counters: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    drops: Counter[str] = field(default_factory=Counter)
    icmp: list[str] = field(default_factory=list)
    tcp: str | None = None
    tcp_error: str | None = None
    retransmits: int = 0
    marks: set[str] = field(default_factory=set)
    replied: bool = False
    timeline: list[Hop] = field(default_factory=list)
    version: int = 0           # bumped on every change (tables update only changed rows)
    _cached_version: int = -1
    _cached: str = ""
    _cached_failed: bool = False

    @property
    def proto(self) -> str:
        return self.key[0]

    def _sum(self, direction: str, i: int) -> int:
        return max((v[i] for (_w, d), v in self.counters.items() if d == direction), default=0)

    @property
    def packets(self) -> int:
        return self._sum("fwd", 0) + self._sum("rev", 0)

    @property
    def bytes(self) -> int:
        return self._sum("fwd", 1) + self._sum("rev", 1)

    @property
    def state(self) -> str:
        """Cached per version: the table asks every connection at every redraw."""
        if self._cached_version != self.version:
            self._cached = self._state()
            self._cached_failed = self._cached not in ("established", "replied",
                                                       "no reply yet") or \
                bool(self.marks - {"syn-retransmits"})
            self._cached_version = self.version
        return self._cached

    @property
    def failed(self) -> bool:
        if self._cached_version != self.version:
            self.state  # noqa: B018 - fills the cache
        return self._cached_failed

    def _state(self) -> str:
        if self.icmp:
            return f"refused: {self.icmp[-1]}" if "port-unreachable" in self.icmp[-1] \
                else f"unreachable: {self.icmp[-1]}"
        if self.tcp == "failed" and self.tcp_error == "ECONNREFUSED":
            return "refused"
        real = [r for r in self.drops if r not in BENIGN_DROPS]
        if real:
            return "dropped: " + ", ".join(real)
        if self.tcp == "failed":
            if self.tcp_error in (None, "ETIMEDOUT") and (self.retransmits or
                                                          self.tcp_error == "ETIMEDOUT"):
                return "timed out"
            return f"failed: {self.tcp_error or 'closed'}"
        if self.tcp in ("reset_received", "reset_sent"):
            return "reset"
        if self.tcp == "established":
            return "established"
        if self.replied or self._sum("rev", 0):
            return "replied"
        if "syn-retransmits" in self.marks:
            return "no reply (SYN retransmits)"
        return "no reply yet"

    @property
    def src_name(self) -> str:
        return name(self.src)

    @property
    def dst_name(self) -> str:
        text = name(self.dst)
        if self.backend is not None:
            text += f" => {name(self.backend)}"
        return text

    def subject(self) -> Subject:
        s = Subject(text=f"{self.src_name} {self.dst_name} {self.state} {self.nat} "
                         f"{' '.join(self.marks)} {_text(self.key)}".lower())
        for ep in (self.src, self.dst, self.backend):
            add_endpoint(s, ep)
        for r in self.drops:
            s.add("reason", r)
        s.add("reason", self.tcp_error)
        for m in self.icmp:
            s.add("reason", m)
        kinds = {h.kind for h in self.timeline}
        for k in kinds:
            s.add("kind", k)
        return s

    @property
    def last_ns(self) -> int:
        return time_ns(self.last_time)

    def add(self, hop: Hop) -> None:
        if len(self.timeline) >= MAX_TIMELINE:
            del self.timeline[:MAX_TIMELINE // 4]
        self.timeline.append(hop)
        if hop.time > self.last_time:
            self.last_time = hop.time
        self.version += 1


def _named(ep: dict[str, Any]) -> bool:
    return "pod" in ep or "service" in ep or "node" in ep


def _richer(old: dict[str, Any], new: Any) -> dict[str, Any]:
    """Keep the endpoint form that carries Kubernetes names."""
    if isinstance(new, dict) and _named(new) and not _named(old):
        return new
    return old


class Connections:
    def __init__(self, max_connections: int = MAX_CONNECTIONS) -> None:
        self.by_key: dict[Tuple5, Connection] = {}
        self.alias: dict[Tuple5, Tuple5] = {}      # a forward tuple -> connection key
        self.partial: dict[tuple[Any, ...], Tuple5] = {}   # tcp with port 0
        self.max_connections = max_connections

    def __len__(self) -> int:
        return len(self.by_key)

    def _find(self, t: Tuple5) -> tuple[Connection, str] | None:
        k = self.alias.get(t)
        if k is not None and k in self.by_key:
            return self.by_key[k], "fwd"
        k = self.alias.get(_reverse(t))
        if k is not None and k in self.by_key:
            return self.by_key[k], "rev"
        return None

    def _get(self, t: Tuple5, rec: Record, ts: str) -> tuple[Connection, str]:
        found = self._find(t)
        if found is not None:
            return found
        if len(self.by_key) >= self.max_connections:
            self._evict()
        conn = Connection(t, dict(rec.get("src") or {}), dict(rec.get("dst") or {}), ts)
        self.by_key[t] = conn
        self.alias[t] = t
        self.partial[(t[0], t[1], t[3], t[4])] = t
        return conn, "fwd"

    def _evict(self) -> None:
        oldest = sorted(self.by_key.values(), key=lambda c: (c.failed, c.last_time))
        for c in oldest[:max(1, len(oldest) // 10)]:
            del self.by_key[c.key]
        self.alias = {a: k for a, k in self.alias.items() if k in self.by_key}
        self.partial = {a: k for a, k in self.partial.items() if k in self.by_key}

    def _merge(self, into: Connection, other: Connection) -> None:
        """`other` was started from a translated tuple before its NAT record came."""
        for (where, _d), v in other.counters.items():
            into.counters[(where, "fwd")] = v
        into.drops.update(other.drops)
        into.icmp.extend(other.icmp)
        into.marks |= other.marks
        into.retransmits = max(into.retransmits, other.retransmits)
        into.tcp = into.tcp or other.tcp
        into.timeline = sorted(into.timeline + other.timeline, key=lambda h: h.time)
        into.last_time = max(into.last_time, other.last_time)
        into.version += 1
        del self.by_key[other.key]
        for a, k in list(self.alias.items()):
            if k == other.key:
                self.alias[a] = into.key

    def apply(self, rec: Record) -> Connection | None:
        kind = rec.get("kind")
        fn = _APPLY.get(kind)  # type: ignore[arg-type]
        if fn is None:
            return None
        ts = rec.get("time")
        conn: Connection | None = fn(self, rec, ts if isinstance(ts, str) else "")
        return conn

    # --- by record kind -------------------------------------------------------

    def _flow(self, rec: Record, ts: str) -> Connection | None:
        t = _tuple(rec.get("proto"), rec.get("src"), rec.get("dst"))
        if t is None or t[2] is None:     # not TCP/UDP: no connection to speak of
            return None
        conn, d = self._get(t, rec, ts)
        conn.counters[(f"{rec.get('ifname')} {rec.get('direction')}", d)] = (
            int(rec.get("packets") or 0), int(rec.get("bytes") or 0))
        marks = rec.get("marks")
        if marks:
            conn.marks.update(marks)
        if d == "fwd":
            conn.src = _richer(conn.src, rec.get("src"))
            conn.dst = _richer(conn.dst, rec.get("dst"))
        conn.add(Hop(ts, "flow", rec, t))
        return conn

    def _nat(self, rec: Record, ts: str) -> Connection | None:
        orig, reply = rec.get("orig") or {}, rec.get("reply") or {}
        t = _tuple(rec.get("proto"), orig.get("src"), orig.get("dst"))
        after = _tuple(rec.get("proto"), reply.get("dst"), reply.get("src"))
        if t is None or after is None:
            return None
        conn, _d = self._get(t, {"src": orig.get("src"), "dst": orig.get("dst")}, ts)
        if after != conn.key:
            other = self._find(after)
            if other is not None and other[0] is not conn:
                self._merge(conn, other[0])
            self.alias[after] = conn.key
        if "dnat" in (rec.get("translation") or ()):
            conn.backend = _richer(conn.backend or {}, reply.get("src")) or reply.get("src")
        conn.nat = nat_text(rec)
        conn.replied = conn.replied or bool(rec.get("replied"))
        conn.add(Hop(ts, "nat", rec, after))
        return conn

    def _drop(self, rec: Record, ts: str) -> Connection | None:
        t = _tuple(rec.get("proto"), rec.get("src"), rec.get("dst"))
        if t is None or t[2] is None:    # not TCP/UDP (the drops pane counts it)
            return None
        conn, _d = self._get(t, rec, ts)
        count = rec.get("count")
        conn.drops[str(rec.get("reason"))] += count if isinstance(count, int) else 1
        conn.marks.update(rec.get("marks") or ())
        conn.add(Hop(ts, "drop", rec, t))
        return conn

    def _icmp(self, rec: Record, ts: str) -> Connection | None:
        t = _tuple(rec.get("proto"), rec.get("src"), rec.get("dst"))
        if t is None:
            return None
        conn, _d = self._get(t, rec, ts)
        conn.icmp.append(str(rec.get("meaning") or rec.get("icmp")))
        conn.add(Hop(ts, "icmp", rec, t))
        return conn

    def _tcp(self, rec: Record, ts: str) -> Connection | None:
        src, dst = rec.get("src") or {}, rec.get("dst") or {}
        event = rec.get("event")
        if not src.get("port"):
            key = self.partial.get(("tcp", src.get("ip"), dst.get("ip"), dst.get("port")))
            if key is None or key not in self.by_key or event == "connect":
                return None         # no packet yet: the log has it
            conn = self.by_key[key]
        else:
            t = _tuple("tcp", src, dst)
            if t is None:
                return None
            conn, _d = self._get(t, rec, ts)
        if event in ("established", "failed", "reset_received", "reset_sent", "error"):
            if event != "error" or conn.tcp is None:
                conn.tcp = str(event)
            conn.tcp_error = rec.get("error") or conn.tcp_error
        conn.retransmits = max(conn.retransmits, int(rec.get("syn_retransmits") or 0))
        conn.add(Hop(ts, "tcp", rec, conn.key))
        return conn


_APPLY = {"flow": Connections._flow, "nat": Connections._nat, "drop": Connections._drop,
          "icmp": Connections._icmp, "tcp": Connections._tcp}
