"""What an address is, in Kubernetes terms: the names the enrich stage attaches beside
an endpoint's raw ip/port (docs/events.md, "Kubernetes names")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SCOPE_POD = "pod"
SCOPE_SERVICE = "service"
SCOPE_NODE = "node"
SCOPE_EXTERNAL = "external"


@dataclass(frozen=True, slots=True)
class PodName:
    namespace: str | None
    name: str | None          # None: known only locally, by its uid (no API, no logs)
    uid: str
    host_network: bool
    node: str | None

    def record(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "name": self.name,
                "hostNetwork": self.host_network, "uid": self.uid}

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}" if self.name else f"pod-uid:{self.uid[:8]}"


@dataclass(frozen=True, slots=True)
class ServiceName:
    namespace: str
    name: str
    port: int | None            # the Service's port; None: the address without a port
    port_name: str | None = None
    node_port: int | None = None  # reached as <node address>:<nodePort>

    def record(self) -> dict[str, Any]:
        rec: dict[str, Any] = {"namespace": self.namespace, "name": self.name,
                               "port": self.port}
        if self.port_name:
            rec["portName"] = self.port_name
        if self.node_port is not None:
            rec["nodePort"] = self.node_port
        return rec

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class EndpointName:
    scope: str                          # pod | service | node | external
    pod: PodName | None = None
    service: ServiceName | None = None  # pod: the Service this endpoint backs
    node: str | None = None
    services: tuple[ServiceName, ...] = ()  # every Service an endpoint backs (>1)

    def record(self) -> dict[str, Any]:
        rec: dict[str, Any] = {"scope": self.scope}
        if self.pod is not None:
            rec["pod"] = self.pod.record()
        if self.service is not None:
            rec["service"] = self.service.record()
        if len(self.services) > 1:
            rec["services"] = [s.record() for s in self.services]
        if self.node is not None:
            rec["node"] = self.node
        return rec

    def label(self) -> str:
        """For the table: `default/web-a`, `svc default/web`, `node node1`."""
        if self.pod is not None:
            return str(self.pod)
        if self.scope == SCOPE_SERVICE and self.service is not None:
            return f"svc {self.service}"
        if self.scope == SCOPE_NODE and self.node:
            return f"node {self.node}"
        return ""


EXTERNAL = EndpointName(SCOPE_EXTERNAL)
