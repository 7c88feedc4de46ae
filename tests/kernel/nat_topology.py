"""A node with a CNI bridge, one pod, an uplink and a host beyond it, with kube-proxy
style NAT: enough to see Service DNAT and MASQUERADE on the real kernel.

    pod (10.42.0.5) --veth-- [cni0 10.42.0.1]  node  [eth0 192.168.1.11] --veth-- ext (192.168.1.1,
                                                                                      192.168.2.10)
ClusterIP 10.43.0.10:80 is DNATed to 192.168.1.1:8080 (a backend on the ext side); pod
traffic leaving eth0 is masqueraded unless `masquerade=False`; NodePort 30080 on the
node's address is DNATed to the pod's 8080.
"""

from __future__ import annotations

from dataclasses import dataclass

from tracer.lab.netns import Netns, veth

POD_IP, NODE_IP, EXT_IP, EXT_HOST = "10.42.0.5", "192.168.1.11", "192.168.1.1", "192.168.2.10"
VIP, VIP_PORT, BACKEND_PORT = "10.43.0.10", 80, 8080
NODE_PORT, POD_PORT = 30080, 8080


@dataclass
class NatNode:
    prefix: str
    masquerade: bool = True

    def __post_init__(self) -> None:
        self.node = Netns(f"{self.prefix}-node")
        self.pod = Netns(f"{self.prefix}-pod")
        self.ext = Netns(f"{self.prefix}-ext")

    def up(self) -> NatNode:
        self.down()
        for ns in (self.node, self.pod, self.ext):
            ns.create()
        self.node.ip("link", "add", "name", "cni0", "type", "bridge")
        self.node.ip("addr", "add", "10.42.0.1/24", "dev", "cni0")
        self.node.ip("link", "set", "cni0", "up")
        veth(self.node, "vethpod0", self.pod, "eth0")
        self.node.ip("link", "set", "vethpod0", "master", "cni0")
        self.pod.ip("addr", "add", f"{POD_IP}/24", "dev", "eth0")
        self.pod.ip("route", "add", "default", "via", "10.42.0.1")
        veth(self.node, "eth0", self.ext, "eth0")
        self.node.ip("addr", "add", f"{NODE_IP}/24", "dev", "eth0")
        self.node.ip("route", "add", "default", "via", EXT_IP)
        self.ext.ip("addr", "add", f"{EXT_IP}/24", "dev", "eth0")
        self.ext.ip("addr", "add", f"{EXT_HOST}/24", "dev", "lo")
        self.node.sysctl("net.ipv4.ip_forward", "1")
        rules = ["*nat", ":PREROUTING ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
                 ":POSTROUTING ACCEPT [0:0]",
                 f"-A PREROUTING -d {VIP}/32 -p tcp --dport {VIP_PORT} -j DNAT "
                 f"--to-destination {EXT_IP}:{BACKEND_PORT}",
                 f"-A OUTPUT -d {VIP}/32 -p tcp --dport {VIP_PORT} -j DNAT "
                 f"--to-destination {EXT_IP}:{BACKEND_PORT}",
                 f"-A PREROUTING -d {NODE_IP}/32 -p tcp --dport {NODE_PORT} -j DNAT "
                 f"--to-destination {POD_IP}:{POD_PORT}"]
        if self.masquerade:
            rules.append("-A POSTROUTING -s 10.42.0.0/16 ! -d 10.42.0.0/16 -o eth0 "
                         "-j MASQUERADE")
        self.node.iptables_restore("\n".join([*rules, "COMMIT", ""]))
        return self

    def down(self) -> None:
        for ns in (self.node, self.pod, self.ext):
            ns.delete()
