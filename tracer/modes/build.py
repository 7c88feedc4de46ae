"""Every mode's pipeline, built here and nowhere else.

    live:             local-names → recording-tee → path-marks → kubernetes-names
                      → pod-filter → diagnosis
    replay, the TUI's replay, diagnose --from:
                                                    path-marks → kubernetes-names
                      → pod-filter → diagnosis
    the replay render worker (replay -j 2):         path-marks → kubernetes-names
                      → pod-filter

The recording tee sits where a recording can no longer be re-derived from: events
decoded and joined with the node's state of the moment (a process's pod, a port's
holder, the forwarding sysctls: gone by replay time).  Everything after it is
re-run on replay with the code of the day, on the metadata the recording carries:
so replay's stages are live's after the tee, by construction (a unit test holds
them to it).  Diagnosis is left out live when nobody asked for findings (record),
and in the render worker, whose lines the main process's diagnosis follows.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracer.diagnosis.engine import Diagnoser
from tracer.diagnosis.names import IndexNames, NoNames
from tracer.diagnosis.nodefacts import NodeFacts
from tracer.diagnosis.rules import Network
from tracer.diagnosis.stage import DiagnosisStage
from tracer.events.finding import Coverage
from tracer.events.model import Event
from tracer.metadata.index import MetadataIndex
from tracer.metadata.resolver import Listener, LocalPodInfo
from tracer.metadata.selectors import FieldSelector, LabelSelector
from tracer.modes.drive import EventSource
from tracer.node.podmap import PodMap
from tracer.node.sysctls import ForwardingSysctls
from tracer.pipeline.enrich import Enricher, PodFilter, Selected
from tracer.pipeline.local_names import LocalEnricher
from tracer.pipeline.path import PathMarker
from tracer.pipeline.stage import PassStage, Pipeline, Stage
from tracer.recording.live import LiveRecording
from tracer.recording.reader import LocalState, RecordingReader
from tracer.recording.writer import NodeState
from tracer.sources.replay import ReplaySource

# the live stages a recording stands in for: what replay's pipeline does not have
KERNEL_STAGES = ("local-names", "recording-tee")
DIAGNOSIS_HEARTBEAT_S = 0.2   # how often diagnosis looks at the clock when nothing happens


class RecordingTee(PassStage):
    """Writes each batch to the session's recording while one is running."""

    name = "recording-tee"

    def __init__(self, recording: LiveRecording) -> None:
        self.recording = recording

    def process(self, batch: Sequence[Event]) -> Sequence[Event]:
        if self.recording.writer is not None:
            self.recording.write(batch)
        return batch


def _derived(pod_networks: Sequence[Network], service_networks: Sequence[Network],
             index: MetadataIndex, node_netns: int, selected: Callable[[], Selected] | None,
             diagnosis: DiagnosisStage | None) -> list[Stage]:
    """What every mode runs after the recording tee."""
    stages: list[Stage] = [PathMarker(pod_networks, service_networks),
                           Enricher(index, node_netns), PodFilter(selected)]
    if diagnosis is not None:
        stages.append(diagnosis)
    return stages


def live(*, node_netns: int, sysctls: ForwardingSysctls, recording: LiveRecording,
         index: MetadataIndex, pod_networks: Sequence[Network],
         service_networks: Sequence[Network], selected: Callable[[], Selected] | None,
         diagnoser: Diagnoser | None, attached: Sequence[str] = (),
         families: Sequence[str] | None = None,
         unavailable: Mapping[str, str] | None = None, pods: PodMap | None = None,
         clock_ns: Callable[[], int] = time.time_ns) -> Pipeline:
    """The live session's pipeline.  `selected`: the pods of -l/-n/--pod (None:
    every event; the pod-filter stage's `select` changes it as the session runs);
    `diagnoser`: findings beside the events, named from `index` as the events are."""
    diagnosis = None
    if diagnoser is not None:
        names = IndexNames(index)
        diagnoser.use_names(names)
        # the path marker's networks first: the recording's header carries them, and
        # its replay judges with the same ones
        diagnoser.set_node(node_netns, list(pod_networks) or [
            ipaddress.ip_network(c, strict=False) for c in names.pod_cidrs()],
            service_networks)
        diagnoser.set_attached(attached, unavailable or {}, families)
        diagnosis = DiagnosisStage(diagnoser, clock_ns, on_clock=recording.clock)
    local = LocalEnricher(node_netns, pods if pods is not None else PodMap(), sysctls)
    return Pipeline([local, RecordingTee(recording),
                     *_derived(pod_networks, service_networks, index, node_netns, selected,
                               diagnosis)],
                    heartbeat_s=DIAGNOSIS_HEARTBEAT_S if diagnosis is not None else None)


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


@dataclass
class Replay:
    """A recording's source and the pipeline its events go through."""

    source: ReplaySource
    pipeline: Pipeline
    index: MetadataIndex              # the recorded metadata, as of the stream position
    diagnoser: Diagnoser | None
    selected: RecordedPods | None = None     # -l and the like, on a file

    def end_wall_ns(self) -> int | None:
        return self.source.end.wall_ns if self.source.end is not None else None


@dataclass(frozen=True)
class PodQuery:
    """-l/--field-selector/-n/--pod on a file: the pods are looked up, as kubectl
    would list them, in the metadata the file's events are named from."""

    labels: LabelSelector | None = None
    fields: FieldSelector | None = None
    namespace: str | None = "default"     # None: every namespace
    name: str | None = None


class RecordedPods:
    """The pod-filter's selection in a file: the uids of the pods the query matches
    in `index`, as it stands at each batch (pods come and go in a recording too).
    `matched` says whether any pod ever matched: a selection that matched nothing
    filters every event away, and the coverage must say so."""

    def __init__(self, index: MetadataIndex, query: PodQuery) -> None:
        self.index = index
        self.query = query
        self.matched = False
        self._generation = -1
        self._current: Selected = (frozenset(), frozenset(), frozenset())

    def __call__(self) -> Selected:
        gen = self.index.generation
        if gen != self._generation:
            self._generation = gen
            q = self.query
            uids = frozenset(p["metadata"]["uid"] for p in self.index.select_pods(
                labels=q.labels, fields=q.fields, namespace=q.namespace, name=q.name)
                if p["metadata"].get("uid"))
            self.matched = self.matched or bool(uids)
            self._current = (uids, frozenset(), frozenset())
        return self._current


def _networks(given: Sequence[Network] | None, recorded: Iterable[str]) -> list[Network]:
    return list(given) if given else [ipaddress.ip_network(n, strict=False) for n in recorded]


def _replay(reader: RecordingReader, *, metadata: Sequence[Path], node: str | None,
            facts: NodeFacts | None, pod_networks: Sequence[Network] | None,
            service_networks: Sequence[Network] | None, diagnosis: bool,
            speed: float | None, since_ns: int | None, until_ns: int | None,
            pods_query: PodQuery | None = None) -> Replay:
    h = reader.header
    pods = _networks(pod_networks, h.pod_networks)
    services = _networks(service_networks, h.service_networks)
    # the recording names the host; the Kubernetes node name may differ (--node)
    node = node or h.node or None
    index = MetadataIndex(rebuild_interval_s=0.0)   # every change at once
    index.local_node = node
    index.local_addresses = frozenset(h.addresses)   # as live: the node's own
    diag: Diagnoser | None = None
    on_node_state: Callable[[NodeState], None] | None = None
    if diagnosis:
        # findings are named from the recorded metadata, as the events are, unless
        # the caller names other objects (--metadata)
        names = IndexNames.from_files(metadata) if metadata else IndexNames(index)
        diag = Diagnoser(names, facts or NodeFacts(node=node), node_netns=h.netns or None,
                         pod_networks=pods, service_networks=services,
                         coverage=Coverage(
                             metadata=("file " + ", ".join(map(str, metadata)))
                             if metadata else "none",
                             node_state=facts is not None and facts.known))
        diag.set_attached(h.attached, h.unavailable, h.families)
        if not metadata:
            def recorded_metadata(*_: object, d: Diagnoser = diag) -> None:
                d.set_metadata("recording")
            index.add_observer(recorded_metadata)
        if facts is None:   # the recording's node state, as it was at each event
            def node_state(rec: NodeState, d: Diagnoser = diag) -> None:
                d.on_node_state({**rec.items, "node": node})
            on_node_state = node_state
    feed = IndexFeed(index)
    source = ReplaySource(reader, metadata=feed, on_node_state=on_node_state,
                          on_clock=diag.clock if diag is not None else None,
                          on_local=feed.on_local,
                          speed=speed, since_ns=since_ns, until_ns=until_ns)
    selected = RecordedPods(index, pods_query) if pods_query is not None else None
    pipeline = Pipeline(_derived(pods, services, index, h.netns, selected,
                                 DiagnosisStage(diag) if diag is not None else None))
    return Replay(source, pipeline, index, diag, selected)


def replay(reader: RecordingReader, *, metadata: Sequence[Path] = (), node: str | None = None,
           speed: float | None = None, since_ns: int | None = None,
           until_ns: int | None = None) -> Replay:
    """`nodetrace replay`: what `trace` printed, names and findings.  `metadata`:
    other objects to name findings from; `node`: the recorded node's Kubernetes name."""
    return _replay(reader, metadata=metadata, node=node, facts=None, pod_networks=None,
                   service_networks=None, diagnosis=True, speed=speed, since_ns=since_ns,
                   until_ns=until_ns)


def replay_lines(reader: RecordingReader, *, metadata: Sequence[Path] = (),
                 node: str | None = None, since_ns: int | None = None,
                 until_ns: int | None = None) -> Replay:
    """The replay render worker's: replay's stages but diagnosis (the main process
    runs it), so its lines are the main process's, batch for batch."""
    return _replay(reader, metadata=metadata, node=node, facts=None, pod_networks=None,
                   service_networks=None, diagnosis=False, speed=None, since_ns=since_ns,
                   until_ns=until_ns)


def replay_feed(reader: RecordingReader) -> Replay:
    """The TUI's replay of a recording: what `replay -o jsonl` prints."""
    return replay(reader)


def diagnose_recording(reader: RecordingReader, *, metadata: Sequence[Path] = (),
                       facts: NodeFacts | None = None, node: str | None = None,
                       pod_networks: Sequence[Network] | None = None,
                       service_networks: Sequence[Network] | None = None,
                       pods_query: PodQuery | None = None) -> Replay:
    """`diagnose --from RECORDING`: replay's pipeline; `facts` in place of the
    recorded node state, `metadata` of the recorded objects, networks of the
    recorded ones where given; `pods_query`: only the events of these pods."""
    return _replay(reader, metadata=metadata, node=node, facts=facts,
                   pod_networks=pod_networks, service_networks=service_networks,
                   diagnosis=True, speed=None, since_ns=None, until_ns=None,
                   pods_query=pods_query)


@dataclass
class EventsRun:
    source: EventSource
    pipeline: Pipeline
    diagnoser: Diagnoser
    selected: RecordedPods | None = None


def diagnose_events(events: Iterable[Event], *, metadata: Sequence[Path] = (),
                    facts: NodeFacts | None = None,
                    pod_networks: Sequence[Network] = (),
                    service_networks: Sequence[Network] = (),
                    pods_query: PodQuery | None = None) -> EventsRun:
    """`diagnose --from FILE.jsonl`: decoded events with no recorded metadata or node
    state: names from `metadata`, node facts from `facts` (or none)."""
    names = IndexNames.from_files(metadata) if metadata else NoNames()
    diag = Diagnoser(names, facts or NodeFacts(), pod_networks=list(pod_networks),
                     service_networks=list(service_networks),
                     coverage=Coverage(metadata=("file " + ", ".join(map(str, metadata)))
                                       if metadata else "none",
                                       node_state=facts is not None and facts.known))
    selected = RecordedPods(names.index, pods_query) if pods_query is not None else None
    pipeline = Pipeline(_derived(diag.ctx.pod_networks, service_networks, names.index, 0,
                                 selected, DiagnosisStage(diag)))
    return EventsRun(EventSource(events), pipeline, diag, selected)
