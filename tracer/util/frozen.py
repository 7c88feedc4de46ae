"""Building instances of frozen, slotted dataclasses (the event models) in bulk.

A frozen dataclass's `__init__` stores every field through `object.__setattr__` (its
own `__setattr__` refuses): about 50 ns a field, 1.1 us for a 21-field FlowEvent, most
of what decoding a recorded event costs.  A plain slotted twin with the same fields
stores them with ordinary slot writes (0.2 us); switching the instance's class to the
frozen one afterwards is allowed because both lay their slots out identically, and the
result is an ordinary instance of the frozen class: equal, hashable, immutable.

`constructor(cls, pick)` returns `make(source) -> cls(*pick(source))` (one call: the
decoder makes one per record and per nested struct) and checks, once, that the switch
works for `cls`; where it cannot (a class that is not slotted, one with a
`__post_init__` or fields outside `__init__`), `make` calls the class itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

Pick = Callable[[Any], Sequence[Any]]


def _plain(cls: type[T], pick: Pick) -> Callable[[Any], T]:
    def make(source: Any) -> T:
        return cls(*pick(source))
    return make


_TWINS: dict[type, type | None] = {}


def twin(cls: type) -> type | None:
    """The plain slotted twin of `cls`, or None where the class switch cannot work:
    `obj = twin(*values); obj.__class__ = cls` is `cls(*values)`.
    Remembered: every reader makes constructors for every kind it opens."""
    if cls not in _TWINS:
        _TWINS[cls] = _make_twin(cls)
    return _TWINS[cls]


def _make_twin(cls: type) -> type | None:
    if not dataclasses.is_dataclass(cls) or "__slots__" not in vars(cls) \
            or hasattr(cls, "__post_init__"):
        return None
    fields = dataclasses.fields(cls)
    if any(not f.init for f in fields) or len(fields) != len(vars(cls)["__slots__"]):
        return None
    made: type = dataclasses.make_dataclass(
        cls.__name__, [(f.name, Any) for f in fields], slots=True, eq=False)
    try:
        probe = made(*([None] * len(fields)))
        probe.__class__ = cls
    except TypeError:     # layouts differ (a base with slots of its own, __weakref__)
        return None
    return made


def constructor(cls: type[T], pick: Pick) -> Callable[[Any], T]:
    """`make(source)` == `cls(*pick(source))`; `pick` gives every field, in order."""
    plain = twin(cls)
    if plain is None:
        return _plain(cls, pick)

    def make(source: Any) -> T:
        obj = plain(*pick(source))
        obj.__class__ = cls
        return obj   # type: ignore[no-any-return]
    return make
