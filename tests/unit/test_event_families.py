"""The event contract: one module per family (tracer/events/drop.py, ...) reached
through one registry, importing no other package of the tracer."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

from hypothesis import given, settings

from tests.unit.recording_support import ANY_EVENT
from tracer.events import model
from tracer.events.jsonl import JsonlEvents
from tracer.events.records import RECORD_FNS, event_record
from tracer.events.registry import BY_MODEL, FAMILIES, Event
from tracer.recording.format import EVENT_TYPES
from tracer.sinks.table import LINE_FNS

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "tracer" / "events"


def test_the_contract_imports_no_other_package_of_the_tracer() -> None:
    modules = sorted(f"tracer.events.{p.stem}" for p in EVENTS.glob("*.py")
                     if p.stem != "__init__")
    code = ("import sys\n" + "".join(f"import {m}\n" for m in modules)
            + "print(' '.join(sorted(m for m in sys.modules if m.startswith('tracer.'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.split()
    assert [m for m in out if not m.startswith(("tracer.events", "tracer.util"))] == []


def test_every_family_is_reached_everywhere() -> None:
    models = [f.model for f in FAMILIES]
    assert set(typing.get_args(Event)) == set(models)
    assert set(typing.get_args(model.Event)) == set(models)
    assert list(EVENT_TYPES.items()) == [(f.name, f.model) for f in FAMILIES]
    assert set(models) <= set(RECORD_FNS) and set(models) == set(LINE_FNS)
    for f in FAMILIES:
        assert f.model.__module__ == f"tracer.events.{f.name}", "one module per family"


def _sane(ev: Any) -> Any:
    """Times a JSON line can carry (RFC 3339 from year 1970 to 2116)."""
    times = {f.name: getattr(ev, f.name) % 2**62 for f in dataclasses.fields(ev)
             if f.name.endswith("wall_ns")}
    return dataclasses.replace(ev, **times)


@settings(max_examples=1500, deadline=None)
@given(ANY_EVENT.map(_sane))
def test_each_familys_parse_reads_back_its_record(ev: Event) -> None:
    rec = event_record(ev)
    line = json.dumps(rec, separators=(",", ":"))
    parsed = list(JsonlEvents([line]))
    assert len(parsed) == 1 and type(parsed[0]) is type(ev)
    assert event_record(parsed[0]) == rec
    assert BY_MODEL[type(ev)].name == rec["kind"]
