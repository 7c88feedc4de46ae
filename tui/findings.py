"""Findings as the TUI shows them.

Findings are made by the diagnosis stage (tracer/diagnosis) and arrive in the stream as records
of kind "finding".  The record shape assumed here is:

    {"kind": "finding", "finding": "masquerade-missing", "severity": "error",
     "summary": "...", "objects": [{"kind": "Pod", "namespace": "default", "name": "client"}],
     "evidence": [...], "fix": "...", "first_seen": RFC 3339, "count": 3}

`parse_finding` is the one place that reads it: adapt it, and only it, when the
diagnosis stage's records are final.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tui.feed import Record
from tui.filtering import Subject
from tui.records import time_ns

SEVERITY_ORDER = {"critical": 0, "error": 1, "warning": 2, "info": 3}


@dataclass(frozen=True)
class K8sObject:
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        ns = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {ns}{self.name}"


@dataclass(frozen=True)
class Finding:
    kind: str                  # the diagnosis rule's name ("masquerade-missing")
    severity: str
    summary: str
    objects: tuple[K8sObject, ...]
    evidence: tuple[str, ...]
    fix: str
    first_seen_ns: int
    last_seen_ns: int
    count: int

    @property
    def key(self) -> str:
        """One row per rule and set of objects: a later record updates it."""
        return self.kind + "|" + ",".join(sorted(map(str, self.objects)))

    def subject(self) -> Subject:
        s = Subject(text=f"{self.kind} {self.summary} {' '.join(map(str, self.objects))}"
                    .lower())
        s.add("kind", "finding")
        s.add("reason", self.kind)
        for o in self.objects:
            if o.kind.lower() == "pod":
                s.add("pod", o.name)
                s.add("pod", f"{o.namespace}/{o.name}")
            if o.kind.lower() == "service":
                s.add("svc", o.name)
            s.add("ns", o.namespace)
        return s


def _evidence_line(item: Any) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, dict) and isinstance(item.get("summary"), str):
        return str(item["summary"])
    return json.dumps(item, separators=(", ", ": "), default=str)


def parse_finding(rec: Record) -> Finding | None:
    """A finding record -> Finding; None if it is not one, or not readable."""
    if rec.get("kind") != "finding":
        return None
    objects = []
    for o in rec.get("objects") or ():
        if isinstance(o, dict) and o.get("name"):
            objects.append(K8sObject(str(o.get("kind") or "?"), str(o.get("namespace") or ""),
                                     str(o["name"])))
    evidence = rec.get("evidence") or ()
    first = time_ns(rec.get("first_seen")) or time_ns(rec.get("time"))
    count = rec.get("count")
    return Finding(
        kind=str(rec.get("finding") or "?"),
        severity=str(rec.get("severity") or "warning").lower(),
        summary=str(rec.get("summary") or ""),
        objects=tuple(objects),
        evidence=tuple(_evidence_line(e) for e in
                       (evidence if isinstance(evidence, list) else [evidence])),
        fix=str(rec.get("fix") or ""),
        first_seen_ns=first,
        last_seen_ns=time_ns(rec.get("time")) or first,
        count=count if isinstance(count, int) else 1)
