"""The recording format: record types, the event schema, limits and fix-ups.

A recording is a stream of msgpack arrays, each `[type, ...]`.  Events are arrays too,
with their column names in the header (a 15-tuple packs in a third of the time of a
15-key dict, and the file is half the size).  The columns are derived from the frozen
dataclasses of the event families (tracer/events/registry.py), so a new event kind
needs no line here.  docs/recording-format.md is the reference for all of it.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import crc32c
import msgpack

from tracer.events.registry import FAMILIES, Event

MAGIC = "nodetrace-recording"
# major: a reader refuses a newer major; minor: additions an older reader skips
VERSION = (2, 1)     # 2.0: events in blocks of columns (tracer/recording/blocks.py)
#                     2.1: every record after the header in a checked frame (below);
#                          clock and local records; the node's addresses in the header
CHECKED_SINCE = (2, 1)


class Rec(enum.IntEnum):
    """Record types.  Never renumber: recordings store these values."""

    HEADER = 0      # [0, MAGIC, [major, minor], {header}]
    EVENT = 1       # [1, kind index in the header's schema, column values...] (1.x)
    METADATA = 2    # [2, wall_ns, kind, action, object]
    NODE_STATE = 3  # [3, wall_ns, {name: value}]
    SYNC = 4        # [4, wall_ns, mono_ns, events so far]
    END = 5         # [5, wall_ns, {reason, events, received, decode_errors, lost, next_part}]
    EVENTS = 6      # [6, order, [[kind index, [column, ...]], ...]]: a block (blocks.py)
    CHECKED = 7     # [7, crc32c of payload, payload]: payload is one packed record (2.1)
    CLOCK = 8       # [8, wall_ns]: the live diagnosis judged at wall_ns, here (2.1)
    LOCAL = 9       # [9, wall_ns, {listeners, pods}]: what the node itself knows (2.1)


# The first bytes of every recording: the header record's array marker, type and magic.
MAGIC_PREFIX = b"\x94" + msgpack.packb(int(Rec.HEADER)) + msgpack.packb(MAGIC)



# --- checked frames (2.1) ---------------------------------------------------------------
#
# [7, crc, payload]: fixarray of 3, the type, the CRC-32C of the payload as a uint32
# (always 0xce and 4 bytes: the frame's head has one size per payload length), and the
# payload as a bin holding one packed record.  A flipped bit inside the payload fails
# the checksum and the record is skipped whole; the frame's own length stays intact,
# so the records after it read as before.  CRC-32C (the crc32c package, SSE 4.2)
# checks a 95 KB block in 3.3 us where zlib's CRC-32 takes 14 (docs/recording-format.md).

def checksum(payload: bytes) -> int:
    return int(crc32c.crc32c(payload))


def checked_head(payload: bytes) -> bytes:
    """The bytes before `payload` in its checked frame (the writer joins the two
    without copying the payload into a second packed record)."""
    n = len(payload)
    if n < 1 << 8:
        size = b"\xc4" + n.to_bytes(1, "big")
    elif n < 1 << 16:
        size = b"\xc5" + n.to_bytes(2, "big")
    else:
        size = b"\xc6" + n.to_bytes(4, "big")
    return b"\x93\x07\xce" + checksum(payload).to_bytes(4, "big") + size


# event kind -> model class, in the registry's order (the header's schema lists the
# kinds in it): every family of tracer/events/registry.py
EVENT_TYPES: dict[str, type[Event]] = {f.name: f.model for f in FAMILIES}


@dataclass(frozen=True)
class Limits:
    """Caps on hostile input.  msgpack allocates an array or map of the declared
    length before reading its items, so the item caps bound memory: at most 1024
    nested containers x 2048 slots, plus one buffer."""

    max_buffer: int = 16 << 20       # the largest record (a node-state snapshot)
    max_items: int = 2048            # array and map lengths
    max_str: int = 8 << 20           # one string (an iptables-save dump)
    read_size: int = 256 << 10
    max_block: int = 4096            # events in one block (the writer writes 1024 at most)


LIMITS = Limits()
SNAPSHOT_TEXT_MAX = 4 << 20          # a node-state text beyond this is cut (and says so)


# --- the event schema ----------------------------------------------------------------
#
# A column is one value in an event array.  A field holding a dataclass that is always
# present (Endpoint) is flattened into dotted columns ("src.ip", "src.port"); an
# optional one (Forwarding | None, Process | None) is one column holding a nested array
# of that struct's columns, or nil.


@dataclass(frozen=True)
class Column:
    name: str                      # "ifname", "src.ip", "forwarding"
    struct: str | None = None      # optional-struct columns: the struct's name


@dataclass(frozen=True)
class FieldType:
    """A dataclass field's type as the codec sees it."""

    allowed: tuple[type, ...]              # python types a value may have (decoded)
    struct: type | None = None             # a nested dataclass
    optional: bool = False
    is_tuple: bool = False                 # tuple[str, ...]: an array of strings


_PLAIN = {int: (int,), str: (str,), bool: (bool,), float: (float, int)}


def field_type(hint: Any) -> FieldType:
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if len(inner) != 1:
            raise TypeError(f"unsupported union {hint}")
        ft = field_type(inner[0])
        return dataclasses.replace(ft, optional=True, allowed=(*ft.allowed, type(None)))
    if origin is tuple:
        return FieldType(allowed=(list,), is_tuple=True)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return FieldType(allowed=(list,), struct=hint)
    if hint in _PLAIN:
        return FieldType(allowed=_PLAIN[hint])
    raise TypeError(f"unsupported field type {hint}")


@functools.cache
def field_types(cls: type) -> dict[str, FieldType]:
    """Cached: every reader builds its plans from these (a reader opens in < 1 ms).
    Callers must not change the dict."""
    hints = typing.get_type_hints(cls)   # in the namespace of the class's own module
    return {f.name: field_type(hints[f.name]) for f in dataclasses.fields(cls)}


def columns(cls: type, prefix: str = "") -> list[Column]:
    out: list[Column] = []
    for name, ft in field_types(cls).items():
        if ft.struct is not None and not ft.optional:
            out.extend(columns(ft.struct, f"{prefix}{name}."))
        else:
            out.append(Column(prefix + name, ft.struct.__name__ if ft.struct else None))
    return out


def column_types(cls: type) -> list[FieldType]:
    """The FieldType of each of `columns(cls)`, in the same order."""
    out: list[FieldType] = []
    for ft in field_types(cls).values():
        if ft.struct is not None and not ft.optional:
            out.extend(column_types(ft.struct))
        else:
            out.append(ft)
    return out


def structs_of(cls: type, found: dict[str, type] | None = None) -> dict[str, type]:
    """Every dataclass reachable from `cls` through optional-struct columns."""
    found = {} if found is None else found
    for ft in field_types(cls).values():
        if ft.struct is not None:
            if ft.optional:
                found.setdefault(ft.struct.__name__, ft.struct)
            structs_of(ft.struct, found)
    return found


def _column_list(cols: list[Column]) -> list[list[str | None]]:
    return [[c.name, c.struct] for c in cols]


def schema() -> dict[str, Any]:
    """The header's `schema`: every kind's columns in order, every struct's columns."""
    structs: dict[str, type] = {}
    for cls in EVENT_TYPES.values():
        structs_of(cls, structs)
    return {"events": [[kind, _column_list(columns(cls))] for kind, cls in EVENT_TYPES.items()],
            "structs": [[name, _column_list(columns(cls))] for name, cls in structs.items()]}


def attribute_paths(cls: type) -> list[str]:
    """The columns as attribute paths (`src.ip`).  Only these, our own dataclasses'
    field names, go into the compiled getters below, never text from a file."""
    names = [c.name for c in columns(cls)]
    for name in names:
        if not all(part.isidentifier() for part in name.split(".")):
            raise ValueError(f"{cls.__name__}: column {name!r} is not an attribute path")
    return names


def _compile(source: str, what: str) -> Any:
    scope: dict[str, Any] = {}
    exec(compile(source, what, "exec"), scope)
    return scope["get"]


def struct_getter(cls: type) -> Callable[[Any], tuple[Any, ...]]:
    """An object -> its column values, as a tuple (a nested struct's array).

    Compiled to one function per class, `(obj.a, obj.src.ip, ...)`: the interpreter's
    specialised slot loads take 0.15 us for a flow's 23 columns where
    operator.attrgetter and a tuple concatenation took 0.4."""
    items = [f"obj.{name}" for name in attribute_paths(cls)]
    get: Callable[[Any], tuple[Any, ...]] = _compile(
        f"def get(obj):\n    return ({', '.join(items)},)\n", f"<columns of {cls.__name__}>")
    return get


def columns_getter(cls: type) -> Callable[[Sequence[Any]], tuple[list[Any], ...]]:
    """Objects -> one list per column (an event block's columns).

    Compiled to one list comprehension per column: 0.25 us for a flow's 23 columns,
    where a row per object and `zip(*rows)` took 0.37."""
    items = [f"[o.{name} for o in objs]" for name in attribute_paths(cls)]
    get: Callable[[Sequence[Any]], tuple[list[Any], ...]] = _compile(
        f"def get(objs):\n    return ({', '.join(items)},)\n",
        f"<column lists of {cls.__name__}>")
    return get


# --- fix-ups: how an older recording is read by this code -----------------------------


@dataclass(frozen=True)
class FixUp:
    """Applied to recordings whose version is below `before`, oldest first.

    Declarative on purpose: a fix-up names what changed, the reader does the work, so
    every old version stays readable without old code paths."""

    before: tuple[int, int]
    kind: str | None = None                       # None: the header
    rename_kind: str | None = None                # the kind was called `kind`, is now this
    rename: Mapping[str, str] = field(default_factory=dict)   # old column -> new column
    defaults: Mapping[str, Any] = field(default_factory=dict)  # value of a missing column
    drop: tuple[str, ...] = ()                    # columns that no longer mean anything


# Version history: 1.0 is the first format; nothing to upgrade yet.  When a field
# without a default is added to a model class, or renamed, add a line here and bump
# the minor version.
FIXUPS: tuple[FixUp, ...] = ()
