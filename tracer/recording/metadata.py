"""Metadata changes in a recording: the one seam between recordings and the metadata
providers (Kubernetes list+watch, files, local).

Live, whatever learns that an object was added, updated or deleted calls
`on_change(kind, action, obj, at)` on a MetadataRecorder — the RecordingWriter is one,
the metadata index can be another, `fan_out` feeds several.  On replay, the
ReplaySource calls the same method on the index, in stream order (after the events
recorded before the change, before the events after it), so enrichment runs with the
objects as they were at each event.  docs/recording-format.md describes the record.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

ACTIONS = ("added", "updated", "deleted")


class MetadataRecorder(Protocol):
    def on_change(self, kind: str, action: str, obj: Mapping[str, Any], at: float) -> None:
        """`kind`: the object's kind ("Pod", "Service", "EndpointSlice", "Node", ...);
        `action`: one of ACTIONS; `obj`: the object's JSON form (what
        `kubectl get -o json` prints, i.e. ApiClient.sanitize_for_serialization, not
        the client's model objects); `at`: when it changed, wall-clock seconds
        (time.time()).  Must be cheap and must not block: it runs on a watch thread."""
        ...


@dataclass(frozen=True)
class MetadataRecord:
    """One change as a recording holds it."""

    kind: str
    action: str
    obj: Mapping[str, Any]
    wall_ns: int

    @property
    def at(self) -> float:
        return self.wall_ns / 1e9

    def deliver(self, to: MetadataRecorder) -> None:
        to.on_change(self.kind, self.action, self.obj, self.at)


def object_key(kind: str, obj: Mapping[str, Any]) -> tuple[str, str]:
    """Identity of an object across its changes: the uid, else namespace/name."""
    meta = obj.get("metadata")
    if isinstance(meta, Mapping):
        uid = meta.get("uid")
        if isinstance(uid, str) and uid:
            return kind, uid
        return kind, f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"
    return kind, ""


def json_default(value: object) -> object:
    """msgpack's fallback for metadata objects: the client's datetimes as RFC 3339
    strings (what the API server sends); anything else is a caller's mistake."""
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.UTC).replace(tzinfo=None)
        return value.isoformat() + "Z"
    if isinstance(value, datetime.date):
        return value.isoformat()
    raise TypeError(f"a metadata object holds a {type(value).__name__}; pass its JSON form")


@dataclass
class MetadataLog:
    """A MetadataRecorder that keeps the changes in memory (tests, `load`)."""

    changes: list[MetadataRecord] = field(default_factory=list)

    def on_change(self, kind: str, action: str, obj: Mapping[str, Any], at: float) -> None:
        self.changes.append(MetadataRecord(kind, action, obj, int(at * 1e9)))


class FanOut:
    """One MetadataRecorder that calls several (the index and the recording)."""

    def __init__(self, *recorders: MetadataRecorder) -> None:
        self.recorders = recorders

    def on_change(self, kind: str, action: str, obj: Mapping[str, Any], at: float) -> None:
        for r in self.recorders:
            r.on_change(kind, action, obj, at)


def fan_out(*recorders: MetadataRecorder | None) -> MetadataRecorder:
    return FanOut(*(r for r in recorders if r is not None))
