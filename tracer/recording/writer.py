"""Write a session to a recording: a Sink that tees next to the output sink.

Every batch is encoded and handed to the kernel at once (one write(2) per batch,
which the live source produces every few milliseconds), so a `kill -9` loses at most
the batch being written and the file always ends at or inside its last record.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgpack

from tracer import __version__
from tracer.events.model import Event
from tracer.recording.blocks import BlockEncoder
from tracer.recording.format import MAGIC, VERSION, Rec, checked_head, schema, struct_getter
from tracer.recording.metadata import ACTIONS, MetadataRecord, json_default, object_key
from tracer.sinks.output import write_all
from tracer.util.errors import TracerError

if TYPE_CHECKING:
    from tracer.metadata.resolver import Listener, LocalPodInfo

log = logging.getLogger(__name__)

SYNC_INTERVAL_NS = 1_000_000_000
SNAPSHOT_WAIT_S = 3.0


@dataclass(frozen=True)
class RecordSpec:
    """Where and how to record (the CLI's --record/-w, --max-size, --rotate)."""

    path: Path
    max_size: int | None = None    # bytes per file
    rotate: int = 0                # at max_size: keep this many older files; 0: stop
    stop_when_full: bool = False   # the recording is the session's output (`record`)
    argv: tuple[str, ...] = field(default_factory=lambda: tuple(sys.argv))


@dataclass(frozen=True)
class SessionFacts:
    """What the header says about the session; replay needs nothing else of the node."""

    kernel_release: str
    attached: Sequence[str]
    unavailable: Mapping[str, str]        # probe -> why it is not attached
    drop_reasons: Mapping[int, str]
    mono_to_wall_ns: int                  # the decoder's clock reference
    netns: int = 0
    pod_networks: Sequence[str] = ()      # the path marker's networks
    service_networks: Sequence[str] = ()
    # the node's own addresses (link-local ones too) as the session's names knew them
    addresses: Sequence[str] = ()
    # the Kubernetes node name when the pod spec passes it (downward API), else the host's
    node: str = field(default_factory=lambda: os.environ.get("NODE_NAME")
                      or socket.gethostname())
    # the probe families that ran (the loader's Module.families()); None: not known,
    # and the header then leaves the reader to derive them from `attached`
    families: Sequence[str] | None = None


@dataclass(frozen=True)
class NodeState:
    """A snapshot of the node's state (tracer/recording/nodestate.py names the items)."""

    items: Mapping[str, Any]
    wall_ns: int = field(default_factory=time.time_ns)


@dataclass(frozen=True)
class EndInfo:
    reason: str                       # "stopped", "max-size", "rotated", "closed"
    received: int = 0
    decode_errors: int = 0
    lost: Mapping[str, int] = field(default_factory=dict)   # the final loss ledger by layer
    wall_ns: int | None = None        # when the session ended (its diagnosis's last clock)


def build_header(facts: SessionFacts, argv: Sequence[str], part: int) -> dict[str, Any]:
    mono = time.monotonic_ns()
    return {
        "nodetrace": __version__,
        "argv": list(argv),
        "node": facts.node,
        "netns": facts.netns,
        "kernel": facts.kernel_release,
        "attached": list(facts.attached),
        "unavailable": [[k, v] for k, v in facts.unavailable.items()],
        **({"families": list(facts.families)} if facts.families is not None else {}),
        "clock": {"mono_ns": mono, "wall_ns": mono + facts.mono_to_wall_ns},
        "drop_reasons": sorted([int(k), v] for k, v in facts.drop_reasons.items()),
        "networks": {"pod": list(facts.pod_networks), "service": list(facts.service_networks)},
        "addresses": sorted(facts.addresses),
        "started_wall_ns": time.time_ns(),
        "part": part,
        "schema": schema(),
    }


class EventEncoder:
    """Model events (and the other records) -> msgpack records, one buffer per batch.

    Events go into blocks of columns (tracer/recording/blocks.py), packed by msgpack's
    Packer: 0.03 us an event in a live session, where ormsgpack took 0.10 (it packed
    one record per event faster, when 1.x wrote rows).  The bytes are checked against
    the format's description (tests/unit/test_recording_writer_bytes.py)."""

    def __init__(self) -> None:
        self.packer = msgpack.Packer(default=self._struct)
        self._parts: list[bytes] = []
        self._blocks = BlockEncoder()
        self._structs: dict[type, Callable[[Any], tuple[Any, ...]]] = {}

    def _struct(self, obj: object) -> tuple[Any, ...]:
        # called for what the packer cannot pack itself: the optional structs
        get = self._structs.get(type(obj))
        if get is None:
            if not hasattr(obj, "__dataclass_fields__"):
                raise TypeError(f"cannot record a {type(obj).__name__}")
            get = self._structs[type(obj)] = struct_getter(type(obj))
        return get(obj)

    def events(self, batch: Sequence[Event]) -> int:
        pack, parts = self.packer.pack, self._parts
        for rec in self._blocks.records(batch):
            payload = pack(rec)
            parts.append(checked_head(payload))
            parts.append(payload)
        return len(batch)

    def record(self, rec: Sequence[Any]) -> None:
        """A record in its checked frame; the header (type 0) is written bare, so the
        file starts with the magic."""
        payload = self.packer.pack(rec)
        if rec[0] != Rec.HEADER:
            self._parts.append(checked_head(payload))
        self._parts.append(payload)

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def _open_0600(path: Path) -> int:
    # O_NOFOLLOW: root writing into a shared directory must not follow a planted link;
    # fchmod: O_TRUNC keeps an existing file's mode, and the file holds addresses,
    # pod names and the node's ruleset
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW,
                 0o600)
    os.fchmod(fd, 0o600)
    return fd


class RecordingWriter:
    """A Sink.  Thread-safe: metadata sources may write from their own threads."""

    def __init__(self, spec: RecordSpec, facts: SessionFacts, *,
                 on_full: Callable[[], None] | None = None,
                 snapshot: Callable[[], Mapping[str, Any]] | None = None) -> None:
        """`snapshot`: gathers a node-state snapshot, run in the background at the start
        of every part (it runs commands; the session must not wait for them)."""
        self.spec = spec
        self.facts = facts
        self.on_full = on_full          # called once when --max-size stops the recording
        self.snapshot = snapshot
        self._snapshots: list[threading.Thread] = []
        self.events = 0                 # written, all parts
        self.failed = 0                 # events not written (I/O error, after a stop)
        self.stopped: str | None = None   # why nothing more is written
        self._lock = threading.Lock()
        self._enc = EventEncoder()
        self._part = 0
        self._size = 0
        self._fd = -1
        self._next_sync = 0
        self._objects: dict[tuple[str, str], bytes] = {}   # current metadata, packed
        self._local: bytes | None = None                   # the latest local record
        self._open()

    @property
    def path(self) -> Path:
        return self.spec.path

    def _open(self) -> None:
        try:
            self._fd = _open_0600(self.spec.path)
        except OSError as exc:
            raise TracerError(f"cannot write the recording {self.spec.path}: "
                              f"{exc.strerror}") from None
        self._size = 0
        self._enc.record([int(Rec.HEADER), MAGIC, list(VERSION),
                          build_header(self.facts, self.spec.argv, self._part)])
        self._flush(self._enc.take())
        if self._objects:
            # a later part replays on its own: it starts with the objects of the moment
            self._flush(b"".join(self._objects.values()))
        if self._local is not None:
            self._flush(self._local)
        self._next_sync = time.monotonic_ns() + SYNC_INTERVAL_NS
        if self.snapshot is not None:
            gather = self.snapshot
            t = threading.Thread(target=lambda: self.write_node_state(NodeState(gather())),
                                 name="node-state snapshot", daemon=True)
            t.start()
            self._snapshots.append(t)

    def _flush(self, data: bytes) -> None:
        write_all(self._fd, data)
        self._size += len(data)

    def _emit(self, data: bytes, events: int) -> None:
        """Write one encoded batch, rotating or stopping at --max-size first.  A
        failure stops the recording with a message, never the session."""
        limit = self.spec.max_size
        self.failed += events     # until written
        try:
            if limit is not None and self._size + len(data) > limit:
                if not self.spec.rotate:
                    self._stop_full()
                    return
                self._rotate()
            self._flush(data)
        except (OSError, TracerError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else exc.message
            self.stopped = self.stopped or f"write failed: {why}"
            log.error("recording %s stopped: %s", self.spec.path, why)
            self._close_fd()
            if self.on_full is not None:
                self.on_full()
            return
        self.failed -= events
        self.events += events

    def _end_record(self, info: EndInfo, next_part: str | None = None) -> list[Any]:
        return [int(Rec.END), info.wall_ns if info.wall_ns is not None else time.time_ns(),
                {"reason": info.reason, "events": self.events, "received": info.received,
                 "decode_errors": info.decode_errors, "lost": dict(info.lost),
                 "next_part": next_part}]

    def _rotate(self) -> None:
        self._enc.record(self._end_record(EndInfo("rotated"), self.spec.path.name))
        self._flush(self._enc.take())
        self._close_fd()
        # logrotate's order: FILE.N-1 -> FILE.N ... FILE -> FILE.1; the oldest goes
        path = self.spec.path
        for i in range(self.spec.rotate, 0, -1):
            older = path.with_name(f"{path.name}.{i - 1}") if i > 1 else path
            if older.exists():
                older.replace(path.with_name(f"{path.name}.{i}"))
        self._part += 1
        self._open()
        log.info("recording rotated: %s is part %d", path, self._part)

    def _stop_full(self) -> None:
        self.stopped = f"reached --max-size {self.spec.max_size} bytes"
        self._enc.record(self._end_record(EndInfo("max-size")))
        try:
            self._flush(self._enc.take())
        finally:
            self._close_fd()
        log.warning("recording %s stopped: it reached --max-size (%d bytes); "
                    "use --rotate N to keep going", self.spec.path, self.spec.max_size)
        if self.on_full is not None:
            self.on_full()

    def _close_fd(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _sync_due(self) -> None:
        now = time.monotonic_ns()
        if now >= self._next_sync:
            self._enc.record([int(Rec.SYNC), time.time_ns(), now, self.events])
            self._next_sync = now + SYNC_INTERVAL_NS

    # --- the Sink protocol and the other record types ---------------------------------

    def write(self, batch: Sequence[Event]) -> None:
        with self._lock:
            if self._fd < 0:
                self.failed += len(batch)
                return
            self._sync_due()
            n = self._enc.events(batch)
            self._emit(self._enc.take(), n)

    def on_change(self, kind: str, action: str, obj: Mapping[str, Any], at: float) -> None:
        """The MetadataRecorder hook (tracer/recording/metadata.py)."""
        self.write_metadata(MetadataRecord(kind, action, obj, round(at * 1e9)))

    def write_metadata(self, rec: MetadataRecord) -> None:
        if rec.action not in ACTIONS:
            raise ValueError(f"metadata action {rec.action!r} is not one of {ACTIONS}")
        # packed outside the lock and before it is remembered: an object that cannot be
        # packed raises here, in the caller, and leaves the recording as it was
        payload = msgpack.packb([int(Rec.METADATA), rec.wall_ns, rec.kind, rec.action,
                                 rec.obj], default=json_default)
        data = checked_head(payload) + payload
        key = object_key(rec.kind, rec.obj)
        with self._lock:
            if self._fd >= 0:
                self._emit(data, 0)
            # the objects as they are now: every rotated part starts with them
            if rec.action == "deleted":
                self._objects.pop(key, None)
            else:
                self._objects[key] = data

    def on_local(self, listeners: Sequence[Listener], pods: Sequence[LocalPodInfo],
                 at: float) -> None:
        """The index's local observer (tracer/metadata/index.py): sockets of
        hostNetwork pods and pods known by cgroup, which name endpoints as the API does."""
        payload = msgpack.packb([int(Rec.LOCAL), round(at * 1e9), {
            "listeners": [[ln.ip, ln.port, ln.pod_uid] for ln in listeners],
            "pods": [[p.uid, p.host_network, list(p.ips), p.namespace, p.name]
                     for p in pods]}])
        data = checked_head(payload) + payload
        with self._lock:
            if self._fd >= 0:
                self._emit(data, 0)
            self._local = data   # every rotated part starts with it

    def write_clock(self, wall_ns: int) -> None:
        """Where, in the stream, the live diagnosis judged by the wall clock (nothing
        else happened): a replay judges there too (tracer/diagnosis/engine.py)."""
        self._write_one([int(Rec.CLOCK), wall_ns])

    def write_node_state(self, state: NodeState) -> None:
        self._write_one([int(Rec.NODE_STATE), state.wall_ns, dict(state.items)])

    def _write_one(self, rec: list[Any]) -> None:
        with self._lock:
            if self._fd < 0:
                return
            self._enc.record(rec)
            self._emit(self._enc.take(), 0)

    def finish(self, info: EndInfo) -> None:
        """The end record with the final loss ledger, then close."""
        for t in self._snapshots:
            t.join(SNAPSHOT_WAIT_S)   # bounded: a hung iptables-save must not hold exit
        with self._lock:
            if self._fd < 0:
                return
            self._enc.record(self._end_record(info))
            try:
                self._flush(self._enc.take())
                os.fsync(self._fd)
            finally:
                self._close_fd()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close without a session's counters (the session did not get to finish)."""
        self.finish(EndInfo("closed"))
