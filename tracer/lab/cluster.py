"""The lab's desired cluster as typed records: nodes, pods, Services and the network
policy, with every address and name fixed.  One source for the three things derived
from it — the namespaces (topology.py), kube-proxy's rules (kubeproxy.py) and the
Kubernetes objects (objects.py) — so they cannot disagree.

    ext 192.168.2.10 ── router (.2.1 / .1.1) ──┐
                                               br0 192.168.1.0/24 (gateway .254, routes nothing)
      node1 eth0 192.168.1.11 ─────────────────┤
        cni0 10.42.0.1/24: client .10, web-a .11, vpn-gw .12, orders .13
        hostNetwork: agent, metrics-a
      node2 eth0 192.168.1.12 ─────────────────┘
        cni0 10.42.1.1/24: coredns .10, api .11
        hostNetwork: metrics-b
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field

NETNS_PREFIX = "nt-lab-"
CLUSTER_CIDR = "10.42.0.0/16"
SERVICE_CIDR = "10.43.0.0/16"
NODE_NET = "192.168.1.0/24"
EXTERNAL_NET = "192.168.2.0/24"
ROUTER_NODE_IP = "192.168.1.1"
ROUTER_EXT_IP = "192.168.2.1"
GATEWAY_IP = "192.168.1.254"        # the nodes' default route: an uplink that goes nowhere
EXTERNAL_HOST = "192.168.2.10"      # the legacy database of the field report
EXTERNAL_DB_PORT = 5432
EXTERNAL_IP = "192.168.1.100"       # the web Service's externalIP, routed to node1
VPN_RANGE = "172.16.0.0/24"         # addresses behind the vpn-gw pod
VPN_CLIENT_IP = "172.16.0.5"
NOT_ADJACENT_NEXTHOP = "192.168.3.12"
METRICS_PORT = 9100
APISERVER_PORT = 6443

# uid = uuid5(this, "namespace/name"): stable across runs, so `lab down` can recognise
# the lab's pod cgroups even when the state file is gone.
_UID_NAMESPACE = uuid.UUID("6c1d2a52-9f0e-4b0c-9d47-6e6f64657472")


@dataclass(frozen=True)
class Node:
    name: str
    ip: str
    pod_cidr: str
    cni_ip: str

    @property
    def netns(self) -> str:
        return f"{NETNS_PREFIX}{self.name}"


NODES = (Node("node1", "192.168.1.11", "10.42.0.0/24", "10.42.0.1"),
         Node("node2", "192.168.1.12", "10.42.1.0/24", "10.42.1.1"))
NODE_BY_NAME = {n.name: n for n in NODES}


@dataclass(frozen=True)
class ContainerPort:
    name: str
    port: int
    protocol: str = "TCP"
    host_port: int | None = None


@dataclass(frozen=True)
class Container:
    name: str
    image: str
    workload: tuple[str, ...]   # arguments to `python -m tracer.lab.workloads`
    ports: tuple[ContainerPort, ...] = ()


@dataclass(frozen=True)
class Pod:
    name: str
    namespace: str
    node: str
    labels: tuple[tuple[str, str], ...]
    container: Container
    ip: str | None = None            # None: hostNetwork, the node's address
    extra_ips: tuple[str, ...] = ()  # addresses the pod also owns (vpn-gw)
    owner: str | None = None         # the ReplicaSet, for Deployment pods
    restart_loop: bool = False       # run under the lab's kubelet-like supervisor

    @property
    def host_network(self) -> bool:
        return self.ip is None

    @property
    def address(self) -> str:
        return self.ip or NODE_BY_NAME[self.node].ip

    @property
    def uid(self) -> str:
        return str(uuid.uuid5(_UID_NAMESPACE, f"{self.namespace}/{self.name}"))

    @property
    def container_id(self) -> str:
        return hashlib.sha256(f"{self.uid}/{self.container.name}".encode()).hexdigest()

    @property
    def netns(self) -> str:
        """The pod's own namespace; hostNetwork pods live in their node's."""
        return NODE_BY_NAME[self.node].netns if self.host_network \
            else f"{NETNS_PREFIX}pod-{self.name}"

    @property
    def veth_host(self) -> str | None:
        # the CNI bridge plugin's shape: "veth" + 8 hex digits, the peer is eth0
        return None if self.host_network else "veth" + self.uid.replace("-", "")[:8]

    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)


@dataclass(frozen=True)
class ServicePort:
    name: str
    port: int
    target_port: int
    protocol: str = "TCP"
    node_port: int | None = None


@dataclass(frozen=True)
class Service:
    name: str
    namespace: str
    cluster_ip: str
    selector: tuple[tuple[str, str], ...]
    ports: tuple[ServicePort, ...]
    external_ips: tuple[str, ...] = ()

    @property
    def type(self) -> str:
        return "NodePort" if any(p.node_port for p in self.ports) else "ClusterIP"


@dataclass(frozen=True)
class NetworkPolicy:
    """An ingress policy as a NetworkPolicy implementation enforces it on the node
    of the selected pods: only pods with `allow_from` labels may connect."""
    name: str
    namespace: str
    pod_selector: tuple[tuple[str, str], ...]
    allow_from: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ClusterOptions:
    """The workload-side knobs a scenario turns."""
    orders_running: bool = True        # False: every pod behind `orders` is gone
    metrics_on_one_node: bool = False  # both replicas scheduled onto node1
    web_listen_port: int = 8080        # what web-a really listens on (Service: 8080)
    web_policy: bool = False           # a NetworkPolicy admits only app=frontend to web


@dataclass(frozen=True)
class Cluster:
    nodes: tuple[Node, ...]
    pods: tuple[Pod, ...]
    services: tuple[Service, ...]
    policies: tuple[NetworkPolicy, ...] = field(default=())

    def pod(self, name: str) -> Pod:
        for p in self.pods:
            if p.name == name:
                return p
        raise KeyError(name)

    def node(self, name: str) -> Node:
        return NODE_BY_NAME[name]

    def pods_on(self, node: str) -> tuple[Pod, ...]:
        return tuple(p for p in self.pods if p.node == node)

    def selected(self, namespace: str, selector: tuple[tuple[str, str], ...]) -> tuple[Pod, ...]:
        want = dict(selector)
        return tuple(p for p in self.pods if p.namespace == namespace and want
                     and all(p.label_dict().get(k) == v for k, v in want.items()))

    def endpoints(self, svc: Service) -> tuple[Pod, ...]:
        """Ready endpoints: a pod whose container crash-loops is not ready."""
        return tuple(p for p in self.selected(svc.namespace, svc.selector)
                     if not p.restart_loop or not self.crashlooping(p))

    def crashlooping(self, pod: Pod) -> bool:
        """The second hostNetwork replica on a node cannot bind the port the first holds."""
        if not pod.restart_loop or pod.owner is None:
            return False
        same = [p for p in self.pods if p.owner == pod.owner and p.node == pod.node]
        return len(same) > 1 and same[0] != pod


def _http(port: int) -> tuple[str, ...]:
    return ("serve", "http", "--port", str(port))


def build_cluster(opts: ClusterOptions = ClusterOptions()) -> Cluster:
    web_port = ContainerPort("http", 8080)
    pods = [
        Pod("client", "default", "node1", (("app", "client"),),
            Container("client", "registry.k8s.io/e2e-test-images/agnhost:2.47", ("idle",)),
            ip="10.42.0.10"),
        Pod("web-a", "default", "node1", (("app", "web"),),
            Container("web", "nginx:1.27", _http(opts.web_listen_port), (web_port,)),
            ip="10.42.0.11", owner="web-5d4f8c7b9"),
        Pod("vpn-gw", "default", "node1", (("app", "vpn-gw"),),
            Container("wireguard", "linuxserver/wireguard:1.0", ("idle",)),
            ip="10.42.0.12", extra_ips=(VPN_CLIENT_IP,)),
        Pod("agent", "kube-system", "node1", (("app", "agent"),),
            Container("agent", "fluent/fluent-bit:3.1", ("idle",))),
        Pod("coredns", "kube-system", "node2", (("k8s-app", "kube-dns"),),
            Container("coredns", "coredns/coredns:1.11.3", ("serve", "dns", "--port", "53"),
                      (ContainerPort("dns", 53, "UDP"),)),
            ip="10.42.1.10", owner="coredns-6799fbcd5"),
        Pod("api", "default", "node2", (("app", "api"),),
            Container("api", "registry.k8s.io/e2e-test-images/agnhost:2.47", _http(8080),
                      (web_port,)),
            ip="10.42.1.11", owner="api-7c9d6b5f4"),
    ]
    if opts.orders_running:
        pods.append(Pod("orders", "default", "node1", (("app", "orders"),),
                        Container("orders", "nginx:1.27", _http(8080), (web_port,)),
                        ip="10.42.0.13", owner="orders-66b8f9d7c"))
    metrics = Container("node-exporter", "prom/node-exporter:v1.8.2",
                        ("serve", "http", "--port", str(METRICS_PORT), "--host", "0.0.0.0"),
                        (ContainerPort("metrics", METRICS_PORT, host_port=METRICS_PORT),))
    for suffix, node in (("x7k2p", "node1"),
                         ("q9m4d", "node1" if opts.metrics_on_one_node else "node2")):
        pods.append(Pod(f"metrics-6f7c9b8d4-{suffix}", "monitoring", node,
                        (("app", "metrics"),), metrics, owner="metrics-6f7c9b8d4",
                        restart_loop=True))
    http = (ServicePort("http", 80, 8080),)
    services = (
        Service("kube-dns", "kube-system", "10.43.0.10", (("k8s-app", "kube-dns"),),
                (ServicePort("dns", 53, 53, "UDP"),)),
        Service("web", "default", "10.43.0.20", (("app", "web"),),
                (ServicePort("http", 80, 8080, node_port=30080),), external_ips=(EXTERNAL_IP,)),
        Service("orders", "default", "10.43.0.30", (("app", "orders"),), http),
        Service("api", "default", "10.43.0.40", (("app", "api"),), http),
    )
    policies = (NetworkPolicy("web-allow-frontend", "default", (("app", "web"),),
                              (("app", "frontend"),)),) if opts.web_policy else ()
    return Cluster(NODES, tuple(pods), services, policies)


def all_pod_uids() -> set[str]:
    """Every uid any scenario can create: what a state-less `down` may sweep."""
    uids: set[str] = set()
    for opts in (ClusterOptions(), ClusterOptions(metrics_on_one_node=True)):
        uids.update(p.uid for p in build_cluster(opts).pods)
    return uids
