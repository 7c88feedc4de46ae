"""Diagnosis of a file: a recording (`nodetrace record`, `trace --record`) or the JSON
lines `trace -o jsonl` printed.  No privileges, no BCC: the same Diagnoser as live,
fed the same decoded events, with the clock taken from the events.

Node facts and names come from the file where it has them (a recording's node-state
and metadata records), else from what the caller passes (`--metadata`, a snapshot).
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tracer.diagnosis.engine import Diagnoser
from tracer.diagnosis.finding import Coverage, Finding
from tracer.diagnosis.names import Names, NoNames, ObjectListNames
from tracer.diagnosis.nodefacts import NodeFacts
from tracer.model import Event
from tracer.recording.format import MAGIC_PREFIX
from tracer.sources.jsonl import JsonlEvents

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
    services = [ipaddress.ip_network(c, strict=False) for c in service_cidrs or []]
    pods = [ipaddress.ip_network(c, strict=False) for c in cluster_cidrs or []]
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


def _diagnose_recording(path: Path, names: Names | None, facts: NodeFacts | None,
                        coverage: Coverage, pods: list[Any], services: list[Any],
                        emit: Callable[[list[Finding]], None] | None,
                        stop: threading.Event, node: str | None) -> Diagnoser:
    from tracer.recording.reader import RecordingReader
    from tracer.recording.writer import MetadataRecord, NodeState
    from tracer.sources.replay import ReplaySource

    with RecordingReader(path) as reader:
        h = reader.header
        pods = pods or [ipaddress.ip_network(n, strict=False) for n in h.pod_networks]
        services = services or [ipaddress.ip_network(n, strict=False)
                                for n in h.service_networks]
        coverage.attached = list(h.attached)
        coverage.unavailable = dict(h.unavailable)
        # the recording names the host; the Kubernetes node name may differ (--node)
        node = node or h.node or None
        diag = Diagnoser(names or NoNames(), facts or NodeFacts(node=node),
                         node_netns=h.netns or None, pod_networks=pods,
                         service_networks=services, coverage=coverage)
        objects: dict[tuple[str, str, str], dict[str, Any]] = {}

        def on_record(rec: MetadataRecord | NodeState) -> None:
            if isinstance(rec, NodeState) and facts is None:
                snap = dict(rec.items)
                snap["node"] = node
                diag.ctx.facts = NodeFacts.from_snapshot(snap)
                diag.coverage.node_state = True
            elif isinstance(rec, MetadataRecord) and names is None:
                meta = rec.object.get("metadata") or {}
                key = (rec.kind, meta.get("namespace", ""), meta.get("name", ""))
                if rec.op == "deleted":
                    objects.pop(key, None)
                else:
                    objects[key] = {"kind": rec.kind, **rec.object}
                diag.ctx.names = ObjectListNames(list(objects.values()))
                diag.coverage.metadata = "recording"

        source = ReplaySource(reader, on_record=on_record)
        for batch in source.batches(stop):
            found = diag.process(batch)
            if emit is not None and found:
                emit(found)
        last = diag.finish()
        if emit is not None and last:
            emit(last)
        coverage.lost = {k: v for k, v in source.stats().lost.items() if v}
    return diag
