"""Diagnosis of a file: a recording (`nodetrace record`, `trace --record`) or the JSON
lines `trace -o jsonl` printed.  No privileges, no BCC: the same Diagnoser as live,
fed the same decoded events, with the clock taken from the events.

Node facts and names come from the file where it has them (a recording's node-state
and metadata records), else from what the caller passes (`--metadata`, a snapshot).
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from tracer.diagnosis.engine import Diagnoser
from tracer.diagnosis.names import Names, NoNames, ObjectListNames
from tracer.diagnosis.nodefacts import NodeFacts
from tracer.diagnosis.rules import Network
from tracer.events.finding import Coverage, Finding
from tracer.events.jsonl import JsonlEvents
from tracer.events.model import Event
from tracer.pipeline.path import PathMarker
from tracer.recording.format import MAGIC_PREFIX
from tracer.recording.reader import Header, RecordingReader
from tracer.recording.writer import NodeState
from tracer.sources.replay import ReplaySource

BATCH = 64


def is_recording(path: Path) -> bool:
    with path.open("rb") as f:
        head: bytes = f.read(len(MAGIC_PREFIX))
    return bool(head == MAGIC_PREFIX)


def _batches(events: Iterator[Event]) -> Iterator[list[Event]]:
    batch: list[Event] = []
    for ev in events:
        batch.append(ev)
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def diagnose_events(events: Iterator[Event] | list[Event], diag: Diagnoser,
                    emit: Callable[[list[Finding]], None] | None = None) -> Diagnoser:
    for batch in _batches(iter(events)):
        found = diag.process(batch)
        if emit is not None and found:
            emit(found)
    last = diag.finish()
    if emit is not None and last:
        emit(last)
    return diag


def diagnose_file(path: Path, *, names: Names | None = None, facts: NodeFacts | None = None,
                  metadata_label: str = "none", node: str | None = None,
                  service_cidrs: list[str] | None = None,
                  cluster_cidrs: list[str] | None = None,
                  emit: Callable[[list[Finding]], None] | None = None,
                  stop: threading.Event | None = None) -> Diagnoser:
    services: list[Network] = [ipaddress.ip_network(c, strict=False)
                               for c in service_cidrs or []]
    pods: list[Network] = [ipaddress.ip_network(c, strict=False) for c in cluster_cidrs or []]
    coverage = Coverage(metadata=metadata_label, node_state=facts is not None and facts.known)
    if not is_recording(path):
        diag = Diagnoser(names or NoNames(), facts or NodeFacts(), pod_networks=pods,
                         service_networks=services, coverage=coverage)
        jsonl = JsonlEvents.open(path)
        diagnose_events(iter(jsonl), diag, emit)
        if jsonl.skipped:
            coverage.unavailable["jsonl"] = f"{jsonl.skipped} line(s) skipped: not events"
        return diag
    return _diagnose_recording(path, names, facts, coverage, pods, services, emit,
                               stop or threading.Event(), node)


class RecordedState:
    """Feeds a Diagnoser the node state and metadata a recording carries, in stream
    order (ReplaySource's `metadata` and `on_node_state`), unless the caller gave its own."""

    def __init__(self, diag: Diagnoser, node: str | None, *, keep_names: bool,
                 keep_facts: bool) -> None:
        self.diag = diag
        self.node = node
        self.keep_names = keep_names
        self.keep_facts = keep_facts
        self._objects: dict[tuple[str, str, str], dict[str, Any]] = {}

    def on_node_state(self, rec: NodeState) -> None:
        if self.keep_facts:
            return
        snap = dict(rec.items)
        snap["node"] = self.node
        self.diag.ctx.facts = NodeFacts.from_snapshot(snap)
        self.diag.coverage.node_state = True

    def on_change(self, kind: str, action: str, obj: Mapping[str, Any], at: float) -> None:
        """tracer.recording.metadata.MetadataRecorder: the recording's metadata."""
        if self.keep_names:
            return
        meta = obj.get("metadata") or {}
        key = (kind, meta.get("namespace", ""), meta.get("name", ""))
        if action == "deleted":
            self._objects.pop(key, None)
        else:
            self._objects[key] = {"kind": kind, **obj}
        self.diag.ctx.names = ObjectListNames(list(self._objects.values()))
        self.diag.coverage.metadata = "recording"


def recording_diagnoser(h: Header, *, names: Names | None, facts: NodeFacts | None,
                        coverage: Coverage, node: str | None,
                        pods: list[Network] | None = None,
                        services: list[Network] | None = None) -> \
        tuple[Diagnoser, RecordedState, PathMarker]:
    """The diagnoser, its feed of recorded state, and the path marks of a recording's
    replay — the stages the live session runs after its recording tee."""
    pods = pods or [ipaddress.ip_network(n, strict=False) for n in h.pod_networks]
    services = services or [ipaddress.ip_network(n, strict=False)
                            for n in h.service_networks]
    coverage.attached = list(h.attached)
    coverage.unavailable = dict(h.unavailable)
    coverage.probe_families = list(h.families)
    # the recording names the host; the Kubernetes node name may differ (--node)
    node = node or h.node or None
    diag = Diagnoser(names or NoNames(), facts or NodeFacts(node=node),
                     node_netns=h.netns or None, pod_networks=pods,
                     service_networks=services, coverage=coverage)
    state = RecordedState(diag, node, keep_names=names is not None,
                          keep_facts=facts is not None)
    return diag, state, PathMarker(pods, services)


def _diagnose_recording(path: Path, names: Names | None, facts: NodeFacts | None,
                        coverage: Coverage, pods: list[Network], services: list[Network],
                        emit: Callable[[list[Finding]], None] | None,
                        stop: threading.Event, node: str | None) -> Diagnoser:
    with RecordingReader(path) as reader:
        diag, state, marker = recording_diagnoser(
            reader.header, names=names, facts=facts, coverage=coverage, node=node,
            pods=pods, services=services)
        source = ReplaySource(reader, metadata=state, on_node_state=state.on_node_state)
        for batch in source.batches(stop):
            found = diag.process(marker.process(batch))
            if emit is not None and found:
                emit(found)
        last = diag.finish(source.end.wall_ns if source.end is not None else None)
        if emit is not None and last:
            emit(last)
        coverage.lost = {k: v for k, v in source.stats().lost.items() if v}
    return diag
