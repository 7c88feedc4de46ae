"""What diagnosis needs from Kubernetes metadata (`Names`), and its implementation on
the metadata index the events are named from (tracer/metadata/index.py): live, the
API's and the files' objects and what the node knows; in a replay, the metadata the
recording carries, as it was at each event; or the objects of `--metadata` files.

Nothing is rebuilt here: every look-up goes to the index's read side, which the
index rebuilds itself when something changed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tracer.events.objref import ObjRef as ObjRef  # its home: the event contract
from tracer.metadata.file import FileProvider
from tracer.metadata.index import MetadataIndex
from tracer.metadata.names import PodName
from tracer.metadata.objects import KINDS
from tracer.metadata.resolver import Resolver, ServiceFacts
from tracer.util.errors import MetadataError, UsageError

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


def _pod_ref(pod: PodName | None) -> ObjRef | None:
    if pod is None or pod.name is None:   # known only by its uid: no name to give
        return None
    return ObjRef("Pod", pod.namespace, pod.name, pod.node)


MEMO_MAX = 4096


class IndexNames:
    """`Names` on a metadata index."""

    def __init__(self, index: MetadataIndex) -> None:
        self.index = index
        self._infos: dict[ServiceFacts, ServiceInfo] = {}

    @classmethod
    def from_objects(cls, objects: Iterable[Obj]) -> IndexNames:
        """The objects of one moment (a test's, the lab's)."""
        by_kind: dict[str, list[Obj]] = {k: [] for k in KINDS}
        for o in objects:
            kind = o.get("kind")
            if kind in by_kind and isinstance((o.get("metadata") or {}).get("name"), str):
                by_kind[kind].append(o)
        index = MetadataIndex(rebuild_interval_s=0.0)
        for kind, objs in by_kind.items():
            index.replace(kind, objs, source="file")
        return cls(index)

    @classmethod
    def from_file(cls, path: Path) -> IndexNames:
        return cls.from_files([path])

    @classmethod
    def from_files(cls, paths: Iterable[Path]) -> IndexNames:
        """`kubectl get pods,svc,endpointslices,nodes -A -o json` output, as
        `--metadata` reads it for the events' names."""
        index = MetadataIndex(rebuild_interval_s=0.0)
        try:
            FileProvider(index, paths).load()
        except (UsageError, MetadataError) as exc:
            raise MetadataError(f"cannot read metadata: {exc.message}") from None
        return cls(index)

    def _r(self) -> Resolver:
        return self.index.resolver()

    def _info(self, f: ServiceFacts | None) -> ServiceInfo | None:
        if f is None:
            return None
        info = self._infos.get(f)
        if info is None:
            if len(self._infos) >= MEMO_MAX:
                self._infos.clear()
            info = self._infos[f] = ServiceInfo(
                ObjRef("Service", f.namespace, f.name), f.cluster_ips, f.external_ips,
                f.ports, f.node_ports, f.ready_endpoints, f.endpoints_known)
        return info

    def pod_by_ip(self, ip: str | None) -> ObjRef | None:
        hit = self._r().by_ip.get(ip) if ip else None   # hostNetwork pods: never by IP
        return _pod_ref(hit.pod) if hit is not None else None

    def pod_by_uid(self, uid: str | None) -> ObjRef | None:
        return _pod_ref(self._r().pods_by_uid.get(uid)) if uid else None

    @staticmethod
    def _service(found: list[ServiceFacts], port: int | None) -> ServiceFacts | None:
        return next((f for f in found if port is None or any(p == port for p, _ in f.ports)),
                    None)

    def service_by_ip(self, ip: str | None, port: int | None) -> ServiceInfo | None:
        if not ip:
            return None
        return self._info(self._service(self._r().services_by_cluster_ip.get(ip, []), port))

    def service_by_external_ip(self, ip: str | None, port: int | None) -> \
            ServiceInfo | None:
        if not ip:
            return None
        return self._info(self._service(self._r().services_by_external_ip.get(ip, []),
                                        port))

    def service_by_node_port(self, port: int | None) -> ServiceInfo | None:
        return self._info(self._r().services_by_node_port.get(port)) if port else None

    def node_by_ip(self, ip: str | None) -> ObjRef | None:
        node = self._r().node_addresses.get(ip) if ip else None
        return ObjRef("Node", None, node) if node else None

    def node_of_pod_ip(self, ip: str | None) -> ObjRef | None:
        if not ip:
            return None
        r = self._r()
        hit = r.by_ip.get(ip)
        if hit is not None and hit.pod is not None and hit.pod.node:
            return ObjRef("Node", None, hit.pod.node)
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        for net, node in r.cidrs:
            if addr.version == net.version and addr in net:
                return ObjRef("Node", None, node)
        return None

    def node_pod_cidr(self, node: str) -> str | None:
        return self._r().node_pod_cidr.get(node)

    def pod_cidrs(self) -> list[str]:
        return list(self._r().node_pod_cidr.values())

    def is_cluster_dns(self, svc: ServiceInfo) -> bool:
        return (svc.ref.namespace == "kube-system" and svc.ref.name in ("kube-dns", "coredns")
                ) or any(p == 53 for p, _ in svc.ports)


class NoNames(IndexNames):
    """No metadata: every lookup misses (findings name addresses instead)."""

    def __init__(self) -> None:
        super().__init__(MetadataIndex(rebuild_interval_s=0.0))
