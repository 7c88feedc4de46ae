"""An event family as data: what the rest of the code reaches through the registry
(tracer/events/registry.py) instead of knowing every kind itself.

Each family module (drop.py, flow.py, ...) ends with one `FAMILY = Family(...)`
naming its parts: the model class, its JSON record, its table line, its parse from a
JSON line, and for records the kernel writes, its `enum ev_kind` number, its wire
struct and its decoder.  The recording format needs nothing more: its columns are
the model's fields (tracer/recording/format.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Generic, TypeVar

from tracer.events.common import Labels
from tracer.events.decoding import DecodeContext, Fields
from tracer.events.wire import EvKind, WireStruct

E = TypeVar("E")


@dataclass(frozen=True)
class Family(Generic[E]):
    name: str                                   # `kind` in JSON, the table and recordings
    model: type[E]
    record: Callable[[E], dict[str, Any]]       # the -o jsonl record (docs/events.md)
    line: Callable[[E, Labels], tuple[str, str]]  # the -o table WHERE and WHAT columns
    parse: Callable[[dict[str, Any], int], E]   # a JSON record (and its time) -> event
    # records from the kernel: all three, or none (lost records are user space's)
    ev_kind: EvKind | None = None
    wire: WireStruct | None = None              # its struct in bpf/include/events.h
    decode: Callable[[Fields, DecodeContext], E] | None = None
    # map entries user space reads directly, and enums of events.h: checked like `wire`
    map_structs: tuple[WireStruct, ...] = ()
    c_enums: tuple[tuple[str, type[IntEnum]], ...] = ()   # (C prefix, enum)

    def __post_init__(self) -> None:
        kernel = (self.ev_kind is not None, self.wire is not None, self.decode is not None)
        if len(set(kernel)) != 1:
            raise TypeError(f"family {self.name}: ev_kind, wire and decode go together")
        if getattr(self.model, "kind", None) != self.name:
            raise TypeError(f"family {self.name}: {self.model.__name__}.kind differs")
