"""-o table: one aligned line per event, for people (until the TUI takes the terminal).

    TIME   KIND  WHERE                 WHAT
    05:44  drop  veth-pod              tcp 10.88.0.2:49942 → 10.88.0.1:5432  NETFILTER_DROP at …
    05:44  nat   node                  tcp 10.42.0.5:40000 → 10.43.0.10:80 ⇒ 10.42.1.7:8080 [dnat]
    05:44  flow  eth0 egress (uplink)  tcp 10.42.0.5:40000 → 192.168.2.10:5432  2 pkts 120 B SYN
                                       !untranslated-pod-source
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TextIO

from tracer.events.common import NO_LABELS, Labels
from tracer.events.finding import Finding, FindingUpdate
from tracer.events.records import Output
from tracer.events.registry import FAMILIES
from tracer.pipeline.enrich import NAMED_FIELDS, Names, names_of
from tracer.sinks.naming import endpoint_label, pod_label
from tracer.sinks.output import OutputStream
from tracer.util.timefmt import rfc3339_ns

HEADER = f"{'TIME':<15}  {'KIND':<4}  {'WHERE':<24}  WHAT"


def labels_of(ev: Output, names: Names | None) -> Labels:
    """The labels of an event's names (the enrich stage's, per NAMED_FIELDS entry) for
    its line to render each endpoint with its own: an endpoint's as `endpoint_label`,
    a process's pod ("@pod", "@holder") as `ns/name`."""
    if names is None:
        return NO_LABELS
    labels: dict[str, str] = {}
    for field, name in zip(NAMED_FIELDS[type(ev)], names, strict=True):
        label = pod_label(name) if field.startswith("@") else endpoint_label(name)
        if label:
            labels[field] = label
    return labels


# event type -> its WHERE and WHAT columns: each family's line is in its module
# (tracer/events/drop.py: drop_line, ...)
LINE_FNS: dict[type, Callable[[Any, Labels], tuple[str, str]]] = {f.model: f.line for f in FAMILIES}


def finding_lines(f: Finding) -> list[str]:
    names = ", ".join(str(o) for o in dict.fromkeys(f.objects))
    return [f"!! {f.kind}: {f.summary}", *([f"   objects: {names}"] if names else []),
            f"   fix: {f.fix}", *([f"   to be sure: {f.ambiguity}"] if f.ambiguity else [])]


def update_line(u: FindingUpdate) -> str:
    """A known cause again: its totals, on one line."""
    who = u.affected.text()
    return (f"!! {u.kind} (again): {u.count} connection{'s' if u.count != 1 else ''} so far"
            + (f", from {who}" if who else "") + f"  [finding {u.id}]")


class TableSink:
    def __init__(self, out: TextIO) -> None:
        self.out = OutputStream(out)
        self._header = False

    def write(self, batch: Sequence[Output]) -> None:
        if not batch:
            return
        lines: list[str] = []
        if not self._header:
            lines.append(HEADER)
            self._header = True
        for ev, names in zip(batch, names_of(batch), strict=True):
            if isinstance(ev, Finding):
                head = f"{rfc3339_ns(ev.wall_ns)[11:26]:<15}  find  {'node':<24}  "
                lines += [head + line if i == 0 else " " * len(head) + line
                          for i, line in enumerate(finding_lines(ev))]
                continue
            if isinstance(ev, FindingUpdate):
                lines.append(f"{rfc3339_ns(ev.wall_ns)[11:26]:<15}  find  {'node':<24}  "
                             + update_line(ev))
                continue
            fn = LINE_FNS.get(type(ev))
            if fn is None:
                continue
            where, what = fn(ev, labels_of(ev, names))
            lines.append(f"{rfc3339_ns(ev.wall_ns)[11:26]:<15}  {ev.kind:<4}  {where:<24}  {what}")
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()

    def close(self) -> None:
        self.out.flush()
