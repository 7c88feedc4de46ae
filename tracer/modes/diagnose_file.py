"""Diagnosis of a file: a recording (`nodetrace record`, `trace --record`) or the JSON
lines `trace -o jsonl` printed.  No privileges, no BCC: the same stages as live after
its recording tee (tracer/modes/build.py), with the clock taken from the events.

Node facts and names come from the file where it has them (a recording's node-state
and metadata records), else from what the caller passes (`--metadata`, a snapshot).
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from tracer.diagnosis.engine import Diagnoser
from tracer.diagnosis.nodefacts import NodeFacts
from tracer.diagnosis.rules import Network
from tracer.events.finding import Finding, FindingUpdate, Found, InputCoverage
from tracer.events.jsonl import JsonlEvents
from tracer.events.model import Event
from tracer.events.records import Output
from tracer.modes import build
from tracer.modes.drive import drive
from tracer.recording.opener import open_input
from tracer.recording.reader import RecordingReader
from tracer.util.errors import RecordingFormatError, UsageError

BATCH = 64


def diagnose_events(events: Iterable[Event], diag: Diagnoser,
                    emit: Callable[[list[Found]], None] | None = None) -> Diagnoser:
    """Diagnosis alone on decoded events (tests of the rules, benchmarks)."""
    batch: list[Event] = []
    for ev in events:
        batch.append(ev)
        if len(batch) >= BATCH:
            found = diag.process(batch)
            if emit is not None and found:
                emit(found)
            batch = []
    found = diag.process(batch) + diag.finish()
    if emit is not None and found:
        emit(found)
    return diag


class _FindingsTo:
    """A sink of the findings only, to `emit`."""

    def __init__(self, emit: Callable[[list[Found]], None] | None) -> None:
        self.emit = emit

    def write(self, batch: Sequence[Output]) -> None:
        found = [f for f in batch if isinstance(f, (Finding, FindingUpdate))]
        if found and self.emit is not None:
            self.emit(found)

    def close(self) -> None:
        pass


def diagnose_file(path: Path | str, *, metadata: Sequence[Path] = (),
                  facts: NodeFacts | None = None, node: str | None = None,
                  service_cidrs: list[str] | None = None,
                  cluster_cidrs: list[str] | None = None,
                  emit: Callable[[list[Found]], None] | None = None,
                  stop: threading.Event | None = None,
                  pods_query: build.PodQuery | None = None) -> Diagnoser:
    """`path`: a file, or "-" for standard input (tracer/recording/opener.py tells a
    recording from JSON lines, and refuses anything else with one line);
    `pods_query`: only the events of these pods (-l, -n, --pod), looked up in the
    file's metadata (a recording's) or in `metadata` (JSON lines)."""
    services: list[Network] = [ipaddress.ip_network(c, strict=False)
                               for c in service_cidrs or []]
    pods: list[Network] = [ipaddress.ip_network(c, strict=False) for c in cluster_cidrs or []]
    stop = stop or threading.Event()
    sinks = [_FindingsTo(emit)]
    with open_input(path) as opened:
        if opened.kind != "recording":
            jsonl = JsonlEvents(opened.text_lines())
            if pods_query is not None and not metadata:
                raise UsageError("selecting pods (-l, -n, --pod) in JSON lines needs "
                                 "--metadata FILE: the lines' names are not read back")
            run = build.diagnose_events(jsonl, metadata=metadata, facts=facts,
                                        pod_networks=pods, service_networks=services,
                                        pods_query=pods_query)
            drive(run.source, run.pipeline, sinks, stop, loss_warning=None)
            read = run.source.stats().received
            if jsonl.skipped and not read:
                raise RecordingFormatError(f"{opened.name}: none of its {jsonl.skipped} "
                                           "line(s) is an event of `trace -o jsonl`")
            run.diagnoser.set_input(InputCoverage(kind="jsonl", name=opened.name,
                                                  records=read,
                                                  bytes=opened.stream.consumed,
                                                  lines_skipped=jsonl.skipped))
            _said_selection(run.diagnoser, run.selected)
            return run.diagnoser
        with RecordingReader(opened) as reader:
            rec = build.diagnose_recording(reader, metadata=metadata, facts=facts, node=node,
                                           pod_networks=pods, service_networks=services,
                                           pods_query=pods_query)
            # the losses are in the coverage the caller reports
            drive(rec.source, rec.pipeline, sinks, stop, end_wall_ns=rec.end_wall_ns,
                  loss_warning=None)
            assert rec.diagnoser is not None
            rec.diagnoser.set_input(reader.coverage())
            _said_selection(rec.diagnoser, rec.selected)
    return rec.diagnoser


def _said_selection(diag: Diagnoser, selected: build.RecordedPods | None) -> None:
    """A selection that matched no pod of the file left nothing to diagnose: the
    coverage says so, and the empty answer is not read as a healthy node."""
    if selected is not None and not selected.matched:
        diag.set_unavailable("pod selection", "no pod of the file matched the selection: "
                             "no event was diagnosed")
