"""Findings as the TUI shows them: the diagnosis' own `Finding`
(tracer/events/finding.py), read back from the finding records of the stream
(`finding_record`'s shape, docs/findings.md).  `parse_finding` is the one place that
reads them.
"""

from __future__ import annotations

import json
from typing import Any

from tracer.diagnosis.names import ObjRef
from tracer.events.affected import Tally, parse_tally
from tracer.events.finding import Finding
from tui.feed import Record
from tui.filtering import Subject
from tui.records import clock, time_ns

SEVERITY_ORDER = {"critical": 0, "error": 1, "warning": 2, "info": 3}


def finding_key(kind: str, objects: list[ObjRef]) -> str:
    """One row per rule and set of objects: a later record updates it."""
    return kind + "|" + ",".join(sorted(f"{o.kind} {o.namespace or ''}/{o.name}"
                                        for o in objects))


def parse_finding(rec: Record) -> Finding | None:
    """A finding record -> Finding; None if it is not one.  Hostile input: fields of
    the wrong type are read as absent, never raised."""
    if rec.get("kind") != "finding":
        return None
    objects = []
    for o in rec.get("objects") or ():
        if isinstance(o, dict) and o.get("name"):
            objects.append(ObjRef(str(o.get("kind") or "?"),
                                  str(o["namespace"]) if o.get("namespace") else None,
                                  str(o["name"])))
    evidence = rec.get("evidence") or []
    first = time_ns(rec.get("first_seen")) or time_ns(rec.get("time"))
    count = rec.get("count")
    kind = str(rec.get("finding") or "?")
    ambiguity = rec.get("ambiguity")
    rid = rec.get("id")
    last = time_ns(rec.get("last_seen"))
    return Finding(
        kind=kind, severity=str(rec.get("severity") or "warning").lower(),
        summary=str(rec.get("summary") or ""), objects=objects,
        evidence=[e if isinstance(e, dict) else {"text": str(e)} for e in
                  (evidence if isinstance(evidence, list) else [evidence])],
        fix=str(rec.get("fix") or ""),
        # an id names the cause (updates refer to it); older records have none
        key=f"id|{rid}" if isinstance(rid, str) and rid else finding_key(kind, objects),
        first_seen_ns=first, count=count if isinstance(count, int) else 1,
        ambiguity=ambiguity if isinstance(ambiguity, str) else None,
        last_seen_ns=last or first, affected=parse_tally(rec.get("affected")) or Tally(),
        id=rid if isinstance(rid, str) else "")


def apply_update(findings: dict[str, Finding], rec: Record) -> bool:
    """A finding-update record folded into the finding it names; False when that
    finding is not known (its record was not seen)."""
    rid = rec.get("id")
    f = findings.get(f"id|{rid}") if isinstance(rid, str) else None
    count = rec.get("count")
    if f is None or not isinstance(count, int):
        return False
    f.count = count
    f.last_seen_ns = time_ns(rec.get("last_seen")) or f.last_seen_ns
    f.affected = parse_tally(rec.get("affected")) or f.affected
    return True


def object_text(o: ObjRef) -> str:
    return f"{o.kind} {o.namespace}/{o.name}" if o.namespace else f"{o.kind} {o.name}"


def evidence_line(item: dict[str, Any]) -> str:
    """One evidence record, as a line of the finding's detail."""
    if isinstance(item.get("text"), str) and len(item) == 1:
        return str(item["text"])
    if item.get("kind") == "connection":
        return (f"connection {item.get('proto')} {item.get('src')} -> {item.get('dst')}: "
                f"{item.get('stopped')}" + (f" (path {', '.join(item['path'])})"
                                            if item.get("path") else ""))
    if item.get("kind") == "flow" and isinstance(item.get("src"), str):
        marks = item.get("marks") or ()
        return (f"flow at {item.get('ifname')} {item.get('direction')}: {item.get('src')} -> "
                f"{item.get('dst')} {item.get('packets')} pkts "
                f"[{','.join(map(str, item.get('tcp_flags') or ()))}]"
                + (f" marks: {', '.join(map(str, marks))}" if marks else ""))
    if item.get("kind") == "tcp" and isinstance(item.get("src"), dict):
        src, dst = item["src"], item.get("dst") or {}
        what = " ".join(str(w) for w in (item.get("event"), item.get("error")) if w)
        return (f"socket {what} {src.get('ip')}:{src.get('port')} -> "
                f"{dst.get('ip')}:{dst.get('port')} at {clock(time_ns(item.get('time')))}")
    return json.dumps(item, separators=(", ", ": "), default=str)


def finding_subject(f: Finding) -> Subject:
    objects = " ".join(object_text(o) for o in f.objects)
    s = Subject(text=f"{f.kind} {f.summary} {objects}".lower())
    s.add("kind", "finding")
    s.add("reason", f.kind)
    for o in f.objects:
        if o.kind.lower() == "pod":
            s.add("pod", o.name)
            s.add("pod", f"{o.namespace}/{o.name}")
        if o.kind.lower() == "service":
            s.add("svc", o.name)
        s.add("ns", o.namespace)
    return s
