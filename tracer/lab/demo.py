"""The built-in drop demo: a node namespace, a pod joined to it by a veth, and an
unrelated pair of namespaces outside the node.  The node firewall drops one TCP port
(as a NetworkPolicy would) and nothing listens on one UDP port.  Used by
`nodetrace demo` and by the kernel tests as their smallest real topology."""

from __future__ import annotations

from dataclasses import dataclass

from tracer.lab.netns import Netns, veth

DROPPED_TCP_PORT = 5432
CLOSED_UDP_PORT = 5353


@dataclass(frozen=True)
class Addr:
    v4: str
    v6: str


@dataclass
class DropDemo:
    prefix: str = "nt-demo"
    node_addr: Addr = Addr("10.88.0.1", "fd00:88::1")
    pod_addr: Addr = Addr("10.88.0.2", "fd00:88::2")
    out_a_addr: Addr = Addr("10.89.0.1", "fd00:89::1")
    out_b_addr: Addr = Addr("10.89.0.2", "fd00:89::2")

    def __post_init__(self) -> None:
        self.node = Netns(f"{self.prefix}-node")
        self.pod = Netns(f"{self.prefix}-pod")
        self.out_a = Netns(f"{self.prefix}-out-a")
        self.out_b = Netns(f"{self.prefix}-out-b")

    def namespaces(self) -> list[Netns]:
        return [self.node, self.pod, self.out_a, self.out_b]

    def up(self) -> DropDemo:
        self.down()
        for ns in self.namespaces():
            ns.create()
        self._pair(self.node, "veth-pod", self.node_addr, self.pod, "eth0", self.pod_addr)
        self._pair(self.out_a, "eth0", self.out_a_addr, self.out_b, "eth0", self.out_b_addr)
        drop = ("*filter\n:INPUT ACCEPT [0:0]\n"
                f"-A INPUT -p tcp --dport {DROPPED_TCP_PORT} -j DROP\nCOMMIT\n")
        for ns in (self.node, self.out_b):
            ns.iptables_restore(drop)
            ns.iptables_restore(drop, v6=True)
        return self

    @staticmethod
    def _pair(a: Netns, a_if: str, a_addr: Addr, b: Netns, b_if: str, b_addr: Addr) -> None:
        veth(a, a_if, b, b_if)
        for ns, ifname, addr in ((a, a_if, a_addr), (b, b_if, b_addr)):
            ns.ip("addr", "add", f"{addr.v4}/24", "dev", ifname)
            # nodad: usable at once, no 1-2 s of duplicate address detection
            ns.ip("-6", "addr", "add", f"{addr.v6}/64", "dev", ifname, "nodad")

    def down(self) -> None:
        for ns in self.namespaces():
            ns.delete()
