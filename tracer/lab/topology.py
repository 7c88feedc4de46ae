"""The lab's namespaces and links, built from the desired cluster (cluster.py).

    nt-lab-ext     eth0 192.168.2.10, default via the router
    nt-lab-router  eth1 192.168.2.1, eth0 192.168.1.1; routes the externalIP to node1
    nt-lab-net     the node network: bridge br0 with 192.168.1.254, the nodes' default
                   gateway, which knows no pod network (as an upstream router would not)
    nt-lab-node1/2 eth0 on br0, cni0 with the pod CIDR, pods' veths on cni0; a static
                   route to 192.168.2.0/24 via the router; host-gw routes to the other
                   node's pod CIDR; kube-proxy's and flannel's iptables rules
    nt-lab-pod-*   eth0 with the pod IP, default via the node's cni0

All configuration is done inside these namespaces: not one command runs against the
root namespace's interfaces, routes, sysctls or firewall.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from tracer.lab.cluster import (
    EXTERNAL_HOST,
    EXTERNAL_IP,
    EXTERNAL_NET,
    GATEWAY_IP,
    NETNS_PREFIX,
    NOT_ADJACENT_NEXTHOP,
    ROUTER_EXT_IP,
    ROUTER_NODE_IP,
    VPN_RANGE,
    Cluster,
    Node,
)
from tracer.lab.kubeproxy import ProxyOptions, render
from tracer.lab.netns import Netns, NetnsError, batch, ours

EXT = Netns(f"{NETNS_PREFIX}ext")
ROUTER = Netns(f"{NETNS_PREFIX}router")
NODE_NET = Netns(f"{NETNS_PREFIX}net")
POD_ROUTES = ("host-gw", "none", "not-adjacent")


@dataclass(frozen=True)
class TopologyOptions:
    """The network-side knobs a scenario turns (the first node is node1)."""
    ip_forward: bool = True          # node1's net.ipv4.ip_forward
    static_route: bool = True        # node1's route to 192.168.2.0/24 via the router
    node1_pod_route: str = "host-gw"  # node1 -> node2's pod CIDR: host-gw, none, not-adjacent
    node2_pod_route: str = "host-gw"  # node2 -> node1's pod CIDR: host-gw or none
    vpn_route: bool = True           # node1's route to the vpn-gw pod's range


BRIDGE_SYSCTLS = Path("/proc/sys/net/bridge")


def namespaces(cluster: Cluster) -> list[Netns]:
    pods = sorted({p.netns for p in cluster.pods if not p.host_network})
    return [EXT, ROUTER, NODE_NET, *(Netns(n.netns) for n in cluster.nodes),
            *(Netns(name) for name in pods)]


def _sysctls(ns: Netns, values: dict[str, str]) -> None:
    ns.exec("sysctl", "-q", "-w", *(f"{k}={v}" for k, v in values.items()))


def _node_routes(node: Node, other: Node, opts: TopologyOptions, first: bool) -> list[str]:
    cmds = [f"route add default via {GATEWAY_IP}"]
    if not first or opts.static_route:
        cmds.append(f"route add {EXTERNAL_NET} via {ROUTER_NODE_IP}")
    how = opts.node1_pod_route if first else opts.node2_pod_route
    if how == "host-gw":
        cmds.append(f"route add {other.pod_cidr} via {other.ip}")
    elif how == "not-adjacent":
        # host-gw pointed at an address on no connected subnet: `onlink` makes the
        # kernel take it, then ARP for it on eth0, where nobody answers
        cmds.append(f"route add {other.pod_cidr} via {NOT_ADJACENT_NEXTHOP} dev eth0 onlink")
    elif how != "none":
        raise ValueError(f"pod route {how!r}: expected one of {POD_ROUTES}")
    return cmds


def _bridge_netfilter() -> None:
    """bridge-nf-call-iptables exists once br_netfilter is loaded; where it is a module
    (distro kernels, the kernel matrix's VMs), load it, as kubeadm's preflight asks."""
    if BRIDGE_SYSCTLS.is_dir():
        return
    proc = subprocess.run(["modprobe", "br_netfilter"], capture_output=True, text=True,
                          check=False)
    if not BRIDGE_SYSCTLS.is_dir():
        raise NetnsError("bridged traffic cannot reach iptables (no br_netfilter): "
                         f"modprobe br_netfilter: {proc.stderr.strip() or proc.returncode}")


def build(cluster: Cluster, topo: TopologyOptions, proxy: ProxyOptions) -> None:
    """Creates every namespace, link, address, route, sysctl and rule.  Expects none
    of the lab's namespaces to exist (lifecycle.up removes a previous lab first)."""
    _bridge_netfilter()
    for ns in namespaces(cluster):
        ns.create()
        # IPv4 only: without this every link sends router solicitations and ND, noise
        # in every trace of the lab
        _sysctls(ns, {"net.ipv6.conf.all.disable_ipv6": "1",
                      "net.ipv6.conf.default.disable_ipv6": "1"})
    node1, node2 = cluster.nodes
    net_cmds = ["link add name br0 type bridge", "link set br0 up",
                f"addr add {GATEWAY_IP}/24 dev br0"]
    for name, peer in (("n-router", ROUTER), *((f"n-{n.name}", Netns(n.netns))
                                                for n in cluster.nodes)):
        net_cmds += [f"link add name {name} type veth peer name eth0 netns {peer.name}",
                     f"link set {name} master br0 up"]
    batch(NODE_NET, net_cmds)
    batch(ROUTER, [f"link add name eth1 type veth peer name eth0 netns {EXT.name}",
                   "link set eth0 up", "link set eth1 up",
                   f"addr add {ROUTER_NODE_IP}/24 dev eth0",
                   f"addr add {ROUTER_EXT_IP}/24 dev eth1",
                   # whoever announces the externalIP sends it to node1
                   f"route add {EXTERNAL_IP}/32 via {node1.ip}"])
    batch(EXT, ["link set eth0 up", f"addr add {EXTERNAL_HOST}/24 dev eth0",
                f"route add default via {ROUTER_EXT_IP}"])
    for node, other in ((node1, node2), (node2, node1)):
        first = node is node1
        ns = Netns(node.netns)
        cmds = ["link set eth0 up", f"addr add {node.ip}/24 dev eth0",
                "link add name cni0 type bridge", "link set cni0 up",
                f"addr add {node.cni_ip}/24 dev cni0"]
        for pod in cluster.pods_on(node.name):
            if pod.host_network:
                continue
            cmds += [f"link add name {pod.veth_host} type veth peer name eth0 netns {pod.netns}",
                     f"link set {pod.veth_host} master cni0 up"]
        cmds += _node_routes(node, other, topo, first)
        if first and topo.vpn_route:
            vpn = cluster.pod("vpn-gw")
            cmds.append(f"route add {VPN_RANGE} via {vpn.ip}")
        batch(ns, cmds)
        _sysctls(ns, {"net.ipv4.ip_forward": "1" if topo.ip_forward or not first else "0",
                      # strict reverse-path filtering, as many distributions ship it
                      "net.ipv4.conf.all.rp_filter": "1",
                      "net.ipv4.conf.default.rp_filter": "1",
                      # kubelet and flannel require bridged pod traffic to see iptables
                      "net.bridge.bridge-nf-call-iptables": "1"})
        ns.iptables_restore(render(cluster, node, proxy))
    for pod in cluster.pods:
        if pod.host_network:
            continue
        node = cluster.node(pod.node)
        cmds = ["link set eth0 up", f"addr add {pod.ip}/24 dev eth0",
                f"route add default via {node.cni_ip}"]
        cmds += [f"addr add {ip}/32 dev eth0" for ip in pod.extra_ips]
        batch(Netns(pod.netns), cmds)
    # the gateway forwards but knows only the node network, so it answers what it
    # cannot route with ICMP net-unreachable, as an upstream router would
    _sysctls(ROUTER, {"net.ipv4.ip_forward": "1", "net.ipv4.conf.all.rp_filter": "0"})
    _sysctls(NODE_NET, {"net.ipv4.ip_forward": "1",
                        "net.bridge.bridge-nf-call-iptables": "0"})


def lab_namespaces_present() -> list[Netns]:
    """Every namespace with the lab's prefix, including ones a crashed run left."""
    return [ns for ns in ours() if ns.name.startswith(NETNS_PREFIX)]
