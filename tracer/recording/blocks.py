"""Event blocks (format 2.x): a batch of events as columns, encoded and decoded here,
side by side.

    [6, order, [[kind index, [column, ...]], ...]]

`order` is a bin of one byte per event: its kind's index in the header's schema, in the
order the events were recorded.  Each kind present has one entry, its columns in the
header's column order, each holding that kind's events in recorded order.  A column is

- a bin: one little-endian signed 64-bit integer per event (an `int` field whose
  values all fit), or
- `[values, indexes]`: a dictionary.  `values` are the column's distinct values,
  each written as in a 1.x event row (a scalar, an array of strings, a nested
  struct's array or nil); `indexes` is a bin of one little-endian index per event,
  one byte wide up to 256 values, else two; empty when there is one value.

Why columns: a 1.x recording framed, type-checked and built one record per event,
1.8 us each.  Here a record of up to 1024 events is framed once, integers come out of
the array module in C, a dictionary's values are validated (and nested structs built)
once each, not once per event, and what is left per event is building the frozen
event itself (tracer/util/frozen.py, 0.3 us for a flow).  The writer pays about what the
1.x rows cost it.  A node's columns repeat: an interface, a direction, a pod's address
take one byte per event, and the file shrinks by a third.
"""

from __future__ import annotations

import operator
import struct
import sys
from array import array
from collections.abc import Callable, Iterable, Sequence
from itertools import compress, repeat
from typing import Any

from tracer.events.model import Event
from tracer.recording.format import EVENT_TYPES, Rec, column_types, columns_getter
from tracer.recording.plan import Const, Factory, Flat, Malformed, Nested, Plan, StrTuple, str_tuple
from tracer.util import frozen
from tracer.util.memo import BoundedMemo

BLOCK_EVENTS = 1024    # the writer's largest block (the reader takes Limits.max_block)
_BIG_ENDIAN = sys.byteorder == "big"
_EVENTS = int(Rec.EVENTS)


# --- one column -------------------------------------------------------------------------

# n -> the packer of n little-endian int64s: struct packs an int in 5.6 ns where the
# array module takes 12.6 (the integer columns were a third of what writing costs)
_INT64 = BoundedMemo[int, Callable[..., bytes]](
    4 * BLOCK_EVENTS, lambda n: struct.Struct(f"<{n}q").pack)


def _ints(values: Sequence[Any]) -> bytes | list[Any]:
    try:
        return _INT64[len(values)](*values)
    except struct.error:                 # beyond int64, or not ints after all
        return _dictionary(values)


def _dictionary(values: Sequence[Any]) -> list[Any]:
    first = values[0]
    if (values[-1] is first or values[-1] == first) and values.count(first) == len(values):
        return [[first], b""]     # a column of one value (an interface, None): no hashing
    distinct = list(dict.fromkeys(values))
    if len(distinct) == 1:
        return [distinct, b""]
    where = dict(zip(distinct, range(len(distinct)), strict=True))
    return [distinct, _indexes(map(where.__getitem__, values), len(distinct))]


def _by_identity(values: Sequence[Any]) -> list[Any]:
    """A dictionary of objects whose hash is Python code (a Process, a PodRef): by
    identity, which may keep equal values twice, and costs a C look-up."""
    if values[0] is None and values.count(None) == len(values):
        return [[None], b""]      # the usual column: no process, no forwarding facts
    ids = list(map(id, values))
    first = dict(zip(ids, values, strict=True))
    if len(first) == 1:
        return [list(first.values()), b""]
    where = dict(zip(first, range(len(first)), strict=True))
    return [list(first.values()), _indexes(map(where.__getitem__, ids), len(first))]


def _indexes(idx: Any, distinct: int) -> bytes:
    a = array("B" if distinct <= 256 else "H", idx)
    if _BIG_ENDIAN:
        a.byteswap()
    return a.tobytes()


def _read_ints(raw: bytes, n: int) -> list[int]:
    if len(raw) != 8 * n:
        raise Malformed("an integer column's length")
    a = array("q")
    a.frombytes(raw)
    if _BIG_ENDIAN:
        a.byteswap()
    return a.tolist()


def _expand(values: list[Any], raw: Any, n: int) -> Sequence[Any]:
    """A dictionary column's values, one per event."""
    if type(raw) is not bytes:
        raise Malformed("a dictionary's indexes")
    if not raw:
        if len(values) != 1:
            raise Malformed("a dictionary without indexes")
        return [values[0]] * n
    if len(raw) == n:
        a = array("B")
    elif len(raw) == 2 * n:
        a = array("H")
    else:
        raise Malformed("a dictionary's indexes")
    a.frombytes(raw)
    if _BIG_ENDIAN:
        a.byteswap()
    try:
        if n == 1:
            return [values[a[0]]]
        # one C call for the whole column (a map of __getitem__ costs a third more)
        picked: tuple[Any, ...] = operator.itemgetter(*a)(values)
    except IndexError:
        raise Malformed("a dictionary index out of range") from None
    return picked


# --- a kind's columns: encoding -----------------------------------------------------------

class _KindEncoder:
    """One kind's columns: one list per column by compiled comprehensions, each
    encoded on its own.  (One row getter into a single int64 array for all the
    integer columns, cut into columns afterwards, was slower: the array module builds
    from an iterator an item at a time.)"""

    def __init__(self, cls: type, index: int) -> None:
        self.index = index
        self.columns = columns_getter(cls)
        self.encoders: list[Callable[[Sequence[Any]], bytes | list[Any]]] = []
        for ft in column_types(cls):
            if ft.struct is not None:        # optional struct: hashed in Python
                self.encoders.append(_by_identity)
            elif int in ft.allowed and bool not in ft.allowed:
                self.encoders.append(_ints)       # a dictionary when a value is None
            else:
                self.encoders.append(_dictionary)

    def encode(self, evs: Sequence[Any]) -> list[Any]:
        return [enc(col) for enc, col in zip(self.encoders, self.columns(evs), strict=True)]


class BlockEncoder:
    """Events -> block records (lists for a msgpack packer), in recorded order."""

    def __init__(self) -> None:
        self._kinds = {cls: _KindEncoder(cls, i) for i, cls in enumerate(EVENT_TYPES.values())}

    def records(self, batch: Sequence[Event]) -> list[list[Any]]:
        return [self._block(batch[i:i + BLOCK_EVENTS])
                for i in range(0, len(batch), BLOCK_EVENTS)]

    def _block(self, batch: Sequence[Event]) -> list[Any]:
        types = list(map(type, batch))
        kinds = self._kinds
        present = list(dict.fromkeys(types))
        index = {t: kinds[t].index for t in present}
        order = bytes(map(index.__getitem__, types))
        entries = []
        for t in present:
            k = kinds[t]
            evs = batch if len(present) == 1 else list(
                compress(batch, map(operator.is_, types, repeat(t))))
            entries.append([k.index, k.encode(evs)])
        return [_EVENTS, order, entries]


# --- a kind's columns: decoding -------------------------------------------------------------

_SCALAR, _TUPLE, _NESTED = 0, 1, 2


class BlockPlan:
    """A block entry's columns -> that kind's events, every value's type checked.

    Built from the kind's Plan for a row at offset 0 (its sources and checks), so
    1.x rows and 2.x blocks read one layout the same way, fix-ups included."""

    def __init__(self, plan: Plan) -> None:
        self.cls = plan.cls
        self.width = plan.length
        self.unknown_warnings = plan.unknown_warnings
        # column -> (role, allowed types); columns no field reads are left alone
        self.roles: dict[int, tuple[int, tuple[type, ...], Callable[[Any], Any] | None]] = {
            i: (_SCALAR, allowed, None) for i, allowed in plan.checks}
        for src in plan.sources:
            if isinstance(src, StrTuple):
                self.roles[src.i] = (_TUPLE, (list,), None)
            elif isinstance(src, Nested):
                self.roles[src.i] = (_NESTED, (list, type(None)), src.plan.decode)
        self.sources = plan.sources
        self.twin = frozen.twin(plan.cls)

    def decode(self, raw_columns: Any, n: int) -> list[Any]:
        if type(raw_columns) is not list or len(raw_columns) != self.width:
            raise Malformed("wrong number of columns")
        values: dict[int, Sequence[Any]] = {}
        for i, (role, allowed, nested) in self.roles.items():
            raw = raw_columns[i]
            if type(raw) is bytes:
                if role != _SCALAR or int not in allowed:
                    raise Malformed(f"column {i} holds integers")
                values[i] = _read_ints(raw, n)
                continue
            if type(raw) is not list or len(raw) != 2 or type(raw[0]) is not list:
                raise Malformed(f"column {i} is neither integers nor a dictionary")
            distinct: list[Any] = raw[0]
            if not all(type(v) in allowed for v in distinct):
                raise Malformed(f"column {i} has a value of the wrong type")
            if role == _TUPLE:
                distinct = [str_tuple(v) for v in distinct]
            elif role == _NESTED:
                assert nested is not None
                distinct = [None if v is None else nested(v) for v in distinct]
            values[i] = _expand(distinct, raw[1], n)
        fields = [self._field(src, values, n) for src in self.sources]
        if self.twin is None:
            try:
                return list(map(self.cls, *fields))
            except (TypeError, ValueError) as exc:
                raise Malformed(str(exc)) from None
        events = list(map(self.twin, *fields))
        cls = self.cls
        for ev in events:
            ev.__class__ = cls
        return events

    @staticmethod
    def _field(src: Any, values: dict[int, Sequence[Any]], n: int) -> Iterable[Any]:
        if isinstance(src, int):
            return values[src]
        if isinstance(src, StrTuple | Nested):
            return values[src.i]
        if isinstance(src, Const):
            return [src.value] * n
        if isinstance(src, Factory):
            return [src.factory() for _ in range(n)]
        if isinstance(src, Flat):
            return list(map(src.interned.__getitem__,
                            zip(*(values[c] for c in src.columns), strict=True)))
        # a flattened struct with a column filled in by a fix-up: by rows (rare)
        width = max(values, default=-1) + 1
        rows = [[None] * width for _ in range(n)]
        for c, col in values.items():
            for row, v in zip(rows, col, strict=True):
                row[c] = v
        return list(map(src, rows))


def decode_block(rec: list[Any], plans: Sequence[BlockPlan | str], max_events: int,
                 skipped: Callable[[str, int], None]) -> list[Event]:
    """A block record's events in recorded order; kinds this version cannot read are
    left out and counted through `skipped(warning, events)`."""
    if len(rec) < 3:
        raise Malformed("a block without entries")
    order, entries = rec[1], rec[2]
    extra = len(rec) - 3
    if type(order) is not bytes or not 0 < len(order) <= max_events:
        raise Malformed("a block's order")
    if type(entries) is not list or not entries:
        raise Malformed("a block's entries")
    decoded: dict[int, list[Any]] = {}
    dropped: set[int] = set()
    said: list[tuple[str, int]] = []      # counted once the whole block is read
    total = 0
    for entry in entries:
        if type(entry) is not list or len(entry) != 2 or type(entry[0]) is not int:
            raise Malformed("a block entry")
        k = entry[0]
        if not 0 <= k < len(plans) or k in decoded or k in dropped:
            raise Malformed("a block entry's kind")
        n = order.count(k)
        if n == 0:
            raise Malformed("a block entry with no events")
        total += n
        plan = plans[k]
        if isinstance(plan, str):
            dropped.add(k)
            said.append((plan, n))
            continue
        decoded[k] = plan.decode(entry[1], n)
        said.extend((warning, n) for warning in plan.unknown_warnings)
    if total != len(order):
        raise Malformed("a block's order names a kind it has no entry for")
    if extra:
        said.append((f"{extra} unknown value(s) in event block records ignored", 1))
    for warning, n in said:
        skipped(warning, n)
    if len(decoded) == 1 and not dropped:
        return next(iter(decoded.values()))
    if dropped:
        order = bytes(b for b in order if b not in dropped)
    nexts: list[Any] = [None] * 256
    for k, events in decoded.items():
        nexts[k] = iter(events).__next__
    return list(map(operator.call, map(nexts.__getitem__, order)))
