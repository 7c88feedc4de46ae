"""Helpers for the recording tests: session facts, a writer on a temp file, and
Hypothesis strategies that build any model event from its dataclass fields."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from tracer.events.model import Event
from tracer.recording.format import EVENT_TYPES, FieldType, field_types
from tracer.recording.writer import EndInfo, NodeState, RecordingWriter, RecordSpec, SessionFacts

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden.ntrec"
GOLDEN_JSONL = GOLDEN.with_suffix(".jsonl")

FACTS = SessionFacts(kernel_release="6.18.0-test", attached=["tracepoint/skb:kfree_skb"],
                     unavailable={"kprobe/nf_nat_manip_pkt": "no kprobes"},
                     drop_reasons={12: "NETFILTER_DROP"}, mono_to_wall_ns=10**18,
                     netns=4026531840, pod_networks=["10.42.0.0/24"],
                     service_networks=["10.43.0.0/16"], node="node1")

_TEXT = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12)
_INT = st.integers(-(2**63), 2**64 - 1)


def _value(ft: FieldType) -> st.SearchStrategy[Any]:
    if ft.struct is not None:
        base: st.SearchStrategy[Any] = model_strategy(ft.struct)
    elif ft.is_tuple:
        base = st.lists(_TEXT, max_size=3).map(tuple)
    elif bool in ft.allowed:
        base = st.booleans()
    elif float in ft.allowed:
        base = st.floats(allow_nan=False)
    elif int in ft.allowed:
        base = _INT
    else:
        base = _TEXT
    return st.one_of(st.none(), base) if ft.optional else base


def model_strategy(cls: type) -> st.SearchStrategy[Any]:
    return st.builds(cls, **{name: _value(ft) for name, ft in field_types(cls).items()})


ANY_EVENT: st.SearchStrategy[Event] = st.one_of(*(model_strategy(c)
                                                  for c in EVENT_TYPES.values()))


def write_recording(path: Path, batches: Iterable[Sequence[Event]], *,
                    metadata: Iterable[tuple[str, str, Mapping[str, Any], float]] = (),
                    node_state: Mapping[str, Any] | None = None,
                    spec: RecordSpec | None = None, finish: bool = True) -> RecordingWriter:
    w = RecordingWriter(spec or RecordSpec(path, argv=("nodetrace", "test")), FACTS)
    if node_state is not None:
        w.write_node_state(NodeState(node_state))
    for change in metadata:
        w.on_change(*change)
    for batch in batches:
        w.write(batch)
    if finish:
        w.finish(EndInfo("stopped", received=7, decode_errors=1, lost={"ringbuf_reserve": 2}))
    return w


def replace_wall(ev: Event, wall_ns: int) -> Event:
    return dataclasses.replace(ev, wall_ns=wall_ns)


def events_only(text: str) -> list[str]:
    """The event lines: findings are derived again (by the code of the day, at times
    of their own), compared by what they say (same_findings); the end-of-run summary
    counts the run, not the events."""
    return [line for line in text.splitlines()
            if not line.startswith(('{"kind":"finding"', '{"kind":"finding-update"',
                                    '{"kind":"summary"'))]


def findings_said(text: str) -> list[tuple[str, str, str]]:
    found = [json.loads(line) for line in text.splitlines()
             if line.startswith('{"kind":"finding"')]
    return sorted((f["finding"], f["summary"], json.dumps(f["objects"])) for f in found)


def frame(payload: bytes) -> bytes:
    """A record's checked frame (format 2.1), built from docs/recording-format.md
    rather than by the writer's code: [7, CRC-32C as a uint32, payload as a bin]."""
    import struct

    import crc32c
    import msgpack

    packed: bytes = msgpack.packb(payload)
    return b"\x93\x07\xce" + struct.pack(">I", crc32c.crc32c(payload)) + packed


def pack_records(records: Iterable[Any], *, checked: bool = True) -> bytes:
    """Records after the header as a 2.1 writer frames them (or bare, as 2.0 did)."""
    import msgpack

    packed = (msgpack.packb(rec) for rec in records)
    return b"".join(frame(p) if checked else p for p in packed)


def unpack_records(data: bytes, **kwargs: Any) -> list[Any]:
    """Every record of a recording, checked frames opened (their checksums not
    checked: the tests that need it compute them)."""
    import msgpack

    unpacker = msgpack.Unpacker(strict_map_key=False, **kwargs)
    unpacker.feed(data)
    return [msgpack.unpackb(rec[2], strict_map_key=False, **kwargs)
            if isinstance(rec, list) and len(rec) == 3 and rec[0] == 7 else rec
            for rec in unpacker]
