"""Recordings: a session in one file, replayed anywhere (docs/recording-format.md).

Nothing here imports BCC: replay and the TUI on a recording need no privileges."""

from tracer.recording.format import EVENT_TYPES, VERSION, FixUp
from tracer.recording.metadata import (
    ACTIONS,
    MetadataLog,
    MetadataRecord,
    MetadataRecorder,
    fan_out,
)
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
    NodeState,
    RecordingWriter,
    RecordSpec,
    SessionFacts,
)

__all__ = ["ACTIONS", "EVENT_TYPES", "VERSION", "EndInfo", "EndRecord", "FixUp", "Header",
           "Item", "MetadataLog", "MetadataRecord", "MetadataRecorder", "NodeState",
           "RecordSpec", "Recording", "RecordingReader", "RecordingWriter", "SessionFacts",
           "SyncMarker", "fan_out", "load"]
