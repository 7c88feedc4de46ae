"""The `/` filter: free text and field terms, all of which must match.

    web                   text anywhere in the row
    pod:client            a pod name (or namespace/name) on either end
    ns:kube-system        a namespace on either end
    svc:orders            a Service name
    reason:NETFILTER      a drop reason
    kind:drop             the record kind (drop, flow, nat, tcp, icmp, finding...)

Matching is case-insensitive and by substring.  In a replay, the label selector
(`l`) and the namespace (`N`) narrow the view the same way, exactly: `pods` and
`namespace` (a live session re-attaches instead).  Findings, connections, drops and log
lines each expose a `Subject` (their values per field and a text), so one filter
applies to every pane.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field

from tui.feed import Record
from tui.records import describe, endpoints

FIELDS = ("pod", "ns", "svc", "reason", "kind")


class FilterError(ValueError):
    pass


@dataclass
class Subject:
    fields: dict[str, set[str]] = field(default_factory=dict)
    text: str = ""

    def add(self, key: str, value: object) -> None:
        if value:
            self.fields.setdefault(key, set()).add(str(value).lower())


@dataclass(frozen=True)
class Filter:
    terms: tuple[tuple[str, str], ...] = ()   # (field or "", lowercased value)
    source: str = ""
    pods: frozenset[str] | None = None        # "ns/name", lowercased: a pod on either end
    namespace: str | None = None              # exactly, on either end

    @classmethod
    def parse(cls, text: str) -> Filter:
        try:
            words = shlex.split(text)
        except ValueError as exc:
            raise FilterError(f"filter: {exc}") from None
        terms = []
        for w in words:
            key, sep, value = w.partition(":")
            if sep and key.lower() in FIELDS:
                if not value:
                    raise FilterError(f"filter: {key}: needs a value (e.g. {key}:web)")
                terms.append((key.lower(), value.lower()))
            elif sep and key.isalpha() and key.lower() not in FIELDS and "." not in value:
                raise FilterError(f"filter: unknown field {key}: (fields: "
                                  f"{', '.join(f + ':' for f in FIELDS)})")
            else:
                terms.append(("", w.lower()))
        return cls(tuple(terms), text.strip())

    def __bool__(self) -> bool:
        return bool(self.terms) or self.pods is not None or self.namespace is not None

    def matches(self, subject: Subject) -> bool:
        if self.namespace is not None and self.namespace not in subject.fields.get("ns", ()):
            return False
        if self.pods is not None and self.pods.isdisjoint(subject.fields.get("pod", ())):
            return False
        for key, value in self.terms:
            if key:
                if not any(value in v for v in subject.fields.get(key, ())):
                    return False
            elif value not in subject.text:
                return False
        return True


def add_endpoint(subject: Subject, ep: object) -> None:
    if not isinstance(ep, dict):
        return
    pod = ep.get("pod")
    if isinstance(pod, dict) and pod.get("name"):
        subject.add("pod", pod["name"])
        subject.add("pod", f"{pod.get('namespace')}/{pod['name']}")
        subject.add("ns", pod.get("namespace"))
    svc = ep.get("service")
    if isinstance(svc, dict) and svc.get("name"):
        subject.add("svc", svc["name"])
        subject.add("svc", f"{svc.get('namespace')}/{svc['name']}")
        subject.add("ns", svc.get("namespace"))


def record_subject(rec: Record) -> Subject:
    s = Subject(text=describe(rec).lower())
    s.add("kind", rec.get("kind"))
    s.add("reason", rec.get("reason"))
    s.add("reason", rec.get("error"))
    s.add("reason", rec.get("meaning"))
    for ep in endpoints(rec):
        add_endpoint(s, ep)
    if rec.get("kind") == "nat" and isinstance(rec.get("reply"), dict):
        add_endpoint(s, rec["reply"].get("src"))
    return s


def merged(subjects: Iterable[Subject], text: str) -> Subject:
    out = Subject(text=text.lower())
    for s in subjects:
        for k, values in s.fields.items():
            out.fields.setdefault(k, set()).update(values)
    return out
