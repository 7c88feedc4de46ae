"""ObjectStore: Kubernetes objects as plain dicts, a global resourceVersion and a
bounded event history that watches replay from."""

from __future__ import annotations

import copy
import threading
import uuid
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice

from tracer.lab.apiserver.query import Query
from tracer.lab.apiserver.resources import (
    BY_KIND,
    InvalidObjectError,
    Obj,
    check_client_shape,
    resource_of,
)
from tracer.metadata.selectors import FieldSelector, LabelSelector
from tracer.util.errors import TracerError

Key = tuple[str, str, str]  # kind, namespace ("" when cluster-scoped), name


class ResourceExpiredError(TracerError):
    """A watch asked for history the store no longer holds (HTTP 410 Gone)."""

    def __init__(self, requested: int, oldest_available: int):
        super().__init__(f"too old resource version: {requested} ({oldest_available})")
        self.requested = requested
        self.oldest_available = oldest_available


@dataclass(frozen=True)
class StoreEvent:
    resource_version: int
    type: str  # ADDED, MODIFIED or DELETED
    object: Obj  # for DELETED: the last state, carrying the deletion's resourceVersion
    previous: Obj | None  # the state before, so watches can tell "stopped matching"


@dataclass(frozen=True)
class SyncResult:
    added: int
    modified: int
    deleted: int


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _key(obj: Obj) -> Key:
    meta = obj["metadata"]
    return obj["kind"], meta.get("namespace", ""), meta["name"]


def _without_version(obj: Obj) -> Obj:
    stripped = dict(obj)
    stripped["metadata"] = {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"}
    return stripped


def normalize(obj: Obj) -> Obj:
    """A deep copy with apiVersion filled in and the namespace set as the API server
    would (defaulted for namespaced kinds, dropped for cluster-scoped ones)."""
    if not isinstance(obj, dict):
        raise InvalidObjectError(f"an object must be a JSON object, not {type(obj).__name__}")
    resource = resource_of(obj)
    new = copy.deepcopy(obj)
    new["apiVersion"] = resource.api_version
    meta = new.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
        raise InvalidObjectError(f"{resource.kind} without metadata.name")
    labels = meta.get("labels")
    if labels is not None and not (isinstance(labels, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items())):
        raise InvalidObjectError(f"{resource.kind} {meta['name']}: metadata.labels must map "
                                 "strings to strings")
    if resource.namespaced:
        meta["namespace"] = meta.get("namespace") or "default"
    else:
        meta.pop("namespace", None)
    check_client_shape(resource, new)
    return new


class ObjectStore:
    """Thread-safe.  Every change bumps the resourceVersion by one and records one
    event, so the history is contiguous and a gap can only mean "expired"."""

    def __init__(self, history: int = 1000) -> None:
        self._cond = threading.Condition()
        self._objects: dict[Key, Obj] = {}
        self._rv = 0
        self._events: deque[StoreEvent] = deque(maxlen=history)
        self._tally: Counter[str] | None = None  # counts events during sync()

    @property
    def resource_version(self) -> str:
        with self._cond:
            return str(self._rv)

    def apply(self, obj: Obj) -> Obj:
        """Create or update; an update that changes nothing does not bump the version.
        A different metadata.uid under the same name is a re-creation: DELETED, ADDED."""
        new = normalize(obj)
        meta = new["metadata"]
        key = _key(new)
        with self._cond:
            old = self._objects.get(key)
            if old is not None and meta.get("uid", old["metadata"]["uid"]) != \
                    old["metadata"]["uid"]:
                self._delete_locked(key)
                old = None
            if old is not None:
                meta["uid"] = old["metadata"]["uid"]
                meta.setdefault("creationTimestamp", old["metadata"]["creationTimestamp"])
                if _without_version(old) == _without_version(new):
                    return copy.deepcopy(old)
            else:
                meta.setdefault("uid", str(uuid.uuid4()))
                meta.setdefault("creationTimestamp", _now())
            self._rv += 1
            meta["resourceVersion"] = str(self._rv)
            self._objects[key] = new
            self._record(StoreEvent(self._rv, "ADDED" if old is None else "MODIFIED", new, old))
            return copy.deepcopy(new)

    def delete(self, kind: str, namespace: str | None, name: str) -> Obj | None:
        """The deleted object (with the deletion's resourceVersion), or None if absent."""
        resource = BY_KIND.get(kind)
        if resource is None:
            return None
        key = (kind, (namespace or "default") if resource.namespaced else "", name)
        with self._cond:
            if key not in self._objects:
                return None
            return copy.deepcopy(self._delete_locked(key))

    def _delete_locked(self, key: Key) -> Obj:
        old = self._objects.pop(key)
        self._rv += 1
        gone = copy.deepcopy(old)
        gone["metadata"]["resourceVersion"] = str(self._rv)
        self._record(StoreEvent(self._rv, "DELETED", gone, old))
        return gone

    def _record(self, event: StoreEvent) -> None:
        self._events.append(event)
        if self._tally is not None:
            self._tally[event.type] += 1
        self._cond.notify_all()

    def get(self, kind: str, namespace: str | None, name: str) -> Obj | None:
        resource = BY_KIND.get(kind)
        if resource is None:
            return None
        key = (kind, (namespace or "default") if resource.namespaced else "", name)
        with self._cond:
            found = self._objects.get(key)
            return copy.deepcopy(found) if found is not None else None

    def snapshot(self, query: Query) -> tuple[list[Obj], int]:
        """Matching objects and the resourceVersion they are consistent with."""
        with self._cond:
            found = [copy.deepcopy(o) for k, o in sorted(self._objects.items())
                     if k[0] == query.resource.kind and query.matches(o)]
            return found, self._rv

    def objects(self) -> list[Obj]:
        with self._cond:
            return [copy.deepcopy(o) for _, o in sorted(self._objects.items())]

    def sync(self, objects: Iterable[Obj]) -> SyncResult:
        """Make the store hold exactly `objects`: apply each, delete the rest.  All or
        nothing: every object is checked before anything changes."""
        wanted = {_key(n): n for n in (normalize(o) for o in objects)}
        with self._cond:
            self._tally = Counter()
            try:
                for key in sorted(set(self._objects) - set(wanted)):
                    self._delete_locked(key)
                for obj in (wanted[k] for k in sorted(wanted)):
                    self.apply(obj)
                tally = self._tally
            finally:
                self._tally = None
        return SyncResult(tally["ADDED"], tally["MODIFIED"], tally["DELETED"])

    def events_after(self, resource_version: int) -> list[StoreEvent]:
        """Events newer than `resource_version`; ResourceExpiredError when some of
        them have already left the bounded history."""
        with self._cond:
            if resource_version >= self._rv:
                return []
            oldest = self._events[0].resource_version if self._events else self._rv + 1
            if resource_version + 1 < oldest:
                raise ResourceExpiredError(resource_version, oldest - 1)
            return list(islice(self._events, resource_version + 1 - oldest, None))

    def wait_for_change(self, after: int, timeout: float) -> int:
        """Block until the resourceVersion passes `after`, `wake()` or the timeout;
        returns the current resourceVersion."""
        with self._cond:
            if self._rv <= after:
                self._cond.wait(timeout)
            return self._rv

    def wake(self) -> None:
        """Wake every waiter, so a stopping server's watches notice promptly."""
        with self._cond:
            self._cond.notify_all()

    def list(self, kind: str, namespace: str | None = None,
             label_selector: str | LabelSelector | None = None,
             field_selector: str | FieldSelector | None = None) -> list[Obj]:
        """Matching objects sorted by namespace and name; raises SelectorError.
        Defined last: inside the class body the name shadows the builtin `list`."""
        query = Query.build(BY_KIND[kind], namespace, label_selector, field_selector)
        return self.snapshot(query)[0]
