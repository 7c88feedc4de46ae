"""`l` and `N`: the pod selection edited in the app, with kubectl's semantics.

A label selector (tracer/metadata/selectors.py parses and validates it, as `-l` does) and a
namespace (`-n`; `-A` for every namespace) make a `Selection`; a live session
re-attaches to the pods it selects, a replay narrows its view to them.  A label
selector without a namespace means the `default` namespace, as `kubectl -l` does;
no criterion at all in every namespace means no selection (this node and its pods).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace

from tracer.metadata.selectors import LabelSelector, SelectorError
from tracer.session.pod_scope import Selection

ALL_NAMESPACES = ("", "-A", "*")
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _normal(sel: Selection) -> Selection | None:
    if sel.labels is None and sel.fields is None and sel.pod is None and sel.namespace is None:
        return None
    return sel


def with_labels(current: Selection | None, text: str,
                default_namespace: str = "default") -> Selection | None:
    """Raises SelectorError with the parser's message.  A first selector selects in
    `default_namespace` (kubectl's: the context's), as `-l` without `-n` does."""
    labels = LabelSelector.parse(text) if text.strip() else None
    if current is None:
        return None if labels is None else Selection(labels=labels,
                                                     namespace=default_namespace)
    return _normal(replace(current, labels=labels))


def with_namespace(current: Selection | None, text: str) -> Selection | None:
    """`-A`, `*` or nothing: every namespace.  Raises SelectorError for a name
    Kubernetes would not accept (a DNS-1123 label)."""
    name = text.strip()
    namespace = None if name in ALL_NAMESPACES else name
    if namespace is not None and (len(namespace) > 63 or not _NAMESPACE.match(namespace)):
        raise SelectorError(f"invalid namespace {namespace!r}: at most 63 lowercase "
                            "alphanumeric characters or '-', starting and ending with an "
                            "alphanumeric character (-A: every namespace)")
    return _normal(replace(current or Selection(), namespace=namespace))


def labels_text(sel: Selection | None) -> str:
    return str(sel.labels) if sel is not None and sel.labels is not None else ""


def namespace_text(sel: Selection | None) -> str:
    if sel is None or sel.namespace is None:
        return "-A"
    return sel.namespace


def view_scope(sel: Selection | None, pod_labels: Mapping[str, Mapping[str, str]]
               ) -> tuple[frozenset[str] | None, str | None]:
    """A replay's view of the selection: (the pods it selects as "ns/name", or None for
    any pod; the namespace, or None for any).  Raises SelectorError when the replay
    knows no pod's labels (a jsonl capture carries none)."""
    if sel is None:
        return None, None
    pods = None
    if sel.labels is not None:
        if not pod_labels:
            raise SelectorError("this replay carries no pod labels (only recordings do): "
                                "-l cannot narrow it; / pod:NAME and N do")
        pods = frozenset(key.lower() for key, labels in pod_labels.items()
                         if sel.labels.matches(labels))
    return pods, sel.namespace.lower() if sel.namespace is not None else None
