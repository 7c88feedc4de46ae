"""`-l`, `-n`, `--pod`, `--field-selector`: trace only some pods of this node.

The selected pods are looked up in the metadata index (kubectl semantics: a namespace
unless -A), found on the node by their uid (the cgroups kubelet names, then their
network namespace), and their host-side veths located; the session attaches tc
there and only there, scopes the kernel programs to their namespaces (and the node's,
where their drops and NAT happen) and filters what remains in user space
(tracer/pipeline/enrich.py PodFilter).  Pods that start matching are picked up at the
next refresh (every 0.25 s), pods that go away are detached.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from tracer.metadata.local import LocalPod, pod_veths, scan_pods
from tracer.metadata.selectors import FieldSelector, LabelSelector
from tracer.metadata.setup import Metadata
from tracer.node.interfaces import Iface

log = logging.getLogger(__name__)

RESCAN_S = 0.25       # a selected pod not found on the node yet: look again this often
FULL_RESYNC_S = 2.0
EAGER_S = 10.0        # ... for this long after it was selected (then every FULL_RESYNC_S:
                      # a pod with no veth, e.g. another CNI's interface, must not cost a
                      # /proc walk four times a second forever)


@dataclass(frozen=True)
class Selection:
    labels: LabelSelector | None = None
    fields: FieldSelector | None = None
    namespace: str | None = "default"   # None: every namespace (-A)
    pod: str | None = None

    def describe(self) -> str:
        parts = []
        if self.labels is not None:
            parts.append(f"-l {self.labels}")
        if self.fields is not None:
            parts.append(f"--field-selector {self.fields}")
        if self.pod is not None:
            parts.append(f"pod {self.pod}")
        parts.append(f"namespace {self.namespace}" if self.namespace else "all namespaces")
        return ", ".join(parts)


@dataclass(frozen=True)
class Selected:
    uid: str
    namespace: str
    name: str
    host_network: bool
    netns: int | None = None
    veths: tuple[Iface, ...] = ()


class PodSelection:
    """Follows the selected pods of this node."""

    def __init__(self, selection: Selection, meta: Metadata) -> None:
        self.selection = selection
        self.meta = meta
        self.pods: dict[str, Selected] = {}
        self._local: dict[str, LocalPod] = {}
        self._scanned = float("-inf")
        self._synced = float("-inf")
        self._generation = -1
        self._said_empty = False
        self.uids: frozenset[str] = frozenset()
        self.inodes: frozenset[int] = frozenset()
        self.ifindexes: frozenset[int] = frozenset()
        self._first_seen: dict[str, float] = {}
        self._said_no_node = False

    def current(self) -> tuple[frozenset[str], frozenset[int], frozenset[int]]:
        """(pod uids, their namespace inodes, their veths' ifindexes)"""
        return self.uids, self.inodes, self.ifindexes

    def refresh(self, force: bool = False) -> bool:
        """Re-reads the selection when the index changed or a selected pod is not yet
        on the node.  Returns whether the set of veths may have changed."""
        now = time.monotonic()
        gen = self.meta.index.generation
        incomplete = any(not p.host_network and not p.veths
                         and now - self._first_seen.get(uid, now) < EAGER_S
                         for uid, p in self.pods.items())
        if not (force or gen != self._generation or now - self._synced >= FULL_RESYNC_S
                or (incomplete and now - self._scanned >= RESCAN_S)):
            return False
        self._generation, self._synced = gen, now
        sel = self.selection
        matching = self.meta.index.select_pods(
            labels=sel.labels, fields=sel.fields, namespace=sel.namespace, name=sel.pod,
            node=self.meta.index.local_node)
        wanted = {p["metadata"]["uid"]: p for p in matching if p["metadata"].get("uid")}
        for uid in wanted:
            self._first_seen.setdefault(uid, now)
        for uid in [u for u in self._first_seen if u not in wanted]:
            del self._first_seen[uid]
        eager = any(uid not in self._local and now - self._first_seen[uid] < EAGER_S
                    for uid in wanted)
        if (eager and now - self._scanned >= RESCAN_S) or now - self._scanned >= FULL_RESYNC_S:
            self._local = {lp.uid: lp for lp in scan_pods(self.meta.node_netns)}
            self._scanned = now
        if self.meta.index.local_node is None:
            # this node's name is unknown: the pods found on it are the candidates
            if not self._said_no_node:
                log.warning("this node's name is unknown (no Node holds its addresses or "
                            "hostname; --node NAME): selecting among the pods found here")
                self._said_no_node = True
            wanted = {u: p for u, p in wanted.items() if u in self._local}
        local = [self._local[u] for u in wanted if u in self._local]
        veths = pod_veths(local)
        pods: dict[str, Selected] = {}
        for uid, obj in wanted.items():
            lp = self._local.get(uid)
            m = obj["metadata"]
            pods[uid] = Selected(uid, m.get("namespace", ""), m["name"],
                                 bool(obj["spec"].get("hostNetwork")),
                                 lp.netns if lp is not None else None,
                                 tuple(veths.get(uid, ())))
        self._report(pods)
        self.pods = pods
        self.uids = frozenset(pods)
        self.inodes = frozenset(p.netns for p in pods.values()
                                if p.netns is not None and not p.host_network)
        self.ifindexes = frozenset(v.ifindex for p in pods.values() for v in p.veths)
        return True

    def _report(self, pods: dict[str, Selected]) -> None:
        for uid, p in pods.items():
            old = self.pods.get(uid)
            if p.veths and (old is None or not old.veths):
                log.info("selected pod %s/%s: %s", p.namespace, p.name,
                         ", ".join(v.name for v in p.veths))
            elif p.host_network and old is None:
                log.info("selected pod %s/%s (hostNetwork: by cgroup and socket owner)",
                         p.namespace, p.name)
        for uid, p in self.pods.items():
            if uid not in pods:
                log.info("pod %s/%s no longer selected (deleted or relabelled)",
                         p.namespace, p.name)
        if not pods and not self._said_empty:
            log.warning("no pod on node %s matches (%s); waiting for one",
                        self.meta.index.local_node or "?", self.selection.describe())
        self._said_empty = not pods

    def ifaces(self) -> list[Iface]:
        return [v for p in self.pods.values() for v in p.veths]
