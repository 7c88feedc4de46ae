"""The one RFC 3339 parser (replay's --since/--until, the JSON-lines reader, the TUI):
strict, and the inverse of the formatter every output uses."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracer.events.jsonl import JsonlEvents
from tracer.util.timefmt import parse_rfc3339, rfc3339_ns
from tui.records import time_ns


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_parses_what_every_output_prints(ns: int) -> None:
    assert parse_rfc3339(rfc3339_ns(ns)) == ns


@pytest.mark.parametrize(("text", "ns"), [
    ("2026-01-05T03:12:00Z", 1_767_582_720_000_000_000),
    ("2026-01-05T04:12:00+01:00", 1_767_582_720_000_000_000),
    ("2026-01-04T22:42:00-04:30", 1_767_582_720_000_000_000),
    ("2026-01-05T03:12:00.5Z", 1_767_582_720_500_000_000),
    ("2024-02-29T00:00:00Z", 1_709_164_800_000_000_000),        # a leap day
])
def test_valid_times(text: str, ns: int) -> None:
    assert parse_rfc3339(text) == ns


@pytest.mark.parametrize("text", [
    "2026-13-23T09:59:13Z", "2026-00-01T00:00:00Z", "2026-02-30T00:00:00Z",
    "2025-02-29T00:00:00Z", "2026-01-01T24:00:00Z", "2026-01-01T00:60:00Z",
    "2026-01-01T00:00:60Z", "2026-01-01T00:00:00", "2026-01-01 00:00:00Z",
    "2026-01-01T00:00:00.Z", "2026-01-01T00:00:00.1234567890Z", "2026-01-01T00:00:00+25:00",
    "", "yesterday", " 2026-01-01T00:00:00Z",
])
def test_invalid_times_raise_value_error(text: str) -> None:
    with pytest.raises(ValueError) as e:
        parse_rfc3339(text)
    assert repr(text) in str(e.value)     # the caller's one line names what was wrong


def test_callers_turn_a_bad_time_into_their_own_answer() -> None:
    assert time_ns("2026-13-23T09:59:13Z") == 0 and time_ns(None) == 0
    lines = ['{"kind":"lost","time":"2026-13-23T09:59:13Z","layer":"x","count":1,"total":1}',
             '{"kind":"lost","time":"2026-11-23T09:59:13Z","layer":"x","count":1,"total":1}']
    events = JsonlEvents(lines)
    assert [e.wall_ns for e in events] == [parse_rfc3339("2026-11-23T09:59:13Z")]
    assert events.skipped == 1
