"""-o jsonl lines are what the json module writes, byte for byte, whichever encoder
wrote them (tracer/sinks/jsonline.py)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.recording_support import ANY_EVENT
from tracer.events.model import Event
from tracer.events.records import event_record
from tracer.recording.format import EVENT_TYPES, field_types, structs_of
from tracer.sinks.jsonline import float_free_line, json_line


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


_SCALARS = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
            | st.text(st.characters(blacklist_categories=["Cs"]), max_size=8)
            | st.sampled_from(["\x7f", "\x00", "\x1f", "é", "\u2028", "a\"\\/", "\ud800"]))
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=4)
                       | st.tuples(inner, inner)
                       | st.dictionaries(st.text(max_size=4) | st.integers(0, 9), inner,
                                         max_size=4), max_leaves=20)


@settings(max_examples=2000, deadline=None)
@given(_VALUES)
def test_any_float_free_value_is_written_as_the_json_module_writes_it(value: Any) -> None:
    assert float_free_line(value) == _json(value)


def test_floats_take_the_json_module() -> None:
    for f in (1e-05, 2.5e-07, 1e16, float("nan"), float("inf")):
        assert json_line({"a": f}) == _json({"a": f})


def test_no_model_field_is_a_float() -> None:
    """Event records reach float_free_line: a float field needs json_line instead."""
    classes: set[type] = set(EVENT_TYPES.values())
    for event_type in EVENT_TYPES.values():
        classes.update(structs_of(event_type).values())
    for cls in classes:
        for name, ft in field_types(cls).items():
            assert float not in ft.allowed, f"{cls.__name__}.{name}"


@settings(max_examples=1000, deadline=None)
@given(ANY_EVENT)
def test_any_event_record_is_written_as_the_json_module_writes_it(ev: Event) -> None:
    rec = event_record(ev)
    assert float_free_line(rec) == _json(rec)
