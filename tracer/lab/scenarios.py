"""The lab's scenarios: each is the healthy lab with one thing broken the way a field
report found it, the connection that then fails, and what that looks like on the wire.

A scenario is data only: topology knobs, kube-proxy knobs, workload knobs, the probe
that must fail (and how), probes that must still work, and the node to trace.
`healthy` runs every scenario's probe and expects all of them to succeed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tracer.lab.cluster import (
    EXTERNAL_DB_PORT,
    EXTERNAL_HOST,
    EXTERNAL_IP,
    METRICS_PORT,
    VPN_CLIENT_IP,
    ClusterOptions,
)
from tracer.lab.kubeproxy import ProxyOptions
from tracer.lab.topology import TopologyOptions
from tracer.util.errors import UsageError

EXT = "ext"   # a probe's source: the external host rather than a pod
OUTCOMES = ("ok", "timeout", "refused", "unreachable", "error")


@dataclass(frozen=True)
class Probe:
    source: str                 # a pod name, or EXT
    kind: str                   # tcp (echo), http, dns, ping
    host: str
    port: int = 0
    source_ip: str | None = None
    timeout_s: float = 2.0      # ARP failures need > 3 s: the kernel tries 3 times, 1 s apart
    what: str = ""

    def describe(self) -> str:
        target = f"{self.host}:{self.port}" if self.port else self.host
        src = f"{self.source} (from {self.source_ip})" if self.source_ip else self.source
        return f"{src} -> {self.kind} {target}" + (f" ({self.what})" if self.what else "")


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    wire: str = ""                          # where the packets die, and why
    topology: TopologyOptions = field(default_factory=TopologyOptions)
    proxy: ProxyOptions = field(default_factory=ProxyOptions)
    cluster: ClusterOptions = field(default_factory=ClusterOptions)
    probe: Probe | None = None              # the connection that fails here
    expect: tuple[str, ...] = ()            # its possible outcomes (never "ok")
    crashloop_pod: str | None = None        # or: the pod that must crash-loop
    controls: tuple[Probe, ...] = ()        # connections that still work here
    trace_node: str = "node1"               # where `lab run` traces


DB = Probe("client", "tcp", EXTERNAL_HOST, EXTERNAL_DB_PORT, what="legacy database")
EXTIP_FROM_HOST = Probe("agent", "http", EXTERNAL_IP, 80, timeout_s=5,
                        what="web Service externalIP, from a hostNetwork pod")
EXTIP_FROM_OUTSIDE = Probe(EXT, "http", EXTERNAL_IP, 80, what="web externalIP from outside")
ORDERS = Probe("client", "http", "10.43.0.30", 80, what="orders Service")
DNS = Probe("client", "dns", "10.43.0.10", 53, what="kube-dns Service")
NODEPORT_REMOTE = Probe(EXT, "http", "192.168.1.12", 30080,
                        what="web NodePort on node2; its pod runs on node1")
NODEPORT_LOCAL = Probe(EXT, "http", "192.168.1.11", 30080, what="web NodePort on node1")
API = Probe("client", "http", "10.43.0.40", 80, timeout_s=5, what="api Service, pod on node2")
WEB_POD = Probe("client", "http", "10.42.0.11", 8080, what="web-a pod directly")
WEB_SVC = Probe("client", "http", "10.43.0.20", 80, what="web Service")
VPN = Probe("vpn-gw", "http", "10.42.1.11", 8080, source_ip=VPN_CLIENT_IP,
            what="api pod, from the vpn-gw pod's tunnel address")
METRICS = Probe(EXT, "http", "192.168.1.11", METRICS_PORT, what="node1's metrics hostPort")
PING_DB = Probe("client", "ping", EXTERNAL_HOST, what="legacy database host")

METRICS_REPLICA = "metrics-6f7c9b8d4-q9m4d"

_BROKEN: tuple[Scenario, ...] = (
    Scenario(
        "masquerade-missing",
        "pods reach 192.168.2.10 only if node1 masquerades; flannel's MASQUERADE is absent",
        wire="The SYN leaves node1's eth0 with the pod's source 10.42.0.10 (no "
             "FLANNEL-POSTRTG chain in nat POSTROUTING); the router delivers it, but nothing "
             "on 192.168.2.0/24 routes 10.42.0.0/16, so the SYN-ACK never comes back. On "
             "node1: conntrack entry stays SYN_SENT [UNREPLIED]; the client retransmits.",
        proxy=ProxyOptions(masquerade=False), probe=DB, expect=("timeout",),
        controls=(WEB_SVC,)),
    Scenario(
        "ip-forward-disabled",
        "net.ipv4.ip_forward=0 on node1: it routes nothing for its pods",
        wire="The pod's SYN arrives on cni0 and is dropped in node1's routing input "
             "(forwarding off: ip_error, no ICMP sent, IPSTATS INADDRERRORS); it never "
             "reaches FORWARD or eth0. Same-node bridged traffic still works.",
        topology=TopologyOptions(ip_forward=False), probe=DB, expect=("timeout",),
        controls=(WEB_POD,)),
    Scenario(
        "no-route",
        "node1 lacks its static route to 192.168.2.0/24 and follows its default route",
        wire="node1 masquerades the SYN and sends it to the default gateway 192.168.1.254, "
             "which has no route to 192.168.2.0/24 and answers ICMP net-unreachable; node1's "
             "conntrack maps the ICMP (RELATED) back to the pod, whose connect() fails with "
             "ENETUNREACH.",
        topology=TopologyOptions(static_route=False), probe=DB,
        expect=("unreachable", "timeout"), controls=(WEB_SVC,)),
    Scenario(
        "hostport-conflict",
        "two hostNetwork replicas of one Deployment land on node1 and bind port 9100",
        wire="No packet is involved: the second replica's bind(0.0.0.0:9100) fails with "
             "EADDRINUSE in node1's namespace, the container exits 1, and the lab's kubelet "
             "restarts it with back-off (CrashLoopBackOff, restartCount growing). The first "
             "replica keeps serving.",
        cluster=ClusterOptions(metrics_on_one_node=True), crashloop_pod=METRICS_REPLICA,
        controls=(METRICS,)),
    Scenario(
        "externalip-untranslated",
        "a hostNetwork pod calls the web Service's externalIP; the DNAT exists only for "
        "traffic arriving from outside",
        wire="Older kube-proxy rules: nat OUTPUT -> KUBE-SERVICES matches 192.168.1.100:80 "
             "but the KUBE-SVC jump excludes --src-type LOCAL, so only KUBE-MARK-MASQ hits. "
             "The SYN stays addressed to 192.168.1.100, which is on eth0's subnet but owned "
             "by nobody: ARP goes unanswered, the neighbour entry FAILs and the queued SYN is "
             "dropped; connect() fails with EHOSTUNREACH after about 3 s. From outside "
             "(router -> node1 PREROUTING) the same externalIP works.",
        proxy=ProxyOptions(externalip_local=False), probe=EXTIP_FROM_HOST,
        expect=("unreachable", "timeout"), controls=(EXTIP_FROM_OUTSIDE,)),
    Scenario(
        "service-no-endpoints",
        "a pod calls the orders Service after every orders pod is gone",
        wire="filter FORWARD -> KUBE-SERVICES: '-d 10.43.0.30/32 ... has no endpoints -j "
             "REJECT --reject-with icmp-port-unreachable' on node1; the SYN is freed there "
             "and an ICMP port-unreachable goes back to the pod: connection refused at once.",
        cluster=ClusterOptions(orders_running=False), probe=ORDERS, expect=("refused",),
        controls=(WEB_SVC,)),
    Scenario(
        "dns-unreachable",
        "kube-dns is DNATed to the DNS pod on node2, and node1 has no route to node2's "
        "pod network",
        wire="nat PREROUTING KUBE-SVC-TCOU7JCQXEZGVUNU -> KUBE-SEP DNATs 10.43.0.10:53 to "
             "10.42.1.10:53; node1 has no route to 10.42.1.0/24, so the query (source still "
             "10.42.0.10: flannel does not masquerade pod-to-pod) follows the default route "
             "to 192.168.1.254, which has no route for it and none back to the pod: nothing "
             "returns. node1's conntrack entry (udp, UNREPLIED) shows the DNAT.",
        topology=TopologyOptions(node1_pod_route="none"), probe=DNS, expect=("timeout",),
        controls=(WEB_SVC,)),
    Scenario(
        "nodeport-remote-endpoint",
        "the web NodePort answers on node1, which runs the pod, but not on node2",
        wire="On node2: KUBE-NODEPORTS -> KUBE-EXT (mark 0x4000) -> KUBE-SVC -> KUBE-SEP "
             "DNATs to 10.42.0.11:8080; node2 has no route to 10.42.0.0/24, so the SYN "
             "(masqueraded to 192.168.1.12) goes to the default gateway, which answers ICMP "
             "net-unreachable; node2 un-NATs it back to the client.",
        topology=TopologyOptions(node2_pod_route="none"), probe=NODEPORT_REMOTE,
        expect=("unreachable", "timeout"), controls=(NODEPORT_LOCAL,), trace_node="node2"),
    Scenario(
        "nexthop-not-adjacent",
        "node1's host-gw route to node2's pods points at 192.168.3.12, which is on no "
        "connected subnet and answers no ARP",
        wire="The SYN to the api pod (DNATed from 10.43.0.40) is routed 'via 192.168.3.12 dev "
             "eth0 onlink'; node1 ARPs for 192.168.3.12 on eth0 three times, the neighbour "
             "entry goes FAILED and the queued SYN is dropped; ICMP host-unreachable reaches "
             "the pod after about 3 s.",
        topology=TopologyOptions(node1_pod_route="not-adjacent"), probe=API,
        expect=("unreachable", "timeout"), controls=(WEB_SVC,)),
    Scenario(
        "policy-drop",
        "a NetworkPolicy admits only app=frontend to the web pods; the client pod is "
        "app=client",
        wire="The bridged SYN from client to web-a (bridge-nf-call-iptables=1) enters filter "
             "FORWARD -> KUBE-ROUTER-FORWARD -> KUBE-POD-FW-*; KUBE-NWPLCY-* does not mark it, "
             "so '-j DROP' frees it (NETFILTER_DROP). Nothing is sent back; the client "
             "retransmits and times out.",
        cluster=ClusterOptions(web_policy=True), probe=WEB_POD, expect=("timeout",),
        controls=(API,)),
    Scenario(
        "connection-refused",
        "the web Service's targetPort is 8080, but its container listens on 8081",
        wire="The SYN is DNATed to 10.42.0.11:8080 and delivered; no socket listens on 8080, "
             "so web-a's kernel answers RST (conntrack CLOSE) and connect() is refused.",
        cluster=ClusterOptions(web_listen_port=8081), probe=WEB_SVC, expect=("refused",),
        controls=(API,)),
    Scenario(
        "rp-filter-drop",
        "the vpn-gw pod sends from its tunnel address 172.16.0.5, and node1 (strict "
        "rp_filter) has no route back to it through cni0",
        wire="The SYN from 172.16.0.5 arrives on cni0; the reverse-path lookup for "
             "172.16.0.5 chooses the default route on eth0, not cni0, so rp_filter=1 drops it "
             "in routing input (IP_RPFILTER, LINUX_MIB_IPRPFILTER). No ICMP is sent.",
        topology=TopologyOptions(vpn_route=False), probe=VPN, expect=("timeout",),
        controls=(API,)),
)

HEALTHY = Scenario(
    "healthy", "the same nodes, Services and traffic, with nothing broken",
    wire="Every probe of every scenario succeeds; no drops but the kernel's routine ones.",
    controls=tuple(dict.fromkeys(
        [*(s.probe for s in _BROKEN if s.probe), EXTIP_FROM_OUTSIDE, NODEPORT_LOCAL,
         METRICS, PING_DB])))

SCENARIOS: dict[str, Scenario] = {s.name: s for s in (HEALTHY, *_BROKEN)}


def get(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise UsageError(f"unknown scenario {name!r}; `nodetrace lab list` shows the "
                         f"{len(SCENARIOS)} scenarios: {', '.join(SCENARIOS)}") from None
