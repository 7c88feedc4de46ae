"""A recording started and stopped while the session runs (the TUI's `r`): each file
is whole — header, the metadata of the moment, events, an end record counting only
its own span — and the metadata changes after a stop go to no closed file."""

from __future__ import annotations

from pathlib import Path

from tests.unit.recording_support import FACTS, GOLDEN
from tracer.events.model import Event
from tracer.metadata.index import MetadataIndex
from tracer.recording.live import LiveRecording
from tracer.recording.metadata import MetadataRecord
from tracer.recording.reader import EndRecord, RecordingReader
from tracer.recording.writer import RecordSpec
from tracer.sources.stats import SourceStats


def golden_events() -> list[Event]:
    with RecordingReader(GOLDEN) as reader:
        return list(reader.events())


def pod(name: str) -> dict[str, object]:
    return {"metadata": {"name": name, "namespace": "default", "uid": name,
                         "labels": {"app": name}},
            "spec": {"nodeName": "node1"}, "status": {"podIP": "10.42.0.99"}}


def read(path: Path) -> tuple[list[Event], list[MetadataRecord], EndRecord]:
    with RecordingReader(path) as reader:
        items = list(reader)
    end = items[-1]
    assert isinstance(end, EndRecord)
    return ([i for i in items if isinstance(i, Event)],
            [i for i in items if isinstance(i, MetadataRecord)], end)


def test_two_recordings_of_one_session_count_their_own_span(tmp_path: Path) -> None:
    events = golden_events()
    index = MetadataIndex()
    index.apply("Pod", "added", pod("before"))
    stats = SourceStats(received=1000, decode_errors=2, lost={"ringbuf_reserve": 50})
    rec = LiveRecording(FACTS, index, lambda: stats, snapshot=None)

    first, second = tmp_path / "one.ntrec", tmp_path / "two.ntrec"
    rec.start(RecordSpec(first))
    rec.write(events[:5])
    stats.received += 5
    stats.lost["ringbuf_reserve"] += 7
    index.apply("Pod", "added", pod("during"))
    assert rec.stop() == first and rec.writer is None
    index.apply("Pod", "added", pod("after-first"))   # no recording: goes nowhere
    size = first.stat().st_size
    rec.write(events[5:8])                             # nor do events
    rec.start(RecordSpec(second))
    rec.write(events[8:10])
    stats.received += 2
    rec.stop()
    assert first.stat().st_size == size

    got, meta, end = read(first)
    assert len(got) == 5
    assert [(m.action, m.obj["metadata"]["name"]) for m in meta] == [
        ("added", "before"), ("added", "during")]
    assert (end.info.received, end.info.decode_errors, dict(end.info.lost)) == (
        5, 0, {"ringbuf_reserve": 7})
    got, meta, end = read(second)
    assert len(got) == 2
    assert {m.obj["metadata"]["name"] for m in meta} == {"before", "during", "after-first"}
    assert (end.info.received, dict(end.info.lost)) == (2, {"ringbuf_reserve": 0})
