"""What one list or watch asks for, and how a store event looks through it."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tracer.lab.apiserver.resources import Obj, Resource, field_value
from tracer.metadata.selectors import FieldSelector, LabelSelector, SelectorError

if TYPE_CHECKING:
    from tracer.lab.apiserver.store import StoreEvent


@dataclass(frozen=True)
class Query:
    resource: Resource
    namespace: str | None = None  # None: all namespaces (or a cluster-scoped kind)
    labels: LabelSelector = field(default_factory=LabelSelector)
    fields: FieldSelector = field(default_factory=FieldSelector)

    @classmethod
    def build(cls, resource: Resource, namespace: str | None = None,
              label_selector: str | LabelSelector | None = None,
              field_selector: str | FieldSelector | None = None) -> Query:
        """Parses selector strings; raises SelectorError for what the API server
        would answer with 400 Bad Request."""
        labels = (LabelSelector.parse(label_selector) if isinstance(label_selector, str)
                  else label_selector or LabelSelector())
        fields = (FieldSelector.parse(field_selector) if isinstance(field_selector, str)
                  else field_selector or FieldSelector())
        unsupported = sorted(fields.fields - set(resource.selectable_fields))
        if unsupported:
            raise SelectorError(f"field label not supported: {unsupported[0]} "
                                f"(for {resource.plural}: "
                                f"{', '.join(resource.selectable_fields)})")
        return cls(resource, namespace if resource.namespaced else None, labels, fields)

    def matches(self, obj: Obj) -> bool:
        if obj.get("kind") != self.resource.kind:
            return False
        meta = obj.get("metadata", {})
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        return (self.labels.matches(meta.get("labels"))
                and self.fields.matches(lambda path: field_value(obj, path)))

    def view(self, event: StoreEvent) -> tuple[str, Obj] | None:
        """The watch event this query's watcher receives, if any.  As in the API
        server's watch cache, an object that starts or stops matching (relabelled,
        rescheduled) arrives as ADDED or DELETED, not as MODIFIED."""
        now = self.matches(event.object)
        before = event.previous is not None and self.matches(event.previous)
        if event.type == "DELETED":
            return ("DELETED", event.object) if before else None
        if event.type == "ADDED" or (now and not before):
            return ("ADDED", event.object) if now else None
        if now:
            return "MODIFIED", event.object
        if before and event.previous is not None:
            # The last state that matched, stamped with the version that ended the match.
            gone = copy.deepcopy(event.previous)
            gone["metadata"]["resourceVersion"] = str(event.resource_version)
            return "DELETED", gone
        return None
