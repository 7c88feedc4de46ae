"""tracer/util/frozen.py builds instances of the frozen model classes that are the ones
`cls(*values)` builds."""

from __future__ import annotations

import dataclasses
import operator

import pytest
from hypothesis import given, settings

from tests.unit.recording_support import ANY_EVENT
from tracer.events.model import Endpoint, Event
from tracer.util import frozen


def _values(obj: object) -> tuple[object, ...]:
    return tuple(getattr(obj, f.name) for f in dataclasses.fields(obj))  # type: ignore[arg-type]


@settings(max_examples=500, deadline=None)
@given(ANY_EVENT)
def test_an_event_built_from_its_values_is_the_event(ev: Event) -> None:
    make = frozen.constructor(type(ev), _values)
    built = make(ev)
    assert type(built) is type(ev)
    assert built == ev and hash(built) == hash(ev)
    assert repr(built) == repr(ev)
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.wall_ns = 1   # type: ignore[misc]
    assert dataclasses.replace(built, wall_ns=1) == dataclasses.replace(ev, wall_ns=1)


def test_a_pick_selects_the_values() -> None:
    make = frozen.constructor(Endpoint, operator.itemgetter(3, 1))
    assert make(["x", 80, "y", "10.0.0.1"]) == Endpoint("10.0.0.1", 80)


@dataclasses.dataclass(frozen=True, slots=True)
class Checked:
    port: int

    def __post_init__(self) -> None:
        if self.port < 0:
            raise ValueError("negative port")


@dataclasses.dataclass(frozen=True)
class NoSlots:
    port: int


def test_classes_the_switch_cannot_serve_are_built_by_their_own_init() -> None:
    with pytest.raises(ValueError):
        frozen.constructor(Checked, list)([-1])
    assert frozen.constructor(Checked, list)([5]) == Checked(5)
    assert frozen.constructor(NoSlots, list)([5]) == NoSlots(5)
