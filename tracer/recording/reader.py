"""Read a recording.  Recordings are hostile input: they travel between machines and
versions, and a truncated or crafted file must give an error, never a crash or a hang.

- The header's magic and major version are checked first: a wrong one raises
  RecordingFormatError (the CLI prints it and exits 1).
- msgpack's streaming Unpacker stops silently at a truncated record: the position
  after the last whole record is compared with the file size, and a shortfall is
  reported as "truncated at offset N".  Undecodable bytes end the read the same way
  ("damaged at offset N"); every whole record before them has been delivered.
- Sizes are capped (format.Limits) so a crafted length cannot exhaust memory.
- Unknown record types, event kinds and columns are skipped and counted; a record
  whose values have the wrong types is skipped and counted, never passed on.
- Older versions are upgraded by the declarative fix-ups of format.FIXUPS.

Usage (the TUI, diagnose, replay):

    with RecordingReader(path) as rec:
        rec.header.node, rec.header.attached, ...
        for item in rec:            # Event | MetadataRecord | NodeState | SyncMarker | EndRecord
            ...
        rec.warnings()              # what was skipped, truncated or damaged
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import msgpack

from tracer.events.finding import InputCoverage
from tracer.events.model import Event
from tracer.recording.blocks import BlockPlan, decode_block
from tracer.recording.format import (
    CHECKED_SINCE,
    EVENT_TYPES,
    FIXUPS,
    LIMITS,
    MAGIC,
    VERSION,
    FixUp,
    Limits,
    Rec,
    checksum,
    structs_of,
)
from tracer.recording.metadata import ACTIONS, MetadataRecord
from tracer.recording.opener import OpenedInput, open_input
from tracer.recording.plan import Columns, Malformed, Plan
from tracer.recording.writer import EndInfo, NodeState
from tracer.util.errors import RecordingFormatError

_UNPACK_ERRORS = (msgpack.UnpackException, ValueError)
_EVENT = int(Rec.EVENT)
_EVENTS = int(Rec.EVENTS)
_CHECKED = int(Rec.CHECKED)


# The probe families of a header that does not list them (written before it did),
# read off its `attached` labels.  The labels of those versions, by the event or the
# function at their end (the drop probe was a tracepoint, then a raw tracepoint); a
# test holds this table to the loader's hooks.  Not tracer.kernel's table: replay
# imports nothing of the kernel package.
_FAMILY_OF_EVENT = {
    "kfree_skb": "drops", "nf_nat_manip_pkt": "nat",
    "fib_table_lookup": "route", "fib6_table_lookup": "route",
    "neigh_timer_handler": "neigh", "neigh_update": "neigh", "neigh_event_send_dead": "neigh",
    "icmp_send": "icmp",
    "inet_sock_set_state": "tcp", "tcp_retransmit_skb": "tcp", "tcp_send_reset": "tcp",
    "tcp_receive_reset": "tcp", "inet_sk_error_report": "tcp",
    **{f"sys_{edge}_{call}": "sock" for call in ("bind", "connect", "listen", "getsockopt")
       for edge in ("enter", "exit")},
}


def family_of(label: str) -> str | None:
    """The probe family of an attached-probe label ("raw_tracepoint/kfree_skb",
    "tc/tcx: eth0(uplink)"); None for a label it does not know."""
    kind, _, where = label.partition("/")
    if kind == "tc":
        return "tc"
    return _FAMILY_OF_EVENT.get(where.rpartition(":")[2])


def families_of(labels: Sequence[str]) -> list[str]:
    """The families with at least one of `labels` attached, sorted."""
    return sorted({f for f in map(family_of, labels) if f is not None})


@dataclass(frozen=True)
class ClockRef:
    mono_ns: int
    wall_ns: int


@dataclass(frozen=True)
class Header:
    version: tuple[int, int]
    nodetrace_version: str
    argv: tuple[str, ...]
    node: str
    netns: int
    kernel_release: str
    attached: tuple[str, ...]
    unavailable: dict[str, str]
    families: tuple[str, ...]       # the probe families that ran
    clock: ClockRef
    drop_reasons: dict[int, str]
    pod_networks: tuple[str, ...]
    service_networks: tuple[str, ...]
    started_wall_ns: int
    part: int
    raw: dict[str, Any]             # everything, including keys this version does not know
    addresses: tuple[str, ...] = ()   # the node's own (2.1; older recordings: unknown)


@dataclass(frozen=True)
class SyncMarker:
    wall_ns: int
    mono_ns: int
    events: int                     # events written before it


@dataclass(frozen=True)
class ClockMark:
    wall_ns: int                    # the live diagnosis's clock at this point


@dataclass(frozen=True)
class LocalState:
    """What the node itself knew from here on (tracer/metadata/local.py)."""
    wall_ns: int
    listeners: tuple[tuple[str, int, str], ...]    # (ip, port, pod uid)
    # (uid, hostNetwork, ips, namespace, name)
    pods: tuple[tuple[str, bool, tuple[str, ...], str | None, str | None], ...]


def _local_state(rec: list[Any]) -> LocalState:
    wall, body = rec[1], rec[2]
    if type(wall) is not int or type(body) is not dict:
        raise Malformed("local")
    listeners, pods = body.get("listeners", []), body.get("pods", [])
    if type(listeners) is not list or type(pods) is not list:
        raise Malformed("local")

    def opt(v: Any) -> bool:
        return v is None or type(v) is str

    out_l, out_p = [], []
    for ln in listeners:
        if type(ln) is not list or len(ln) != 3 or type(ln[0]) is not str \
                or type(ln[1]) is not int or type(ln[2]) is not str:
            raise Malformed("local listener")
        out_l.append((ln[0], ln[1], ln[2]))
    for p in pods:
        if type(p) is not list or len(p) != 5 or type(p[0]) is not str \
                or type(p[1]) is not bool or type(p[2]) is not list \
                or not all(type(ip) is str for ip in p[2]) or not opt(p[3]) or not opt(p[4]):
            raise Malformed("local pod")
        out_p.append((p[0], p[1], tuple(p[2]), p[3], p[4]))
    return LocalState(wall, tuple(out_l), tuple(out_p))


@dataclass(frozen=True)
class EndRecord:
    wall_ns: int
    events: int
    info: EndInfo
    next_part: str | None


Item = Event | MetadataRecord | NodeState | SyncMarker | ClockMark | LocalState | EndRecord


def _no_ext(_code: int, _data: bytes) -> None:
    return None


def _parse_columns(raw: Any, what: str) -> Columns:
    if type(raw) is not list:
        raise RecordingFormatError(f"header damaged: {what} has no column list")
    names: list[str] = []
    structs: dict[str, str] = {}
    for col in raw:
        if (type(col) is not list or len(col) < 2 or type(col[0]) is not str
                or (col[1] is not None and type(col[1]) is not str)):
            raise RecordingFormatError(f"header damaged: a column of {what}")
        names.append(col[0])
        if col[1] is not None:
            structs[col[0]] = col[1]
    return Columns(names, structs)


def _apply_fixups(kind: str | None, cols: Columns, version: tuple[int, int],
                  fixups: Sequence[FixUp]) -> tuple[str | None, Columns]:
    for fx in fixups:
        if version >= fx.before or fx.kind != kind:
            continue
        cols.names = [fx.rename.get(n, n) for n in cols.names]
        cols.structs = {fx.rename.get(k, k): v for k, v in cols.structs.items()}
        cols.defaults.update(fx.defaults)
        cols.ignored.update(fx.drop)
        if fx.rename_kind:
            kind = fx.rename_kind
    return kind, cols


# --- the reader ----------------------------------------------------------------------


def _as(t: type, v: Any, what: str) -> Any:
    if type(v) is not t:
        raise RecordingFormatError(f"header damaged: {what}")
    return v


class RecordingReader:
    def __init__(self, source: Path | str | OpenedInput, *, fixups: Sequence[FixUp] = FIXUPS,
                 limits: Limits = LIMITS) -> None:
        """`source`: a path, `-` (standard input), or an input open_input opened.
        Nothing is seeked: a pipe reads as a file does."""
        opened = source if isinstance(source, OpenedInput) else \
            open_input(source, allow=("recording",))
        if opened.kind != "recording":
            opened.close()
            raise RecordingFormatError(f"{opened.name} is not a nodetrace recording "
                                       "(wrong magic)")
        self.opened = opened
        self.path = opened.path if opened.path is not None else Path(opened.name)
        self.name = opened.name
        self.fixups = fixups
        self.skipped: Counter[str] = Counter()   # warning -> how many records
        self.truncated_at: int | None = None
        self.damaged_at: int | None = None
        self.damage: str | None = None
        self.records = 0                          # whole records read, header included
        self.rejected = 0                         # records whose checksum failed (2.1)
        self.first_rejected_at = 0                # the offset of the first
        self.malformed = 0                        # records of the wrong shape, skipped
        self.rejected_bytes = 0                   # the bytes these two held
        self._stream = opened.stream
        try:
            self._unpacker = msgpack.Unpacker(
                self._stream, read_size=limits.read_size, max_buffer_size=limits.max_buffer,
                max_array_len=limits.max_items, max_map_len=limits.max_items,
                # a checked frame's payload is one whole record: up to the buffer
                max_str_len=limits.max_str, max_bin_len=limits.max_buffer,
                max_ext_len=limits.max_items, unicode_errors="replace",
                # the writer never writes ext types: a crafted one must not reach the
                # consumers as an object they do not expect
                ext_hook=_no_ext, timestamp=2)
            self._inner = functools.partial(
                msgpack.unpackb, max_array_len=limits.max_items, max_map_len=limits.max_items,
                max_str_len=limits.max_str, max_bin_len=limits.max_str,
                max_ext_len=limits.max_items, unicode_errors="replace", ext_hook=_no_ext,
                timestamp=2)
            self._pos = 0
            self._limits = limits
            self.header = self._read_header()
            self.checksums = self.header.version >= CHECKED_SINCE
            self._plans, self._block_plans = self._build_plans()
            self._fast: list[Callable[[Any], Event] | None] = [None] * len(self._plans)
        except BaseException:
            opened.close()
            raise

    @property
    def size(self) -> int:
        """Bytes read so far (the file's size once read to the end)."""
        return self._stream.consumed

    def __enter__(self) -> RecordingReader:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.opened.close()

    # header -------------------------------------------------------------------------

    def _read_header(self) -> Header:
        try:
            rec = next(self._unpacker)
        except StopIteration:
            raise RecordingFormatError(f"{self.name}: the header is truncated") from None
        except _UNPACK_ERRORS as exc:
            raise RecordingFormatError(f"{self.name}: the header is damaged ({exc})") from None
        self._pos = self._unpacker.tell()
        self.records = 1
        if (type(rec) is not list or len(rec) < 4 or rec[0] != Rec.HEADER
                or rec[1] != MAGIC or type(rec[3]) is not dict):
            raise RecordingFormatError(f"{self.name}: the header is damaged")
        v = rec[2]
        if (type(v) is not list or len(v) != 2 or type(v[0]) is not int
                or type(v[1]) is not int):
            raise RecordingFormatError(f"{self.name}: the header's version is damaged")
        version = (v[0], v[1])
        if version[0] > VERSION[0]:
            raise RecordingFormatError(
                f"{self.name} is format {version[0]}.{version[1]}, written by a newer "
                f"nodetrace; this one reads {VERSION[0]}.x: replay it with a newer nodetrace")
        h: dict[str, Any] = dict(rec[3])
        for fx in self.fixups:
            if fx.kind is None and version < fx.before:
                for old, new in fx.rename.items():
                    if old in h:
                        h[new] = h.pop(old)
                for k, value in fx.defaults.items():
                    h.setdefault(k, value)
        self._version = version
        return self._parse_header(version, h)

    def _parse_header(self, version: tuple[int, int], h: dict[str, Any]) -> Header:
        try:
            clock = _as(dict, h.get("clock", {}), "clock")
            nets = _as(dict, h.get("networks", {}), "networks")
            reasons = {}
            for pair in _as(list, h.get("drop_reasons", []), "drop_reasons"):
                pair = _as(list, pair, "drop_reasons")
                reasons[_as(int, pair[0], "drop_reasons")] = _as(str, pair[1], "drop_reasons")
            unavailable = {}
            for pair in _as(list, h.get("unavailable", []), "unavailable"):
                pair = _as(list, pair, "unavailable")
                unavailable[_as(str, pair[0], "unavailable")] = _as(str, pair[1],
                                                                    "unavailable")
            attached = tuple(_as(str, a, "attached")
                             for a in _as(list, h.get("attached", []), "attached"))
            # headers written before they listed the families: read off the labels
            families = (tuple(_as(str, f, "families")
                              for f in _as(list, h["families"], "families"))
                        if "families" in h else tuple(families_of(attached)))
            return Header(
                version=version,
                nodetrace_version=_as(str, h.get("nodetrace", ""), "nodetrace"),
                argv=tuple(_as(str, a, "argv") for a in _as(list, h.get("argv", []), "argv")),
                node=_as(str, h.get("node", ""), "node"),
                netns=_as(int, h.get("netns", 0), "netns"),
                kernel_release=_as(str, h.get("kernel", ""), "kernel"),
                attached=attached,
                unavailable=unavailable,
                families=families,
                clock=ClockRef(_as(int, clock.get("mono_ns", 0), "clock"),
                               _as(int, clock.get("wall_ns", 0), "clock")),
                drop_reasons=reasons,
                pod_networks=tuple(_as(str, n, "networks")
                                   for n in _as(list, nets.get("pod", []), "networks")),
                service_networks=tuple(_as(str, n, "networks")
                                       for n in _as(list, nets.get("service", []),
                                                    "networks")),
                started_wall_ns=_as(int, h.get("started_wall_ns", 0), "started_wall_ns"),
                part=_as(int, h.get("part", 0), "part"),
                raw=h,
                addresses=tuple(_as(str, a, "addresses")
                                for a in _as(list, h.get("addresses", []), "addresses")))
        except IndexError:
            raise RecordingFormatError(f"{self.name}: the header is damaged") from None

    def _build_plans(self) -> tuple[list[Plan | str], list[BlockPlan | str]]:
        """Plans per recorded kind, in the header's order (the kind index), for a 1.x
        row and for a block's columns; a string says why that kind's records are
        skipped."""
        sch = self.header.raw.get("schema")
        if type(sch) is not dict:
            raise RecordingFormatError(f"{self.name}: the header has no event schema")
        structs: dict[str, Plan] = {}
        raw_structs = sch.get("structs", [])
        if type(raw_structs) is not list:
            raise RecordingFormatError(f"{self.name}: header damaged: structs")
        known = {cls.__name__: cls for cls in _all_structs()}
        # a struct may hold another (PortHolder.pod): build until nothing changes
        pending = {}
        for entry in raw_structs:
            if type(entry) is not list or len(entry) < 2 or type(entry[0]) is not str:
                raise RecordingFormatError(f"{self.name}: header damaged: structs")
            pending[entry[0]] = _parse_columns(entry[1], entry[0])
        for _ in range(len(pending) + 1):
            for name, cols in list(pending.items()):
                cls = known.get(name)
                if cls is None:
                    del pending[name]
                    continue
                try:
                    structs[name] = Plan(cls, cols, 0, structs)
                    del pending[name]
                except Malformed:
                    continue
        plans: list[Plan | str] = []
        block_plans: list[BlockPlan | str] = []
        raw_events = sch.get("events", [])
        if type(raw_events) is not list:
            raise RecordingFormatError(f"{self.name}: header damaged: events")
        for entry in raw_events:
            if type(entry) is not list or len(entry) < 2 or type(entry[0]) is not str:
                raise RecordingFormatError(f"{self.name}: header damaged: events")
            kind, cols = _apply_fixups(entry[0], _parse_columns(entry[1], entry[0]),
                                       self._version, self.fixups)
            cls = EVENT_TYPES.get(kind or "")
            if cls is None:
                why = f"event kind {entry[0]!r} unknown to this nodetrace"
                plans.append(why)
                block_plans.append(why)
                continue
            try:
                plan = Plan(cls, cols, 2, structs)
                columns = Plan(cls, cols, 0, structs)
            except Malformed as exc:
                why = f"{kind} events cannot be read: {exc}"
                plans.append(why)
                block_plans.append(why)
                continue
            plan.unknown_warnings = [f"column {kind}.{name} unknown to this nodetrace, ignored"
                                     for name in plan.unknown]
            columns.unknown_warnings = plan.unknown_warnings
            for warning in plan.unknown_warnings:
                self.skipped[warning] += 0     # said even when no record has the kind
            plans.append(plan)
            block_plans.append(BlockPlan(columns))
        return plans, block_plans

    # records ------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Item]:
        for chunk in self.chunks():
            if type(chunk) is list:
                yield from chunk
            else:
                yield chunk   # type: ignore[misc]

    def chunks(self) -> Iterator[list[Event] | Item]:
        """The records in order: a block's events as one list (replay's fast loop
        takes them whole), any other record as its item."""
        unpacker, tell, decode = self._unpacker, self._unpacker.tell, self._decode
        # 1.x event rows: a kind's compiled plan is looked up here once _decode has
        # compiled it (a kind with warnings to count always goes the long way)
        fast = self._fast
        n_fast = len(fast)
        blocks, max_block, count = self._block_plans, self._limits.max_block, self._count
        pos, records = self._pos, self.records
        checked, unwrap = self.checksums, self._unwrap
        try:
            while True:
                try:
                    rec = next(unpacker)
                except StopIteration:
                    break
                except _UNPACK_ERRORS as exc:
                    self.damaged_at = pos
                    self.damage = str(exc) or type(exc).__name__
                    # to the end, so the bytes skipped are counted (and a writer into
                    # our pipe is not cut off)
                    while self._stream.read(1 << 20):
                        pass
                    return
                start, pos = pos, tell()
                records += 1
                item: list[Event] | Item | None
                try:
                    if type(rec) is list and len(rec) == 3 and rec[0] == _CHECKED:
                        rec = unwrap(rec, pos - start)
                        if rec is None:
                            continue
                    elif checked:
                        if not self.rejected:
                            self.first_rejected_at = start
                        self.rejected += 1
                        self.rejected_bytes += pos - start
                        continue
                    if type(rec) is list and len(rec) > 1:
                        if rec[0] == _EVENTS:
                            item = decode_block(rec, blocks, max_block, count) or None
                        elif rec[0] == _EVENT and type(idx := rec[1]) is int \
                                and 0 <= idx < n_fast and (dec := fast[idx]) is not None:
                            item = dec(rec)
                        else:
                            item = decode(rec)
                    else:
                        item = decode(rec)
                except Malformed as exc:
                    self.skipped[f"malformed record skipped ({exc})"] += 1
                    self.malformed += 1
                    self.rejected_bytes += pos - start
                    continue
                if item is not None:
                    yield item
        finally:
            self._pos, self.records = pos, records
        if pos < self.size:
            self.truncated_at = pos

    def _unwrap(self, rec: list[Any], size: int) -> Any:
        """A checked frame's record, or None when its checksum fails (counted)."""
        crc, payload = rec[1], rec[2]
        if type(payload) is not bytes or type(crc) is not int:
            raise Malformed("a checked frame")
        if checksum(payload) != crc:
            if not self.rejected:
                self.first_rejected_at = self._unpacker.tell() - size
            self.rejected += 1
            self.rejected_bytes += size
            return None
        try:
            return self._inner(payload)
        except _UNPACK_ERRORS as exc:
            raise Malformed(f"a checked frame's payload: {str(exc)[:60]}") from None

    def _count(self, warning: str, events: int) -> None:
        self.skipped[warning] += events

    def events(self) -> Iterator[Event]:
        for item in self:
            if not isinstance(item, MetadataRecord | NodeState | SyncMarker | ClockMark
                              | LocalState | EndRecord):
                yield item

    def _decode(self, rec: Any) -> Item | None:
        if type(rec) is not list or not rec:
            raise Malformed("not an array")
        t = rec[0]
        if t == Rec.EVENT and len(rec) > 1:
            idx = rec[1]
            if type(idx) is not int or not 0 <= idx < len(self._plans):
                raise Malformed("event kind index out of range")
            plan = self._plans[idx]
            if isinstance(plan, str):
                self.skipped[plan] += 1
                return None
            ev: Event = plan.compiled()(rec)
            if not plan.unknown_warnings:
                self._fast[idx] = plan.compiled()
            for warning in plan.unknown_warnings:
                self.skipped[warning] += 1
            return ev
        if type(t) is not int:
            raise Malformed("record type is not a number")
        if t == Rec.EVENTS:
            raise Malformed("a block without entries")
        if t == Rec.METADATA:
            self._extra(rec, 5, "metadata")
            _, wall, kind, action, obj = rec[:5]
            if type(wall) is not int or type(kind) is not str or type(action) is not str \
                    or type(obj) is not dict:
                raise Malformed("metadata")
            if action not in ACTIONS:
                raise Malformed(f"metadata action {action[:40]!r}")
            return MetadataRecord(kind, action, obj, wall)
        if t == Rec.NODE_STATE:
            self._extra(rec, 3, "node-state")
            if type(rec[1]) is not int or type(rec[2]) is not dict:
                raise Malformed("node-state")
            return NodeState(items=rec[2], wall_ns=rec[1])
        if t == Rec.SYNC:
            self._extra(rec, 4, "sync")
            if not all(type(v) is int for v in rec[1:4]):
                raise Malformed("sync")
            return SyncMarker(rec[1], rec[2], rec[3])
        if t == Rec.CLOCK:
            self._extra(rec, 2, "clock")
            if type(rec[1]) is not int:
                raise Malformed("clock")
            return ClockMark(rec[1])
        if t == Rec.LOCAL:
            self._extra(rec, 3, "local")
            return _local_state(rec)
        if t == Rec.END:
            self._extra(rec, 3, "end")
            return self._end(rec)
        if t == Rec.CHECKED:
            raise Malformed("a checked frame")
        if t == Rec.HEADER:
            self.skipped["a second header skipped"] += 1
            return None
        self.skipped[f"record type {t} unknown to this nodetrace, skipped"] += 1
        return None

    def _extra(self, rec: list[Any], n: int, what: str) -> None:
        if len(rec) < n:
            raise Malformed(what)
        if len(rec) > n:
            self.skipped[f"{len(rec) - n} unknown value(s) in {what} records ignored"] += 1

    def _end(self, rec: list[Any]) -> EndRecord:
        wall, d = rec[1], rec[2]
        if type(wall) is not int or type(d) is not dict:
            raise Malformed("end")
        lost = d.get("lost", {})
        ints = ("events", "received", "decode_errors")
        if (type(d.get("reason")) is not str or type(lost) is not dict
                or not all(type(d.get(k, 0)) is int for k in ints)
                or not all(type(k) is str and type(v) is int for k, v in lost.items())
                or (d.get("next_part") is not None and type(d["next_part"]) is not str)):
            raise Malformed("end")
        return EndRecord(wall_ns=wall, events=d.get("events", 0),
                         info=EndInfo(d["reason"], d.get("received", 0),
                                      d.get("decode_errors", 0), lost),
                         next_part=d.get("next_part"))

    # what went wrong ----------------------------------------------------------------

    def coverage(self) -> InputCoverage:
        """How much of the file was read, for a diagnosis's coverage (the figures the
        warnings say in words)."""
        end = self.truncated_at if self.truncated_at is not None else self.damaged_at
        v = self.header.version
        return InputCoverage(
            kind="recording", name=self.name, format=f"{v[0]}.{v[1]}",
            checksums=self.checksums, records=self.records, bytes=self.size,
            bytes_skipped=self.rejected_bytes + (self.size - end if end is not None else 0),
            blocks_rejected=self.rejected + self.malformed,
            truncated_at=self.truncated_at, damaged_at=self.damaged_at)

    def unchecked(self) -> str | None:
        """Said once for a file older than 2.1 (not a warning: nothing is wrong)."""
        if self.checksums:
            return None
        v = self.header.version
        return (f"{self.name}: format {v[0]}.{v[1]} has no checksums: damage inside a "
                "record may go unnoticed")

    def warnings(self) -> list[str]:
        out = [f"{msg} ({n} record{'s' if n != 1 else ''})" if n else msg
               for msg, n in self.skipped.items()]
        if self.rejected:
            out.append(f"{self.name}: {self.rejected} record(s) failed their checksum "
                       f"(the first at offset {self.first_rejected_at}), skipped whole")
        if self.truncated_at is not None:
            out.append(f"{self.name}: truncated at offset {self.truncated_at} "
                       f"(of {self.size} bytes); every whole record before it was read")
        if self.damaged_at is not None:
            out.append(f"{self.name}: damaged at offset {self.damaged_at} ({self.damage}); "
                       "every whole record before it was read, nothing after it")
        return out


@functools.cache
def _all_structs() -> frozenset[type]:
    found: dict[str, type] = {}
    for cls in EVENT_TYPES.values():
        structs_of(cls, found)
    return frozenset(found.values())


@dataclass
class Recording:
    """A whole recording in memory: for small files (tests, the TUI's golden input)."""

    header: Header
    events: list[Event]
    metadata: list[MetadataRecord]
    node_states: list[NodeState]
    end: EndRecord | None
    warnings: list[str]


def load(path: Path | str, **kwargs: Any) -> Recording:
    with RecordingReader(path, **kwargs) as rec:
        events: list[Event] = []
        metadata: list[MetadataRecord] = []
        states: list[NodeState] = []
        end: EndRecord | None = None
        for item in rec:
            if isinstance(item, MetadataRecord):
                metadata.append(item)
            elif isinstance(item, NodeState):
                states.append(item)
            elif isinstance(item, EndRecord):
                end = item
            elif not isinstance(item, SyncMarker | ClockMark | LocalState):
                events.append(item)
        return Recording(rec.header, events, metadata, states, end, rec.warnings())
