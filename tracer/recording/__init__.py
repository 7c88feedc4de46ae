"""Recordings: a session in one file, replayed anywhere (docs/recording-format.md).

Nothing here imports BCC: replay and the TUI on a recording need no privileges."""

from tracer.recording.format import EVENT_TYPES, VERSION, FixUp
from tracer.recording.reader import (
    EndRecord,
    Header,
    Item,
    Recording,
    RecordingReader,
    SyncMarker,
    load,
)
from tracer.recording.writer import (
    EndInfo,
    MetadataRecord,
    NodeState,
    RecordingWriter,
    RecordSpec,
    SessionFacts,
)

__all__ = ["EVENT_TYPES", "VERSION", "EndInfo", "EndRecord", "FixUp", "Header", "Item",
           "MetadataRecord", "NodeState", "RecordSpec", "Recording", "RecordingReader",
           "RecordingWriter", "SessionFacts", "SyncMarker", "load"]
