"""What diagnosis needs from Kubernetes metadata, and a minimal implementation of it
over a list of object dicts (`kubectl get pods,services,endpointslices,nodes -A -o json`,
or the lab's objects).

The Protocol is what the rules use; `ObjectListNames` answers it from a list of
objects (a file's, a recording's, or the metadata index's).  Keep this adapter small.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tracer.events.objref import ObjRef as ObjRef  # its old home: re-exported
from tracer.util.errors import MetadataError

Obj = dict[str, Any]


@dataclass(frozen=True)
class ServiceInfo:
    ref: ObjRef
    cluster_ips: tuple[str, ...]
    external_ips: tuple[str, ...]
    ports: tuple[tuple[int, str], ...]     # (port, protocol)
    node_ports: tuple[int, ...]
    ready_endpoints: int
    endpoints_known: bool                  # an EndpointSlice was seen


class Names(Protocol):
    """Kubernetes names for what the kernel shows: addresses, pod UIDs, nodes."""

    def pod_by_ip(self, ip: str | None) -> ObjRef | None: ...
    def pod_by_uid(self, uid: str | None) -> ObjRef | None: ...
    def service_by_ip(self, ip: str | None, port: int | None) -> ServiceInfo | None: ...
    def service_by_external_ip(self, ip: str | None, port: int | None) -> \
        ServiceInfo | None: ...
    def service_by_node_port(self, port: int | None) -> ServiceInfo | None: ...
    def node_by_ip(self, ip: str | None) -> ObjRef | None: ...
    def node_of_pod_ip(self, ip: str | None) -> ObjRef | None: ...
    def node_pod_cidr(self, node: str) -> str | None: ...
    def pod_cidrs(self) -> list[str]: ...
    def is_cluster_dns(self, svc: ServiceInfo) -> bool: ...


def _inside(ip: str, cidr: str) -> bool:
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False


class ObjectListNames:
    """Names from a static list of objects (no watch: the metadata of one moment)."""

    def __init__(self, objects: list[Obj]) -> None:
        self._pods_ip: dict[str, ObjRef] = {}
        self._pods_uid: dict[str, ObjRef] = {}
        self._nodes_ip: dict[str, ObjRef] = {}
        self._node_cidr: dict[str, str] = {}
        self._services: list[ServiceInfo] = []
        slices: dict[tuple[str, str], int] = {}
        for o in objects:
            kind, meta = o.get("kind"), o.get("metadata") or {}
            if kind == "Pod":
                spec, status = o.get("spec") or {}, o.get("status") or {}
                ref = ObjRef("Pod", meta.get("namespace"), meta.get("name", "?"),
                             spec.get("nodeName"))
                if meta.get("uid"):
                    self._pods_uid[meta["uid"]] = ref
                if not spec.get("hostNetwork"):   # hostNetwork pods share the node's IP
                    for ip in status.get("podIPs") or [{"ip": status.get("podIP")}]:
                        if ip.get("ip"):
                            self._pods_ip[ip["ip"]] = ref
            elif kind == "Node":
                ref = ObjRef("Node", None, meta.get("name", "?"))
                for a in (o.get("status") or {}).get("addresses") or []:
                    if a.get("type") in ("InternalIP", "ExternalIP"):
                        self._nodes_ip[a["address"]] = ref
                cidr = (o.get("spec") or {}).get("podCIDR")
                if cidr:
                    self._node_cidr[ref.name] = cidr
            elif kind == "EndpointSlice":
                svc = (meta.get("labels") or {}).get("kubernetes.io/service-name")
                if svc:
                    ready = sum(1 for e in o.get("endpoints") or []
                                if (e.get("conditions") or {}).get("ready", True))
                    key = (meta.get("namespace", ""), svc)
                    slices[key] = slices.get(key, 0) + ready
        for o in objects:
            if o.get("kind") != "Service":
                continue
            meta, spec = o.get("metadata") or {}, o.get("spec") or {}
            key = (meta.get("namespace", ""), meta.get("name", "?"))
            ips = tuple(spec.get("clusterIPs") or [spec.get("clusterIP")])
            self._services.append(ServiceInfo(
                ref=ObjRef("Service", key[0], key[1]),
                cluster_ips=tuple(i for i in ips if i and i != "None"),
                external_ips=tuple(spec.get("externalIPs") or []),
                ports=tuple((p.get("port", 0), p.get("protocol", "TCP"))
                            for p in spec.get("ports") or []),
                node_ports=tuple(p["nodePort"] for p in spec.get("ports") or []
                                 if p.get("nodePort")),
                ready_endpoints=slices.get(key, 0), endpoints_known=key in slices))

    @classmethod
    def from_file(cls, path: Path) -> ObjectListNames:
        return cls.from_files([path])

    @classmethod
    def from_files(cls, paths: list[Path]) -> ObjectListNames:
        objects: list[Obj] = []
        for path in paths:
            try:
                doc = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise MetadataError(f"cannot read metadata from {path}: {exc}") from None
            items = doc.get("items") if isinstance(doc, dict) else doc
            if not isinstance(items, list):
                raise MetadataError(f"{path}: not a kubectl List (no \"items\")")
            objects += [i for i in items if isinstance(i, dict)]
        return cls(objects)

    def pod_by_ip(self, ip: str | None) -> ObjRef | None:
        return self._pods_ip.get(ip) if ip else None

    def pod_by_uid(self, uid: str | None) -> ObjRef | None:
        return self._pods_uid.get(uid) if uid else None

    def _service(self, ip: str | None, port: int | None, external: bool) -> \
            ServiceInfo | None:
        if not ip:
            return None
        for s in self._services:
            if ip in (s.external_ips if external else s.cluster_ips) and \
                    (port is None or any(p == port for p, _ in s.ports)):
                return s
        return None

    def service_by_ip(self, ip: str | None, port: int | None) -> ServiceInfo | None:
        return self._service(ip, port, external=False)

    def service_by_external_ip(self, ip: str | None, port: int | None) -> \
            ServiceInfo | None:
        return self._service(ip, port, external=True)

    def service_by_node_port(self, port: int | None) -> ServiceInfo | None:
        return next((s for s in self._services if port in s.node_ports), None)

    def node_by_ip(self, ip: str | None) -> ObjRef | None:
        return self._nodes_ip.get(ip) if ip else None

    def node_of_pod_ip(self, ip: str | None) -> ObjRef | None:
        pod = self.pod_by_ip(ip)
        if pod is not None and pod.node:
            return ObjRef("Node", None, pod.node)
        for node, cidr in self._node_cidr.items():
            if ip and _inside(ip, cidr):
                return ObjRef("Node", None, node)
        return None

    def node_pod_cidr(self, node: str) -> str | None:
        return self._node_cidr.get(node)

    def pod_cidrs(self) -> list[str]:
        return list(self._node_cidr.values())

    def is_cluster_dns(self, svc: ServiceInfo) -> bool:
        return (svc.ref.namespace == "kube-system" and svc.ref.name in ("kube-dns", "coredns")
                ) or any(p == 53 for p, _ in svc.ports)


class NoNames(ObjectListNames):
    """No metadata: every lookup misses (findings name addresses instead)."""

    def __init__(self) -> None:
        super().__init__([])
