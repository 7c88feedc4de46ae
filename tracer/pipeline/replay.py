"""What the live session runs after its recording tee, run on a recording: path marks,
Kubernetes names from the metadata the recording carries, diagnosis — one pipeline for
`replay` and the TUI, so both show what `trace` showed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tracer.diagnosis.names import ObjectListNames
from tracer.diagnosis.offline import recording_diagnoser
from tracer.events.finding import Coverage, Finding
from tracer.events.model import Event
from tracer.metadata.index import MetadataIndex
from tracer.metadata.resolver import Listener, LocalPodInfo
from tracer.pipeline.enrich import Enricher, NamedBatch
from tracer.recording.metadata import fan_out
from tracer.recording.reader import Header, LocalState, RecordingReader
from tracer.sources.replay import ReplaySource


class IndexFeed:
    """The recorded metadata changes into the index names are resolved from."""

    def __init__(self, index: MetadataIndex) -> None:
        self.index = index

    def on_change(self, kind: str, action: str, obj: Mapping[str, Any], at: float) -> None:
        self.index.apply(kind, action, dict(obj), at)

    def on_local(self, rec: LocalState) -> None:
        """Sockets of hostNetwork pods, pods by cgroup: names live had from the node."""
        self.index.set_listeners(Listener(*ln) for ln in rec.listeners)
        self.index.set_local_pods(LocalPodInfo(*p) for p in rec.pods)


class ReplayPipeline:
    def __init__(self, h: Header, *, metadata: Sequence[Path] = (),
                 node: str | None = None) -> None:
        names = ObjectListNames.from_files(list(metadata)) if metadata else None
        self.diag, self.state, self.marker = recording_diagnoser(
            h, names=names, facts=None, node=node,
            coverage=Coverage(metadata=("file " + ", ".join(map(str, metadata)))
                              if metadata else "none"))
        self.index = MetadataIndex(rebuild_interval_s=0.0)   # every change at once
        self.index.local_node = node or h.node or None
        self.index.local_addresses = frozenset(h.addresses)   # as live: the node's own
        self.enrich = Enricher(self.index, h.netns)

    def source(self, reader: RecordingReader, **kwargs: Any) -> ReplaySource:
        feed = IndexFeed(self.index)
        return ReplaySource(reader, metadata=fan_out(feed, self.state),
                            on_node_state=self.state.on_node_state,
                            on_clock=self.diag.clock, on_local=feed.on_local, **kwargs)

    def process(self, batch: Sequence[Event]) -> tuple[NamedBatch, list[Finding]]:
        named = self.enrich.process(self.marker.process(batch))
        return named, list(self.diag.process(named))

    def finish(self, end_wall_ns: int | None) -> list[Finding]:
        return list(self.diag.finish(end_wall_ns))
