"""A finding: a named root cause, the objects it concerns, the evidence it rests on,
and what to change.  `kind` values are the JSON contract (docs/findings.md)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from tracer.events.affected import Tally
from tracer.events.objref import ObjRef
from tracer.util.timefmt import rfc3339_ns

KINDS = ("masquerade-missing", "ip-forward-disabled", "no-route", "hostport-conflict",
         "externalip-untranslated", "service-no-endpoints", "dns-unreachable",
         "pod-network-unreachable", "nexthop-unreachable", "netfilter-drop",
         "connection-refused", "rp-filter-drop")
SEVERITIES = ("error", "warning")

@dataclass
class Finding:
    kind: str                        # one of KINDS
    severity: str
    summary: str                     # one sentence naming the Kubernetes objects
    objects: list[ObjRef]
    evidence: list[dict[str, Any]]   # records with their `kind` and key fields
    fix: str
    key: str                         # the cause: what one fix changes (docs/findings.md)
    first_seen_ns: int = 0
    count: int = 1                   # connections (or binds) it explains
    ambiguity: str | None = None     # what would disambiguate, when the evidence cannot
    last_seen_ns: int = 0            # the newest connection it explains (0: first_seen)
    affected: Tally = field(default_factory=Tally)   # who those connections came from
    id: str = ""                     # stable across runs and replays: the cause's digest

    def __post_init__(self) -> None:
        if not self.id:
            self.id = finding_id(self.key)

    @property
    def wall_ns(self) -> int:        # sinks order and stamp records by wall time
        return self.first_seen_ns

    def record(self) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "id": self.id, "kind": self.kind, "severity": self.severity,
            "summary": self.summary,
            "objects": [o.record() for o in dict.fromkeys(self.objects)],
            "evidence": self.evidence, "fix": self.fix,
            "first_seen": rfc3339_ns(self.first_seen_ns),
            "last_seen": rfc3339_ns(self.last_seen_ns or self.first_seen_ns),
            "count": self.count}
        if self.affected.total:
            rec["affected"] = self.affected.record()
        if self.ambiguity:
            rec["ambiguity"] = self.ambiguity
        return rec

    def apply(self, update: FindingUpdate) -> None:
        """Folds a later update in (a reader of JSON lines: the TUI, `diagnose`)."""
        self.count = update.count
        self.last_seen_ns = update.last_seen_ns
        self.affected = update.affected


def finding_id(key: str) -> str:
    return hashlib.blake2s(key.encode(), digest_size=6).hexdigest()


def finding_record(f: Finding) -> dict[str, Any]:
    """The jsonl line of `trace`: kind "finding", the finding's kind in `finding`."""
    rec = f.record()
    return {"kind": "finding", "time": rec["first_seen"], "finding": rec.pop("kind"), **rec}


@dataclass
class FindingUpdate:
    """A known cause explained more: the finding's new totals, not a new finding.
    Emitted at most once a second of the diagnosis' own clock per finding, and once
    at the end, so a replay prints the updates the live run printed."""

    id: str
    kind: str
    count: int
    first_seen_ns: int
    last_seen_ns: int
    affected: Tally
    judged_ns: int                   # the instant diagnosis judged (its clock)

    @property
    def wall_ns(self) -> int:
        return self.judged_ns

    def record(self) -> dict[str, Any]:
        return finding_update_record(self)

    @classmethod
    def of(cls, f: Finding, judged_ns: int) -> FindingUpdate:
        affected = Tally(dict(f.affected.counts), f.affected.total, f.affected.untracked,
                         f.affected.exact)
        return cls(f.id, f.kind, f.count, f.first_seen_ns, f.last_seen_ns or f.first_seen_ns,
                   affected, judged_ns)


Found = Finding | FindingUpdate    # what diagnosis emits


def finding_update_record(u: FindingUpdate) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "kind": "finding-update", "time": rfc3339_ns(u.judged_ns), "id": u.id,
        "finding": u.kind, "count": u.count, "first_seen": rfc3339_ns(u.first_seen_ns),
        "last_seen": rfc3339_ns(u.last_seen_ns)}
    if u.affected.total:
        rec["affected"] = u.affected.record()
    return rec


@dataclass
class InputCoverage:
    """How much of a file (a recording, JSON lines) was read: a damaged input is told
    apart from a clean one, so an empty answer from half a night is not a clean night."""

    kind: str                        # "recording", "jsonl"
    name: str                        # the path, or "standard input"
    format: str = ""                 # a recording's format version, "2.1"
    checksums: bool = False          # 2.1: every record after the header checked
    records: int = 0                 # whole records read (jsonl: lines that were events)
    bytes: int = 0                   # bytes read
    bytes_skipped: int = 0           # in rejected records and after the damage
    blocks_rejected: int = 0         # records skipped whole: checksum failed, malformed
    lines_skipped: int = 0           # jsonl: lines that are not events
    truncated_at: int | None = None  # offset of the cut-off last record
    damaged_at: int | None = None    # offset where the bytes stopped being readable

    @property
    def damaged(self) -> bool:
        # lines of JSON that are not events are not damage: a newer nodetrace's
        # records, a summary line, a log line that strayed into the file
        return bool(self.bytes_skipped or self.blocks_rejected
                    or self.truncated_at is not None or self.damaged_at is not None)

    def notes(self) -> list[str]:
        out = []
        if self.damaged:
            where = []
            if self.truncated_at is not None:
                where.append(f"truncated at offset {self.truncated_at}")
            if self.damaged_at is not None:
                where.append(f"unreadable from offset {self.damaged_at}")
            if self.blocks_rejected:
                where.append(f"{self.blocks_rejected} record(s) rejected (checksum or "
                             "malformed)")
            if self.bytes_skipped:
                where.append(f"{self.bytes_skipped} of {self.bytes} bytes skipped")
            out.append(f"the input is DAMAGED ({self.name}: {', '.join(where)}): findings "
                       "cover only what could be read")
        if self.lines_skipped:
            out.append(f"{self.lines_skipped} line(s) of {self.name} are not events: "
                       "skipped")
        if self.kind == "recording" and not self.checksums:
            out.append(f"format {self.format} has no checksums: damage inside a record "
                       "may have gone unnoticed")
        return out

    def record(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "format": self.format,
                "checksums": self.checksums, "damaged": self.damaged,
                "records": self.records, "bytes": self.bytes,
                "bytes_skipped": self.bytes_skipped, "blocks_rejected": self.blocks_rejected,
                "lines_skipped": self.lines_skipped, "truncated_at": self.truncated_at,
                "damaged_at": self.damaged_at}


@dataclass
class Coverage:
    """What was observed, so no finding claims more than that (and the reader knows)."""

    attached: list[str] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)
    lost: dict[str, int] = field(default_factory=dict)
    metadata: str = "none"           # "file PATH", "none"
    node_state: bool = False
    connections: int = 0
    undecided: int = 0               # too young at the end to tell (no error seen yet)
    unexplained: list[dict[str, Any]] = field(default_factory=list)
    input: InputCoverage | None = None   # a file's: None for a live session
    # the probe families that ran, as the loader (or the recording's header) says;
    # None when the input does not say (JSON lines)
    probe_families: list[str] | None = None
    # finding kind -> the evidence it cannot do without (the rules' `needs`), given by
    # the diagnoser that owns this coverage
    needs: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def families(self) -> set[str] | None:
        """The evidence that was available, by the names rules.Rule.needs uses; None
        when the input does not say (JSON lines)."""
        if self.probe_families is None:
            return None
        have = {"conntrack", *self.probe_families}   # conntrack: netlink, wherever it runs
        if self.metadata != "none":
            have.add("metadata")
        if self.node_state:
            have.add("node_state")
        return have

    def blind(self) -> dict[str, list[str]]:
        """Finding kinds whose evidence was (partly) not observable, and what was missing."""
        have = self.families()
        if have is None:
            return {}
        return {kind: missing for kind, needs in self.needs.items()
                if (missing := [n for n in needs if n not in have])}

    def record(self) -> dict[str, Any]:
        notes = self.input.notes() if self.input is not None else []
        if any(self.lost.values()):
            notes.append("events were lost: a finding may be missing, none is invented")
        if self.metadata == "none":
            notes.append("no Kubernetes metadata: objects are named by address only")
        if not self.node_state:
            notes.append("the node's routes and sysctls were not read")
        for label, why in self.unavailable.items():
            notes.append(f"not observed: {label} ({why})")
        return {"attached": self.attached, "unavailable": self.unavailable,
                "lost": {k: v for k, v in self.lost.items() if v},
                "metadata": self.metadata, "node_state": self.node_state,
                "connections": self.connections, "undecided": self.undecided,
                "unexplained": self.unexplained, "partly_blind": self.blind(),
                **({"input": self.input.record()} if self.input is not None else {}),
                "notes": notes}
