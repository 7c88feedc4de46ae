"""Who a finding affects, summarised: a finding folds every connection its cause
explains, and a storm brings thousands of sources.  The tally keeps the exact number
of connections, the names of the first TRACK_MAX distinct sources with their counts,
and a count of what it could not name; what it shows is the top few with the rest
as "and N more".

    t = Tally()
    t.add("pod default/client (10.42.0.7)")
    t.add_unnamed(4_812)           # a kernel-folded storm: counted, not named
    t.record()  # {"total": 4813, "distinct": 4813, "exact": False, "top": [...], "more": 4812}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TRACK_MAX = 16_384     # distinct names kept; beyond them, counted but not told apart
TOP = 5                # names shown


@dataclass
class Tally:
    counts: dict[str, int] = field(default_factory=dict)
    total: int = 0             # connections (or binds), exactly
    untracked: int = 0         # affected beyond the names kept, or never named
    exact: bool = True         # False: `distinct` is a lower bound or an estimate

    def add(self, name: str, n: int = 1) -> None:
        self.total += n
        if name in self.counts:
            self.counts[name] += n
        elif len(self.counts) < TRACK_MAX:
            self.counts[name] = n
        else:
            self.untracked += n
            self.exact = False

    def add_unnamed(self, distinct: int, *, exact: bool = False) -> None:
        """Sources the kernel folded into one record: `distinct` of them, as its
        sketch estimated, each counted once."""
        if distinct <= 0:
            return
        self.total += distinct
        self.untracked += distinct
        self.exact = self.exact and exact

    @property
    def distinct(self) -> int:
        return len(self.counts) + self.untracked

    def record(self) -> dict[str, Any]:
        top = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP]
        return {"total": self.total, "distinct": self.distinct, "exact": self.exact,
                "top": [[name, n] for name, n in top],
                "more": self.distinct - len(top)}

    def text(self) -> str:
        """For a line of text: `pod a/b (10.42.0.7) x3, 10.0.0.9, and 4 812 more`."""
        rec = self.record()
        parts = [name if n == 1 else f"{name} x{n}" for name, n in rec["top"]]
        if rec["more"]:
            parts.append(f"and {'~' if not self.exact else ''}{rec['more']:,} more"
                         .replace(",", " "))
        return ", ".join(parts)


def parse_tally(rec: Any) -> Tally | None:
    """The `affected` field of a finding record (JSON lines): the names shown, and the
    rest as untracked; None when it is not one."""
    if not isinstance(rec, dict):
        return None
    t = Tally()
    for item in rec.get("top") or []:
        if isinstance(item, list) and len(item) == 2 and isinstance(item[0], str) \
                and isinstance(item[1], int):
            t.counts[item[0]] = item[1]
    total, distinct = rec.get("total"), rec.get("distinct")
    t.total = total if isinstance(total, int) else sum(t.counts.values())
    t.untracked = max(0, (distinct if isinstance(distinct, int) else 0) - len(t.counts))
    t.exact = bool(rec.get("exact", True))
    return t
