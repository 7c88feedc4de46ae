"""Connections joined from flow, nat, drop, tcp and icmp records, for the TUI.

STAND-IN: tracer/pipeline/connections.py (issue 8) builds the joined connection view
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
    """One line of a connection's timeline."""

    time_ns: int
    kind: str
    where: str
    tuple: str
    detail: str
    failure: bool = False


@dataclass
class Connection:
    key: Tuple5
    src: dict[str, Any]
    dst: dict[str, Any]
    first_ns: int
    last_ns: int = 0
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
    def failed(self) -> bool:
        s = self.state
        return s not in ("established", "replied", "no reply yet") or bool(
            self.marks - {"syn-retransmits"})

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

    def add(self, hop: Hop) -> None:
        if len(self.timeline) >= MAX_TIMELINE:
            del self.timeline[:MAX_TIMELINE // 4]
        self.timeline.append(hop)
        self.last_ns = max(self.last_ns, hop.time_ns)
        self.version += 1


def _richer(old: dict[str, Any], new: Any) -> dict[str, Any]:
    """Keep the endpoint form that carries Kubernetes names."""
    if isinstance(new, dict) and any(k in new for k in ("pod", "service", "node")) and \
            not any(k in old for k in ("pod", "service", "node")):
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

    def _get(self, t: Tuple5, rec: Record, ts: int) -> tuple[Connection, str]:
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
        oldest = sorted(self.by_key.values(), key=lambda c: (c.failed, c.last_ns))
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
        into.timeline = sorted(into.timeline + other.timeline, key=lambda h: h.time_ns)
        into.last_ns = max(into.last_ns, other.last_ns)
        del self.by_key[other.key]
        for a, k in list(self.alias.items()):
            if k == other.key:
                self.alias[a] = into.key

    def apply(self, rec: Record) -> Connection | None:
        kind = rec.get("kind")
        fn = _APPLY.get(kind)  # type: ignore[arg-type]
        if fn is None:
            return None
        conn: Connection | None = fn(self, rec, time_ns(rec.get("time")))
        return conn

    # --- by record kind -------------------------------------------------------

    def _flow(self, rec: Record, ts: int) -> Connection | None:
        t = _tuple(rec.get("proto"), rec.get("src"), rec.get("dst"))
        if t is None or t[2] is None:     # not TCP/UDP: no connection to speak of
            return None
        conn, d = self._get(t, rec, ts)
        where = f"{rec.get('ifname')} ({rec.get('role')}) {rec.get('direction')}"
        conn.counters[(where, d)] = (int(rec.get("packets") or 0), int(rec.get("bytes") or 0))
        marks = set(rec.get("marks") or ())
        conn.marks |= marks
        if d == "fwd":
            conn.src = _richer(conn.src, rec.get("src"))
            conn.dst = _richer(conn.dst, rec.get("dst"))
        flags = ",".join(rec.get("packet_tcp_flags") or rec.get("tcp_flags") or ())
        detail = f"{rec.get('report')} {rec.get('packets')} pkts {rec.get('bytes')} B" + \
            (f" [{flags}]" if flags else "") + (f" marks: {', '.join(sorted(marks))}"
                                               if marks else "")
        conn.add(Hop(ts, "flow", where, _text(t), detail, bool(marks - {"syn-retransmits"})))
        return conn

    def _nat(self, rec: Record, ts: int) -> Connection | None:
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
        trans = list(rec.get("translation") or ())
        parts = []
        if "dnat" in trans:
            conn.backend = _richer(conn.backend or {}, reply.get("src")) or reply.get("src")
            parts.append(f"DNAT {addr(orig.get('dst'))} -> {addr(reply.get('src'))}")
        if "snat" in trans:
            parts.append(f"SNAT {addr(orig.get('src'))} -> {addr(reply.get('dst'))}")
        conn.nat = "; ".join(parts)
        conn.replied = conn.replied or bool(rec.get("replied"))
        conn.add(Hop(ts, "nat", f"conntrack {rec.get('ct_event') or rec.get('manip') or ''}",
                     _text(after), conn.nat + (" replied" if rec.get("replied") else
                                               " not replied")))
        return conn

    def _drop(self, rec: Record, ts: int) -> Connection | None:
        t = _tuple(rec.get("proto"), rec.get("src"), rec.get("dst"))
        if t is None or t[2] is None:    # not TCP/UDP (the drops pane counts it)
            return None
        conn, _d = self._get(t, rec, ts)
        reason = str(rec.get("reason"))
        count = rec.get("count") or 1
        conn.drops[reason] += count if isinstance(count, int) else 1
        conn.marks |= set(rec.get("marks") or ())
        conn.add(Hop(ts, "drop", rec.get("ifname") or f"netns {rec.get('netns')}", _text(t),
                     f"{reason} x{count} at {rec.get('location') or '?'}",
                     reason not in BENIGN_DROPS))
        return conn

    def _icmp(self, rec: Record, ts: int) -> Connection | None:
        t = _tuple(rec.get("proto"), rec.get("src"), rec.get("dst"))
        if t is None:
            return None
        conn, _d = self._get(t, rec, ts)
        meaning = str(rec.get("meaning") or rec.get("icmp"))
        conn.icmp.append(meaning)
        conn.add(Hop(ts, "icmp", rec.get("ifname") or "", _text(t),
                     f"ICMP {meaning} sent to {addr(rec.get('src'))}", True))
        return conn

    def _tcp(self, rec: Record, ts: int) -> Connection | None:
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
        proc = rec.get("process") or {}
        who = f" by {proc.get('comm')}[{proc.get('pid')}]" if proc else ""
        conn.add(Hop(ts, "tcp", "socket", _text(conn.key),
                     f"{event} {rec.get('error') or ''} syn retransmits "
                     f"{rec.get('syn_retransmits')}{who}",
                     event in ("failed", "reset_received", "error")))
        return conn


_APPLY = {"flow": Connections._flow, "nat": Connections._nat, "drop": Connections._drop,
          "icmp": Connections._icmp, "tcp": Connections._tcp}
