"""The index's read side: dictionaries from address to name, built from a consistent
set of objects and never changed after (the enrich stage reads one while the metadata
thread builds the next).  A lookup is one or two dict gets; unknown addresses are
classified once (pod CIDR or external) and remembered."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tracer.metadata.names import (
    EXTERNAL,
    SCOPE_NODE,
    SCOPE_POD,
    SCOPE_SERVICE,
    EndpointName,
    PodName,
    ServiceName,
)

Obj = dict[str, Any]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_MISSES = 1 << 16
NODE_ADDRESS_TYPES = ("InternalIP", "ExternalIP")


@dataclass(frozen=True)
class Listener:
    """A socket listening in the node's namespace, held by a pod's process."""
    ip: str           # "0.0.0.0" / "::": every address
    port: int
    pod_uid: str


@dataclass(frozen=True, order=True)
class LocalPodInfo:
    """A pod as the node knows it without the API (tracer/metadata/local.py)."""
    uid: str
    host_network: bool
    ips: tuple[str, ...]
    namespace: str | None
    name: str | None


@dataclass(frozen=True)
class ServiceFacts:
    """A Service as diagnosis judges it: its addresses, ports and whether anything
    backs it (tracer/diagnosis/names.py reads these)."""
    namespace: str
    name: str
    cluster_ips: tuple[str, ...]
    external_ips: tuple[str, ...]
    ports: tuple[tuple[int, str], ...]     # (port, protocol)
    node_ports: tuple[int, ...]
    ready_endpoints: int
    endpoints_known: bool                  # an EndpointSlice was seen


@dataclass
class Resolver:
    exact: dict[tuple[str, int], EndpointName] = field(default_factory=dict)
    by_ip: dict[str, EndpointName] = field(default_factory=dict)     # pods, Services
    nodes_by_ip: dict[str, EndpointName] = field(default_factory=dict)  # node addresses
    pods_by_uid: dict[str, PodName] = field(default_factory=dict)
    host_pods: dict[str, EndpointName] = field(default_factory=dict)   # uid -> name
    cidrs: list[tuple[Network, str]] = field(default_factory=list)
    node_addresses: dict[str, str] = field(default_factory=dict)       # address -> node
    services_by_ip_port: dict[tuple[str, int], ServiceName] = field(default_factory=dict)
    node_ports: dict[int, ServiceName] = field(default_factory=dict)   # on every node address
    # for diagnosis: Services by their cluster and external addresses (first claim
    # first: the order the objects were given in), each node's pod range
    services_by_cluster_ip: dict[str, list[ServiceFacts]] = field(default_factory=dict)
    services_by_external_ip: dict[str, list[ServiceFacts]] = field(default_factory=dict)
    services_by_node_port: dict[int, ServiceFacts] = field(default_factory=dict)
    node_pod_cidr: dict[str, str] = field(default_factory=dict)
    _node_port_names: dict[tuple[str, int], EndpointName] = field(default_factory=dict)
    _misses: dict[str, EndpointName] = field(default_factory=dict)

    def resolve(self, ip: str | None, port: int | None) -> EndpointName | None:
        if ip is None:
            return None
        if port:
            hit = self.exact.get((ip, port))
            if hit is not None:
                return hit
        hit = self.by_ip.get(ip)
        if hit is not None:
            return hit
        hit = self.nodes_by_ip.get(ip)
        if hit is not None:
            if port and port in self.node_ports:
                return self._node_port(ip, port, hit.node)
            return hit
        hit = self._misses.get(ip)
        if hit is None:
            hit = self._classify(ip)
        return hit

    def _node_port(self, ip: str, port: int, node: str | None) -> EndpointName:
        """NodePorts: one entry per Service port, named per node address on first use
        (5 k Services x 100 nodes would otherwise be half a million entries)."""
        hit = self._node_port_names.get((ip, port))
        if hit is None:
            if len(self._node_port_names) >= MAX_MISSES:
                self._node_port_names.clear()
            hit = self._node_port_names[(ip, port)] = EndpointName(
                SCOPE_SERVICE, service=self.node_ports[port], node=node)
        return hit

    def _classify(self, ip: str) -> EndpointName:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return EXTERNAL
        hit = EXTERNAL
        for net, node in self.cidrs:
            if addr.version == net.version and addr in net:
                # an address of a node's pod range that no known pod holds (yet, or any
                # more): a pod of that node
                hit = EndpointName(SCOPE_POD, node=node)
                break
        if len(self._misses) >= MAX_MISSES:
            self._misses.clear()
        self._misses[ip] = hit
        return hit

    def host_pod(self, uid: str | None) -> EndpointName | None:
        """A hostNetwork pod by its uid (from a process's cgroup)."""
        return self.host_pods.get(uid) if uid else None

    def pod(self, uid: str) -> PodName | None:
        return self.pods_by_uid.get(uid)


def _pod_name(pod: Obj) -> PodName:
    m = pod["metadata"]
    spec = pod.get("spec") or {}
    return PodName(m.get("namespace") or None, m.get("name") or None, m.get("uid", ""),
                   bool(spec.get("hostNetwork")), spec.get("nodeName"))


def node_addresses(node: Obj) -> list[str]:
    return [a["address"] for a in (node.get("status") or {}).get("addresses") or []
            if a.get("type") in NODE_ADDRESS_TYPES and a.get("address")]


def _service_ips(svc: Obj) -> list[str]:
    spec = svc.get("spec") or {}
    ips = list(spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else []))
    ips = [ip for ip in ips if ip and ip != "None"]
    ips += list(spec.get("externalIPs") or [])
    ips += [i["ip"] for i in ((svc.get("status") or {}).get("loadBalancer") or {})
            .get("ingress") or [] if i.get("ip")]
    return ips


def build(pods: Iterable[Obj], services: Iterable[Obj], slices: Iterable[Obj],
          nodes: Iterable[Obj], listeners: Iterable[Listener] = (),
          local_node: str | None = None, local_pods: Iterable[LocalPodInfo] = (),
          local_addresses: Iterable[str] = ()) -> Resolver:
    """Objects in order of precedence, lowest first (deleted ones in their grace period,
    then live ones): a later object claiming the same address wins."""
    r = Resolver()
    nodes = list(nodes)
    for node in nodes:
        name = node["metadata"]["name"]
        for addr in node_addresses(node):
            r.node_addresses[addr] = name
            r.nodes_by_ip[addr] = EndpointName(SCOPE_NODE, node=name)
        spec = node.get("spec") or {}
        if spec.get("podCIDR"):
            r.node_pod_cidr[name] = spec["podCIDR"]
        for cidr in spec.get("podCIDRs") or []:
            try:
                r.cidrs.append((ipaddress.ip_network(cidr, strict=False), name))
            except ValueError:
                continue
    for addr in local_addresses:   # with no Node objects (no API): still this node's
        if addr not in r.nodes_by_ip and not addr.startswith("127.") and addr != "::1":
            r.node_addresses[addr] = local_node or ""
            r.nodes_by_ip[addr] = EndpointName(SCOPE_NODE, node=local_node)
    for pod in pods:
        pn = _pod_name(pod)
        if pn.uid:
            r.pods_by_uid[pn.uid] = pn
        if pn.host_network:
            # its addresses are its node's: never resolved by IP (docs/events.md)
            r.host_pods[pn.uid] = EndpointName(SCOPE_POD, pod=pn, node=pn.node)
            continue
        name = EndpointName(SCOPE_POD, pod=pn, node=pn.node)
        for i in (pod.get("status") or {}).get("podIPs") or []:
            if i.get("ip"):
                r.by_ip[i["ip"]] = name
    for lp in local_pods:
        if lp.uid in r.pods_by_uid:
            continue  # the API (or a file) knows it: its names win
        pn = PodName(lp.namespace, lp.name, lp.uid, lp.host_network, local_node)
        r.pods_by_uid[lp.uid] = pn
        name = EndpointName(SCOPE_POD, pod=pn, node=local_node)
        if lp.host_network:
            r.host_pods[lp.uid] = name
            continue
        for ip in lp.ips:
            r.by_ip.setdefault(ip, name)
    svc_ports: dict[tuple[str, str], dict[str | None, ServiceName]] = {}
    svc_objs = list(services)
    for svc in svc_objs:
        m = svc["metadata"]
        ns, sname = m.get("namespace") or "default", m["name"]
        ports = (svc.get("spec") or {}).get("ports") or []
        svc_ports[(ns, sname)] = {p.get("name"): ServiceName(ns, sname, p.get("port"),
                                                             p.get("name") or None)
                                  for p in ports}
        for ip in _service_ips(svc):
            r.by_ip[ip] = EndpointName(SCOPE_SERVICE, service=ServiceName(ns, sname, None))
            for p in ports:
                if p.get("port"):
                    sn = ServiceName(ns, sname, p["port"], p.get("name") or None)
                    r.exact[(ip, p["port"])] = EndpointName(SCOPE_SERVICE, service=sn)
                    r.services_by_ip_port[(ip, p["port"])] = sn
        for p in ports:
            if not p.get("nodePort"):
                continue
            r.node_ports[p["nodePort"]] = ServiceName(ns, sname, p.get("port"),
                                                      p.get("name") or None, p["nodePort"])
    backs: dict[tuple[str, int], list[ServiceName]] = {}
    slice_objs = list(slices)
    for sl in slice_objs:
        m = sl["metadata"]
        ns = m.get("namespace") or "default"
        svc_name = (m.get("labels") or {}).get("kubernetes.io/service-name")
        if not svc_name:
            continue
        known = svc_ports.get((ns, svc_name), {})
        for port in sl.get("ports") or []:
            target = port.get("port")
            if not target:
                continue
            sn = known.get(port.get("name")) or ServiceName(ns, svc_name, None,
                                                             port.get("name") or None)
            for ep in sl.get("endpoints") or []:
                for ip in ep.get("addresses") or []:
                    lst = backs.setdefault((ip, target), [])
                    if sn not in lst:
                        lst.append(sn)
    for (ip, port), svcs in backs.items():
        base = r.by_ip.get(ip) or r.nodes_by_ip.get(ip)
        if base is None or base.scope == SCOPE_NODE:
            # a hostNetwork endpoint: the address is the node's; the pod comes from
            # the socket's owner below, not from the address
            base = EndpointName(SCOPE_NODE, node=r.node_addresses.get(ip)) \
                if ip in r.node_addresses else EndpointName(SCOPE_POD)
        r.exact[(ip, port)] = EndpointName(base.scope, pod=base.pod, service=svcs[0],
                                           node=base.node, services=tuple(svcs))
    _add_listeners(r, listeners, local_node)
    _add_service_facts(r, svc_objs, slice_objs)
    return r


def _add_service_facts(r: Resolver, services: list[Obj], slices: list[Obj]) -> None:
    ready: dict[tuple[str, str], int] = {}
    for sl in slices:
        m = sl["metadata"]
        svc_name = (m.get("labels") or {}).get("kubernetes.io/service-name")
        if svc_name:
            key = (m.get("namespace") or "default", svc_name)
            ready[key] = ready.get(key, 0) + sum(
                1 for e in sl.get("endpoints") or []
                if (e.get("conditions") or {}).get("ready", True))
    for svc in services:
        m, spec = svc["metadata"], svc.get("spec") or {}
        key = (m.get("namespace") or "default", m["name"])
        ports = spec.get("ports") or []
        ips = spec.get("clusterIPs") or [spec.get("clusterIP")]
        facts = ServiceFacts(
            key[0], key[1], tuple(i for i in ips if i and i != "None"),
            tuple(spec.get("externalIPs") or []),
            tuple((p.get("port", 0), p.get("protocol", "TCP")) for p in ports),
            tuple(p["nodePort"] for p in ports if p.get("nodePort")),
            ready.get(key, 0), key in ready)
        for ip in facts.cluster_ips:
            r.services_by_cluster_ip.setdefault(ip, []).append(facts)
        for ip in facts.external_ips:
            r.services_by_external_ip.setdefault(ip, []).append(facts)
        for port in facts.node_ports:
            r.services_by_node_port.setdefault(port, facts)


def _add_listeners(r: Resolver, listeners: Iterable[Listener], local_node: str | None) -> None:
    """hostNetwork pods of this node by the sockets their processes hold."""
    local_addrs = [a for a, n in r.node_addresses.items() if n == (local_node or "")]
    for ln in listeners:
        pod = r.host_pods.get(ln.pod_uid)
        if pod is None:
            continue
        addrs = local_addrs if ln.ip in ("0.0.0.0", "::") else [ln.ip]
        for addr in addrs:
            prev = r.exact.get((addr, ln.port))
            r.exact[(addr, ln.port)] = EndpointName(
                SCOPE_POD, pod=pod.pod, node=pod.node,
                service=prev.service if prev is not None else None,
                services=prev.services if prev is not None else ())


