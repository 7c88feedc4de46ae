"""Decoding plans: an event array laid out by a recording's columns -> this version's
frozen dataclass, every value's type checked.  Used by tracer/recording/reader.py.

A plan is built once per recorded kind when a reader opens (< 1 ms for all of them)
and compiles to one Python function for that layout, the way `dataclasses` writes
`__init__`: the record's length checked, its C-level type signature compared with the
last one (else looked up in the set of signatures already validated; one seen for the
first time is validated column by column against this version's field types), then
one call building the event from the row's items, without the frozen `__init__`
(tracer/util/frozen.py).  The generated code holds column indexes and references to the
plan's own helpers, nothing taken from the recording as text: column names are
looked up, never pasted into source.  A flow event costs ~1.0 us here where a closure
per field and an itemgetter cost ~1.2.

Nested structs made of plain columns (Endpoint, Process, PodRef, Forwarding) are
interned by their validated values: a node's events name the same few endpoints,
processes and pods again and again, and a dict look-up costs less than building one
(a flow decodes in 1.0 us instead of 1.1; the events share one object per value).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tracer.recording.format import FieldType, field_types
from tracer.util import frozen
from tracer.util.memo import BoundedMemo


class Malformed(Exception):
    """A record whose framing is intact but whose content is not what it claims."""


def str_tuple(v: Any) -> tuple[str, ...]:
    if type(v) is not list:
        raise Malformed("not a list of strings")
    if not v:
        return ()
    if not all(type(x) is str for x in v):
        raise Malformed("not a list of strings")
    return tuple(v)


@dataclass
class Columns:
    """A recorded column list, after fix-ups."""

    names: list[str]
    structs: dict[str, str]         # column -> recorded struct name
    defaults: dict[str, Any] = field(default_factory=dict)
    ignored: set[str] = field(default_factory=set)


# --- where a field's value comes from ------------------------------------------------
# Each kind is inlined by the generated code; called, each gives the value from a row.

@dataclass(frozen=True)
class StrTuple:
    """tuple[str, ...]: an array of strings in column `i`."""

    i: int

    def __call__(self, row: list[Any]) -> tuple[str, ...]:
        return str_tuple(row[self.i])


@dataclass(frozen=True)
class Nested:
    """An optional struct: its own array in column `i`, or nil."""

    i: int
    plan: Plan

    def __call__(self, row: list[Any]) -> Any:
        return None if row[self.i] is None else self.plan.decode(row[self.i])


@dataclass(frozen=True)
class Const:
    value: Any

    def __call__(self, _row: list[Any]) -> Any:
        return self.value


@dataclass(frozen=True)
class Factory:
    factory: Callable[[], Any]

    def __call__(self, _row: list[Any]) -> Any:
        return self.factory()


class Flat:
    """A struct flattened into plain columns (Endpoint: `src.ip`, `src.port`), one
    object per distinct values; they are validated with the row before this runs."""

    def __init__(self, cls: type, columns: list[int], limit: int) -> None:
        self.columns = tuple(columns)
        make: Callable[[tuple[Any, ...]], Any] = frozen.constructor(cls, lambda key: key)
        self.interned: BoundedMemo[tuple[Any, ...], Any] = BoundedMemo(limit, make)

    def __call__(self, row: list[Any]) -> Any:
        return self.interned[tuple(row[i] for i in self.columns)]


Source = int | StrTuple | Nested | Const | Factory | Flat | Callable[[list[Any]], Any]


def _expr(n: int, src: Source, ns: dict[str, Any]) -> str:
    """Python source for field `n`'s value from `row`; helpers go into `ns`."""
    if isinstance(src, int):
        return f"row[{src}]"
    if isinstance(src, StrTuple):      # validated a list: empty is the common case
        return f"(str_tuple(row[{src.i}]) if row[{src.i}] else ())"
    if isinstance(src, Nested):
        ns[f"d{n}"] = src.plan.compiled()
        return f"(None if row[{src.i}] is None else d{n}(row[{src.i}]))"
    if isinstance(src, Const):
        ns[f"c{n}"] = src.value
        return f"c{n}"
    if isinstance(src, Flat):       # a C look-up; made only on a miss
        ns[f"g{n}"] = src.interned.__getitem__
        key = "".join(f"row[{i}], " for i in src.columns)
        return f"g{n}(({key}))"
    ns[f"x{n}"] = src
    return f"x{n}(row)"


_TEMPLATE = """\
def compile_decode():
    last = None

    def decode(row):
        nonlocal last
        if type(row) is not list or len(row) != {length}:
            raise Malformed("wrong number of values")
        sig = tuple(map(type, row))
        if sig != last:
            if sig not in sigs:
                validate(row)
            last = sig
{build}
    return decode
"""

_BUILD_TWIN = """\
        obj = Twin({args})
        obj.__class__ = Cls
        return obj"""

# a class the twin cannot stand in for: its own __init__, which may refuse values
_BUILD_PLAIN = """\
        try:
            return Cls({args})
        except (TypeError, ValueError) as exc:
            raise Malformed(str(exc)) from None"""


class Plan:
    """Builds one dataclass from an array laid out by the recorded columns:
    `decode(row)`, the row's values at `offset` on."""

    MAX_SIGS = 256
    MAX_INTERNED = 8192      # per nested field; cleared when full

    def __init__(self, cls: type, cols: Columns, offset: int,
                 structs: Mapping[str, Plan]) -> None:
        self.cls = cls
        self.length = offset + len(cols.names)
        index = {name: offset + i for i, name in enumerate(cols.names)}
        self.checks: list[tuple[int, tuple[type, ...]]] = []
        used: set[str] = set()
        sources = [self._source(cls, name, ft, index, cols, structs, used)
                   for name, ft in field_types(cls).items()]
        self.sources: list[Source] = sources     # per field, in order (blocks.py reads them)
        self.unknown = [n for n in cols.names if n not in used and n not in cols.ignored]
        self.unknown_warnings: list[str] = []
        self._sigs: set[tuple[type, ...]] = set()
        # a struct of plain columns in an array of its own: interned by its values
        self._plain = offset == 0 and all(isinstance(s, int) for s in sources)
        self._decode: Callable[[Any], Any] | None = None

    def compiled(self) -> Callable[[Any], Any]:
        """`decode`, compiled when first asked for: a reader opens with a plan for
        every kind of the header, and reads few of them (exec is most of the cost)."""
        if self._decode is None:
            decode = self._compile(self.sources)
            self._decode = self._interned(decode) if self._plain else decode
        return self._decode

    def decode(self, row: Any) -> Any:
        return self.compiled()(row)

    def _compile(self, sources: list[Source]) -> Callable[[Any], Any]:
        ns: dict[str, Any] = {"Malformed": Malformed, "sigs": self._sigs,
                              "validate": self._validate, "str_tuple": str_tuple,
                              "Cls": self.cls}
        args = ", ".join(_expr(n, src, ns) for n, src in enumerate(sources))
        twin = frozen.twin(self.cls)
        if twin is not None:
            ns["Twin"] = twin
        build = (_BUILD_TWIN if twin is not None else _BUILD_PLAIN).format(args=args)
        exec(_TEMPLATE.format(length=self.length, build=build), ns)
        decode: Callable[[Any], Any] = ns["compile_decode"]()
        return decode

    def _interned(self, decode: Callable[[Any], Any]) -> Callable[[Any], Any]:
        interned: BoundedMemo[tuple[Any, ...], Any] = BoundedMemo(self.MAX_INTERNED)
        length, sigs, validate = self.length, self._sigs, self._validate

        def decode_interned(row: Any) -> Any:
            if type(row) is not list or len(row) != length:
                raise Malformed("wrong number of values")
            if tuple(map(type, row)) not in sigs:
                validate(row)
            key = tuple(row)      # validated: scalars, hashable
            hit = interned.get(key)
            return interned.keep(key, decode(row)) if hit is None else hit
        return decode_interned

    def _validate(self, row: list[Any]) -> None:
        for i, allowed in self.checks:
            if type(row[i]) not in allowed:
                raise Malformed(f"value {i} is a {type(row[i]).__name__}")
        if len(self._sigs) < self.MAX_SIGS:
            self._sigs.add(tuple(map(type, row)))

    def _source(self, owner: type, name: str, ft: FieldType, index: dict[str, int],
                cols: Columns, structs: Mapping[str, Plan], used: set[str]) -> Source:
        if ft.struct is not None and not ft.optional:
            # flattened: rebuild from the dotted columns
            sub = [self._source(ft.struct, f"{name}.{n}", sft, index, cols, structs, used)
                   for n, sft in field_types(ft.struct).items()]
            ints = [s for s in sub if isinstance(s, int)]
            if len(ints) == len(sub):       # the common case: Endpoint
                return Flat(ft.struct, ints, self.MAX_INTERNED)
            return frozen.constructor(
                ft.struct, lambda row: [row[s] if isinstance(s, int) else s(row)
                                        for s in sub])
        i = index.get(name)
        if i is None:
            return self._default(owner, name, cols)
        used.add(name)
        if ft.struct is not None:
            plan = structs.get(cols.structs.get(name, ""))
            if plan is None or plan.cls is not ft.struct:
                raise Malformed(f"column {name}: struct {cols.structs.get(name)} unknown")
            self.checks.append((i, (list, type(None))))
            return Nested(i, plan)
        self.checks.append((i, ft.allowed))
        if ft.is_tuple:
            return StrTuple(i)
        return i

    def _default(self, owner: type, name: str, cols: Columns) -> Const | Factory:
        if name in cols.defaults:
            return Const(cols.defaults[name])
        own = name.rsplit(".", 1)[-1]
        for f in dataclasses.fields(owner):
            if f.name == own:
                if f.default is not dataclasses.MISSING:
                    return Const(f.default)
                if f.default_factory is not dataclasses.MISSING:
                    return Factory(f.default_factory)
        raise Malformed(f"{self.cls.__name__}.{name} is not in the recording and has no "
                        "default (a fix-up is missing)")
