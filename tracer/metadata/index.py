"""One index of what the metadata providers know, fed by all of them.

Writers (the provider threads, or a replay) call `apply` / `replace`; the enrich stage
calls `resolver()` once per batch and does dictionary lookups on what it gets.  The
resolver is rebuilt from the objects when something changed, at most every
`rebuild_interval_s`, so churn costs a rebuild per interval, not one per change.

Deleted objects stay resolvable for `grace_s` (events about a pod arrive after it is
gone).  Every change is also given to the observers, as (kind, action, obj, at): the
slim object's JSON and the wall time, for a recording; `apply` is how a replay feeds
the same changes back in.
"""

from __future__ import annotations

import functools
import gc
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from tracer.metadata.objects import KINDS, SLIM, key_of
from tracer.metadata.resolver import Listener, LocalPodInfo, Resolver, build
from tracer.metadata.selectors import FieldSelector, LabelSelector

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Key = tuple[str, str]
Observer = Callable[[str, str, Obj, float], None]
# (listeners, local pods, at): what the node itself knows, as the index holds it
LocalObserver = Callable[[tuple[Listener, ...], tuple[LocalPodInfo, ...], float], None]
ACTIONS = ("added", "updated", "deleted")
DEFAULT_GRACE_S = 120.0


class MetadataIndex:
    def __init__(self, *, grace_s: float = DEFAULT_GRACE_S, rebuild_interval_s: float = 0.2,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.grace_s = grace_s
        self.rebuild_interval_s = rebuild_interval_s
        self.clock = clock
        self.local_node: str | None = None
        self.local_addresses: frozenset[str] = frozenset()  # this node's, as it sees them
        self._lock = threading.Lock()
        self._live: dict[str, dict[Key, Obj]] = {k: {} for k in KINDS}
        self._source: dict[tuple[str, Key], str] = {}
        self._deleted: dict[str, dict[Key, tuple[Obj, float]]] = {k: {} for k in KINDS}
        # the earliest a deleted object's grace ends (or earlier): `resolver()` is
        # asked per batch and per diagnosis look-up, and must not walk the deleted
        self._next_expiry = float("inf")
        self._listeners: tuple[Listener, ...] = ()
        self._local: tuple[LocalPodInfo, ...] = ()
        self._observers: list[Observer] = []
        self._local_observers: list[LocalObserver] = []
        self._generation = 0
        self._built_generation = -1
        self._built_at = float("-inf")
        self._resolver = Resolver()
        self._changed = threading.Condition(self._lock)
        self.synced: set[str] = set()   # providers that have delivered a full state
        self._builder: threading.Thread | None = None
        self._build_s = 0.0
        self._closing = threading.Event()

    # --- observers (recording) ------------------------------------------------------
    def add_observer(self, fn: Observer) -> None:
        """fn(kind, action, obj, at) for every change from now on; `obj` is the slim
        object's JSON (docs/events.md), `at` wall-clock seconds.  Called on the
        thread that made the change: keep it short."""
        self._observers = [*self._observers, fn]   # copied: _notify may be iterating

    def remove_observer(self, fn: Observer) -> None:
        """No more changes to fn (a recording stopped while the session goes on)."""
        self._observers = [o for o in self._observers if o != fn]

    def add_local_observer(self, fn: LocalObserver) -> None:
        """fn(listeners, local pods, at) whenever either changes (a recording: names
        by socket owner and by cgroup are the index's too, so replay needs them)."""
        self._local_observers = [*self._local_observers, fn]

    def remove_local_observer(self, fn: LocalObserver) -> None:
        self._local_observers = [o for o in self._local_observers if o != fn]

    def local_state(self) -> tuple[tuple[Listener, ...], tuple[LocalPodInfo, ...]]:
        with self._lock:
            return self._listeners, self._local

    def _notify_local(self) -> None:
        listeners, pods = self.local_state()
        at = time.time()
        for fn in self._local_observers:
            try:
                fn(listeners, pods, at)
            except Exception:  # an observer must not stop the metadata thread
                log.exception("metadata observer %r failed", fn)

    def _notify(self, kind: str, action: str, obj: Obj, at: float) -> None:
        for fn in self._observers:
            try:
                fn(kind, action, obj, at)
            except Exception:  # an observer must not stop the metadata thread
                log.exception("metadata observer %r failed", fn)

    # --- writes ---------------------------------------------------------------------
    def apply(self, kind: str, action: str, obj: Obj, at: float | None = None, *,
              source: str = "replay") -> bool:
        """One change.  Returns whether it changed anything."""
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; expected one of {ACTIONS}")
        slim = SLIM[kind](obj)
        at = time.time() if at is None else at
        with self._lock:
            changed = self._apply_locked(kind, action, slim, source)
        if changed:
            self._notify(kind, action, slim, at)
        return changed

    feed = apply  # a replay feeds recorded changes back in

    def _apply_locked(self, kind: str, action: str, slim: Obj, source: str) -> bool:
        key = key_of(slim)
        live = self._live[kind]
        if action == "deleted":
            old = live.pop(key, None)
            self._source.pop((kind, key), None)
            if old is None:
                return False
            expiry = self.clock() + self.grace_s
            self._deleted[kind][key] = (old, expiry)
            self._next_expiry = min(self._next_expiry, expiry)
        else:
            if live.get(key) == slim:
                return False
            live[key] = slim
            self._source[(kind, key)] = source
            self._deleted[kind].pop(key, None)
        self._generation += 1
        self._changed.notify_all()
        return True

    def replace(self, kind: str, objs: Iterable[Obj], *, source: str,
                at: float | None = None) -> int:
        """The full current state of `kind` from one provider (a list, a relist, a
        file): objects it no longer has are deleted, changed ones updated.  Returns
        the number of changes."""
        at = time.time() if at is None else at
        slims = {key_of(s): s for s in (SLIM[kind](o) for o in objs)}
        changes: list[tuple[str, Obj]] = []
        with self._lock:
            live = self._live[kind]
            for key in [k for k in live if self._source.get((kind, k)) == source
                        and k not in slims]:
                old = live[key]
                if self._apply_locked(kind, "deleted", old, source):
                    changes.append(("deleted", old))
            for key, slim in slims.items():
                action = "updated" if key in live else "added"
                if self._apply_locked(kind, action, slim, source):
                    changes.append((action, slim))
        for action, slim in changes:
            self._notify(kind, action, slim, at)
        return len(changes)

    def set_listeners(self, listeners: Iterable[Listener]) -> None:
        new = tuple(sorted(set(listeners), key=lambda ln: (ln.port, ln.ip, ln.pod_uid)))
        with self._lock:
            if new == self._listeners:
                return
            self._listeners = new
            self._generation += 1
            self._changed.notify_all()
        self._notify_local()

    def set_local_pods(self, pods: Iterable[Any]) -> None:
        """Pods the node knows by itself (tracer/metadata/local.py): named from the API
        or a file when those know them, by what the node knows otherwise."""
        new = tuple(sorted(LocalPodInfo(p.uid, p.host_network, tuple(p.ips), p.namespace,
                                        p.name) for p in pods))
        with self._lock:
            if new == self._local:
                return
            self._local = new
            self._generation += 1
            self._changed.notify_all()
        self._notify_local()

    # --- reads ----------------------------------------------------------------------
    @property
    def generation(self) -> int:
        return self._generation

    def wait_changed(self, after: int, timeout_s: float) -> int:
        with self._changed:
            self._changed.wait_for(lambda: self._generation != after
                                   or self._closing.is_set(), timeout=timeout_s)
            return self._generation

    # --- the read side, built off the event path ------------------------------------
    def start_builder(self) -> MetadataIndex:
        """Rebuild the resolver on a thread of its own from now on: with 10 k pods a
        build takes about a second, which the event path must never wait for.  Without
        it (tests, a replay feeding changes itself), `resolver()` builds when stale."""
        if self._builder is None:
            self._rebuild(self.clock())
            self._builder = threading.Thread(target=self._build_loop, daemon=True,
                                             name="metadata-index")
            self._builder.start()
        return self

    def _build_loop(self) -> None:
        while not self._closing.is_set():
            self.wait_changed(self._built_generation, timeout_s=1.0)
            if self._closing.is_set():
                break
            # a build holds the GIL (~0.1 s with 10 k pods): under churn, spend at most
            # a tenth of the time building
            pace = max(self.rebuild_interval_s, 10 * self._build_s)
            wait = self._built_at + pace - self.clock()
            if wait > 0 and self._closing.wait(wait):
                break
            now = self.clock()
            if self._generation != self._built_generation or self._expired(now):
                try:
                    self._rebuild(now)
                except Exception:  # keep serving the last resolver
                    log.exception("rebuilding the metadata index failed")

    def close(self) -> None:
        self._closing.set()
        with self._changed:
            self._changed.notify_all()
        if self._builder is not None:
            self._builder.join(3)

    def resolver(self) -> Resolver:
        """The current read side (cheap to call per batch)."""
        if self._builder is not None:
            return self._resolver
        now = self.clock()
        if ((self._generation != self._built_generation or self._expired(now))
                and now - self._built_at >= self.rebuild_interval_s):
            self._rebuild(now)
        return self._resolver

    def rebuild(self) -> Resolver:
        """Build the read side now, whatever the pace (tests, benchmarks)."""
        self._rebuild(self.clock())
        return self._resolver

    def _expired(self, now: float) -> bool:
        return self._next_expiry <= now

    def _rebuild(self, now: float) -> None:
        with self._lock:
            for objs in self._deleted.values():
                for key in [k for k, (_o, exp) in objs.items() if exp <= now]:
                    del objs[key]
            self._next_expiry = min((exp for objs in self._deleted.values()
                                     for _o, exp in objs.values()), default=float("inf"))

            def ordered(kind: str) -> list[Obj]:
                return ([o for o, _exp in self._deleted[kind].values()]
                        + list(self._live[kind].values()))

            pods, svcs = ordered("Pod"), ordered("Service")
            slices, nodes = ordered("EndpointSlice"), ordered("Node")
            listeners, local = self._listeners, self._local
            generation = self._generation
        # a build allocates ~50 k small objects beside ~100 k held ones: without this,
        # the collector walks everything held several times per build (2/3 of its time)
        started = time.perf_counter()
        gc_was = gc.isenabled()
        gc.disable()
        try:
            self._resolver = build(pods, svcs, slices, nodes, listeners, self.local_node,
                                   local, self.local_addresses)
        finally:
            if gc_was:
                gc.enable()
        self._build_s = time.perf_counter() - started
        self._built_generation = generation
        self._built_at = now

    def objects(self, kind: str) -> list[Obj]:
        with self._lock:
            return list(self._live[kind].values())

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {k: len(v) for k, v in self._live.items()}

    def select_pods(self, *, labels: LabelSelector | None = None,
                    fields: FieldSelector | None = None, namespace: str | None = None,
                    name: str | None = None, node: str | None = None) -> list[Obj]:
        """Live pods matching, as `kubectl get pods` would list them."""
        out = []
        for pod in self.objects("Pod"):
            m = pod["metadata"]
            if namespace is not None and m.get("namespace") != namespace:
                continue
            if name is not None and m.get("name") != name:
                continue
            if node is not None and pod["spec"].get("nodeName") != node:
                continue
            if labels is not None and not labels.matches(m.get("labels") or {}):
                continue
            if fields is not None and not fields.matches(functools.partial(pod_field, pod)):
                continue
            out.append(pod)
        return out


POD_FIELDS = ("metadata.name", "metadata.namespace", "spec.nodeName", "spec.hostNetwork",
              "status.phase", "status.podIP")


def pod_field(pod: Obj, path: str) -> str:
    """The value of a field-selector path on a slim pod."""
    m, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    values = {"metadata.name": m.get("name"), "metadata.namespace": m.get("namespace"),
              "spec.nodeName": spec.get("nodeName"),
              "spec.hostNetwork": "true" if spec.get("hostNetwork") else "false",
              "status.phase": status.get("phase"), "status.podIP": status.get("podIP")}
    return str(values.get(path) or "")
