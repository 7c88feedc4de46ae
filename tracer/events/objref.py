"""A reference to a Kubernetes object, as findings name them (docs/findings.md): part
of the output contract, so it lives with the events, below the diagnosis that fills
it in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ObjRef:
    kind: str                 # "Pod", "Service", "Node"
    namespace: str | None     # None for cluster-scoped kinds
    name: str
    node: str | None = None   # Pod: spec.nodeName

    def record(self) -> dict[str, Any]:
        return {"kind": self.kind, "namespace": self.namespace, "name": self.name}

    def __str__(self) -> str:
        what = {"Pod": "pod", "Service": "Service", "Node": "node"}.get(self.kind, self.kind)
        return f"{what} {self.namespace}/{self.name}" if self.namespace else f"{what} {self.name}"
