"""The rules: each a small unit that looks at one connection (or the loose events of
the node) with the node's facts and the Kubernetes names, and either names a root
cause with its evidence or says nothing.

`CONNECTION_RULES` is ordered from the most specific cause to the most general: the
first rule that matches a failed connection claims it, so one connection has one root
cause (a DNS query DNATed to an unreachable pod network is `dns-unreachable`, not also
`pod-network-unreachable`).  A rule that cannot decide yet returns None and is asked
again at the next tick, until the connection is too old.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from typing import Any

from tracer.diagnosis.names import Names, ObjRef, ServiceInfo
from tracer.diagnosis.nodefacts import NodeFacts, Route
from tracer.events.affected import Tally
from tracer.events.finding import Finding
from tracer.events.icmp_names import NO_ROUTE, family_of_proto, icmp_meaning, is_unreachable
from tracer.events.model import DropEvent, Endpoint, SockEvent, TcpEvent, proto_name
from tracer.events.records import event_record
from tracer.pipeline.connections import Connection, ConnectionTable, ep_text
from tracer.pipeline.path import UNTRANSLATED_POD_SOURCE

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
S = 1_000_000_000
SETTLE_NS = 1 * S          # unanswered this long (with no error seen): evaluate anyway
ICMP_MATCH_NS = 5 * S      # an ICMP error received this soon after the packet answers it
NEIGH_MATCH_NS = 10 * S
DNS_SETTLE_NS = 2 * S      # resolvers wait seconds; a slow upstream is not unreachable
EPHEMERAL_PORTS = 32768    # net.ipv4.ip_local_port_range starts here by default


@dataclass
class Context:
    names: Names
    facts: NodeFacts
    table: ConnectionTable
    node_netns: int | None = None
    pod_networks: list[Network] = field(default_factory=list)
    service_networks: list[Network] = field(default_factory=list)
    now_ns: int = 0
    # the keys of the findings made so far (the engine's own table): a cause seen
    # before needs its new connection counted, not its whole text written again
    known: Container[str] = field(default_factory=frozenset)

    # --- naming -----------------------------------------------------------------------

    def node_ref(self) -> ObjRef | None:
        if self.facts.node:
            return ObjRef("Node", None, self.facts.node)
        for ip in self.facts.local_ips():
            ref = self.names.node_by_ip(ip)
            if ref is not None:
                return ref
        return None

    def node_name(self) -> str:
        ref = self.node_ref()
        return ref.name if ref else "this node"

    def who(self, ip: str | None, uid: str | None = None) -> tuple[str, ObjRef | None]:
        """A phrase naming the owner of `ip` (or of pod `uid`), and its object."""
        pod = self.names.pod_by_uid(uid) or self.names.pod_by_ip(ip)
        if pod is not None:
            return f"pod {pod.namespace}/{pod.name}" + (f" ({ip})" if ip else ""), pod
        node = self.names.node_by_ip(ip)
        if node is not None or self.facts.is_local(ip):
            ref = node or self.node_ref()
            return f"node {ref.name if ref else 'this node'} ({ip})", ref
        return str(ip), None

    def client(self, c: Connection) -> tuple[str, ObjRef | None]:
        uid = next((t.pod.uid for t in self.table.tcp_for(c) if t.pod is not None), None)
        return self.who(c.src.ip, uid)

    # --- addresses --------------------------------------------------------------------

    def inside(self, ip: str | None, nets: list[Network]) -> bool:
        if ip is None:
            return False
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(addr in n for n in nets if n.version == addr.version)

    def in_node_netns(self, netns: int) -> bool:
        return self.node_netns is None or netns == self.node_netns


class Wait:
    """A rule's answer when the connection is its to judge, but not yet: the rules
    after it must not claim it meanwhile."""


WAIT = Wait()


@dataclass(slots=True)
class Repeat:
    """A rule's answer for a connection whose cause already has its finding: what the
    finding's totals need (one more connection, when, from whom), without the summary,
    evidence and fix a new finding would build.  In a storm nearly every connection
    is one of these."""
    key: str
    seen_ns: int
    affected: Tally


def _repeat(ctx: Context, c: Connection, kind: str, key: str) -> Repeat | None:
    full = f"{kind}|{key}"
    return Repeat(full, c.first_ns, _sources(ctx, c)) if full in ctx.known else None


def _svc_text(svc: ServiceInfo, ep: Endpoint) -> str:
    return f"Service {svc.ref.namespace}/{svc.ref.name} ({ep_text(ep.ip, ep.port)})"


def _drop(d: DropEvent) -> dict[str, Any]:
    rec = event_record(d)
    return {k: rec[k] for k in ("kind", "time", "netns", "ifname", "proto", "src", "dst",
                                "reason", "location", "count", "forwarding") if k in rec}


def _route(r: Route | None, ip: str | None) -> dict[str, Any]:
    return {"kind": "route-lookup", "destination": ip, "table": "main",
            "route": r.text if r is not None else None}


def _tcp(ctx: Context, c: Connection) -> list[dict[str, Any]]:
    out = []
    for t in ctx.table.tcp_for(c):
        if t.event in ("failed", "reset_sent"):
            rec = event_record(t)
            out.append({k: rec[k] for k in ("kind", "time", "event", "src", "dst", "error",
                                            "syn_retransmits")})
    return out[:2]


def _service_of(ctx: Context, c: Connection) -> ServiceInfo | None:
    return (ctx.names.service_by_ip(c.dst.ip, c.dst.port)
            or ctx.names.service_by_external_ip(c.dst.ip, c.dst.port)
            or (ctx.names.service_by_node_port(c.dst.port)
                if ctx.names.node_by_ip(c.dst.ip) or ctx.facts.is_local(c.dst.ip) else None))


def _finding(ctx: Context, c: Connection, kind: str, summary: str, objects: list[ObjRef | None],
             evidence: list[dict[str, Any]], fix: str, key: str,
             ambiguity: str | None = None) -> Finding:
    objs = [o for o in objects if o is not None]
    return Finding(kind=kind, severity="error", summary=summary, objects=objs,
                   evidence=[c.record(), *evidence], fix=fix,
                   key=f"{kind}|{key}", first_seen_ns=c.first_ns, ambiguity=ambiguity,
                   last_seen_ns=c.first_ns, affected=_sources(ctx, c))


def _sources(ctx: Context, c: Connection) -> Tally:
    """Whom the connection came from; a kernel-folded storm behind it counts its other
    sources as the kernel estimated them, unnamed."""
    t = Tally()
    pod = ctx.names.pod_by_ip(c.src.ip)
    t.add(f"pod {pod.namespace}/{pod.name}" if pod is not None else str(c.src.ip))
    for d in c.drops:
        if d.aggregated is not None and d.aggregated.sources > 1:
            t.add_unnamed(d.aggregated.sources - 1, exact=d.aggregated.exact_sources)
            break
    return t


def _node_drops(ctx: Context, c: Connection, *reasons: str) -> list[DropEvent]:
    return [d for d in c.drops if d.reason in reasons and ctx.in_node_netns(d.netns)]


# --- connection rules, most specific first ---------------------------------------------

def rp_filter_drop(ctx: Context, c: Connection) -> Finding | None:
    drops = _node_drops(ctx, c, "IP_RPFILTER")
    if not drops:
        return None
    d = drops[0]
    iface = d.ifname or (d.forwarding.iface if d.forwarding else None) or "?"
    back = ctx.facts.lookup(c.src.ip)
    sender, sref = ctx.client(c)
    target, tref = ctx.who(c.dst.ip)
    node = ctx.node_name()
    via = f"via {back.dev}" if back is not None and back.dev else "nowhere"
    return _finding(
        ctx, c, "rp-filter-drop",
        f"{node} drops traffic from {sender} to {target} arriving on {iface}: reverse-path "
        f"filtering (rp_filter) finds the route back to {c.src.ip} {via}, not {iface}",
        [sref, tref, ctx.node_ref()], [_drop(d), _route(back, c.src.ip),
                                       {"kind": "sysctl", "name": f"net.ipv4.conf.{iface}"
                                        ".rp_filter", "effective": ctx.facts.rp_filter(iface)}],
        f"route {c.src.ip}'s network back through {iface} on {node} (e.g. `ip route add "
        f"<its CIDR> via <the pod's address> dev {iface}`), or set loose reverse-path "
        f"filtering: `sysctl -w net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.{iface}."
        "rp_filter=2`", f"{node}|{iface}")


def ip_forward_disabled(ctx: Context, c: Connection) -> Finding | None:
    drops = [d for d in _node_drops(ctx, c, "IP_INADDRERRORS")
             if (d.forwarding is not None and d.forwarding.ip_forward == 0)
             or ctx.facts.sysctl("net.ipv4.ip_forward") == 0]
    if not drops:
        return None
    who, ref = ctx.client(c)
    node = ctx.node_name()
    return _finding(
        ctx, c, "ip-forward-disabled",
        f"{node} does not forward: {who}'s traffic to {ep_text(c.dst.ip, c.dst.port)} "
        f"is dropped on {drops[0].ifname} because net.ipv4.ip_forward=0",
        [ref, ctx.node_ref()],
        [_drop(drops[0]), {"kind": "sysctl", "name": "net.ipv4.ip_forward",
                           "value": ctx.facts.sysctl("net.ipv4.ip_forward")}],
        f"on {node}: `sysctl -w net.ipv4.ip_forward=1` and persist it in /etc/sysctl.d/ "
        "(kubelet and the CNI need it; find what turned it off)", node)


def service_no_endpoints(ctx: Context, c: Connection) -> Finding | None:
    if c.dnat or (c.answered and not c.refused):
        return None
    rejected = [i for i in c.icmp_sent if i.meaning == "port-unreachable"]
    refused = [t for t in ctx.table.tcp_for(c) if t.error == "ECONNREFUSED"]
    if not rejected and not (refused and _node_drops(ctx, c, "NETFILTER_DROP")):
        return None
    svc = ctx.names.service_by_ip(c.dst.ip, c.dst.port)
    in_cidr = ctx.inside(c.dst.ip, ctx.service_networks)
    if svc is None and not in_cidr:
        return None
    if svc is not None and svc.ready_endpoints > 0:
        return None    # rejected with endpoints: a firewall rule, not this
    who, ref = ctx.client(c)
    what = _svc_text(svc, c.dst) if svc else f"the Service at {ep_text(c.dst.ip, c.dst.port)}"
    ev: list[dict[str, Any]] = [
        {"kind": "icmp", "meaning": i.meaning, "src": ep_text(i.src.ip, i.src.port),
         "dst": ep_text(i.dst.ip, i.dst.port), "ifname": i.ifname} for i in rejected[:1]]
    ev += [_drop(d) for d in _node_drops(ctx, c, "NETFILTER_DROP")[:1]] + _tcp(ctx, c)
    if svc is not None:
        ev.append({"kind": "endpoints", "service": f"{svc.ref.namespace}/{svc.ref.name}",
                   "ready": svc.ready_endpoints, "known": svc.endpoints_known})
    sel = f"-n {svc.ref.namespace} {svc.ref.name}" if svc else "<name>"
    return _finding(
        ctx, c, "service-no-endpoints",
        f"{what} has no ready endpoints: {ctx.node_name()} rejects {who}'s connections to it "
        f"(kube-proxy's REJECT, {'ICMPv6' if ':' in str(c.dst.ip) else 'ICMP'} "
        "port-unreachable)",
        [svc.ref if svc else None, ref],
        ev, f"make pods matching the Service's selector run and become Ready (`kubectl get "
        f"endpointslices -l kubernetes.io/service-name={svc.ref.name if svc else '<name>'}"
        f"`, `kubectl describe svc {sel}`), or fix the selector",
        f"{svc.ref.namespace}/{svc.ref.name}" if svc else f"{c.dst.ip}:{c.dst.port}",
        None if svc else "no metadata: the Service's name and endpoints would confirm it")


def externalip_untranslated(ctx: Context, c: Connection) -> Finding | None:
    if c.dnat or c.answered or not ctx.facts.is_local(c.src.ip):
        return None
    svc = ctx.names.service_by_external_ip(c.dst.ip, c.dst.port)
    if svc is None:
        return None
    who, ref = ctx.client(c)
    ev: list[dict[str, Any]] = [
        {"kind": "nat", "translation": list(c.nat.translation) if c.nat else [],
         "note": "no DNAT for the externalIP"}]
    neigh = [n for n in ctx.table.neigh if n.addr == c.dst.ip]
    ev += [{"kind": "neigh", "addr": n.addr, "ifname": n.ifname, "state": n.state}
           for n in neigh[:1]]
    ev += [_drop(d) for d in c.drops[:1]] + _tcp(ctx, c)
    return _finding(
        ctx, c, "externalip-untranslated",
        f"{who} on {ctx.node_name()} cannot reach {_svc_text(svc, c.dst)}: traffic from the "
        "node itself to the externalIP is not DNATed to an endpoint, so it goes to an "
        "address nobody owns",
        [svc.ref, ref, ctx.node_ref()], ev,
        "upgrade kube-proxy (its nat OUTPUT → KUBE-SERVICES rules must DNAT externalIPs for "
        "locally generated traffic too), or have node-local clients use the Service's "
        f"ClusterIP {svc.cluster_ips[0] if svc.cluster_ips else ''}".rstrip(),
        f"{svc.ref.namespace}/{svc.ref.name}|{c.dst.ip}")


def connection_refused(ctx: Context, c: Connection) -> Finding | None:
    # the endpoint's kernel found no socket: a RST back (TCP), or the datagram freed
    # with NO_SOCKET (UDP; its ICMP port-unreachable is rate-limited); a SYN only, as
    # late segments of a closed connection meet no socket either
    # ... and to a server's port: a late datagram to a client's ephemeral port that has
    # closed (a slow DNS answer) meets no socket either, and refuses nothing
    no_socket = [d for d in c.drops if d.reason == "NO_SOCKET"
                 and (d.dst.port or 0) < EPHEMERAL_PORTS and (
                     d.proto == 17 or (d.tcp_flags & 0x02 and not d.tcp_flags & 0x10))]
    if _node_drops(ctx, c, "NETFILTER_DROP") or not (c.refused or no_socket) or \
            (c.answered and not c.refused):
        return None
    who, ref = ctx.client(c)
    ep = c.translated_dst
    target, tref = ctx.who(ep.ip)
    svc = ctx.names.service_by_ip(c.dst.ip, c.dst.port) if c.dnat else None
    via = f"{_svc_text(svc, c.dst)} → " if svc else ""
    ev = [h.record() for h in c.reply_hops() if h.tcp_flags & 0x04][:1] + _tcp(ctx, c)
    ev += [_drop(d) for d in no_socket[:1]]
    how = "refused (RST)" if c.refused else "dropped (no socket)"
    return _finding(
        ctx, c, "connection-refused",
        f"{who} → {via}{target}: nothing listens on {proto_name(c.proto)} port {ep.port}, "
        f"the connection is {how}", [ref, svc.ref if svc else None, tref], ev,
        (f"make the Service's targetPort match the port the container listens on (`kubectl "
         f"get svc -n {svc.ref.namespace} {svc.ref.name} -o yaml`, the pod's containerPort "
         "and what its process binds)" if svc else
         f"start the server on port {ep.port} of {target}, or connect to the port it "
         "listens on"), f"{ep.ip}:{ep.port}")


def _netfilter_hook(ctx: Context, src: str | None, dst: str | None) -> str:
    forwarded = not ctx.facts.is_local(src) and not ctx.facts.is_local(dst)
    return "FORWARD (forwarded or bridged traffic)" if forwarded else "INPUT or OUTPUT"


def folded_drop_key(ctx: Context, d: DropEvent) -> str | None:
    """The netfilter-drop cause a kernel-folded storm record belongs to (the same key
    netfilter_drop gives each of its connections); None for other drops."""
    if d.reason != "NETFILTER_DROP" or not ctx.in_node_netns(d.netns):
        return None
    hook = _netfilter_hook(ctx, d.src.ip, d.dst.ip)
    return f"netfilter-drop|{hook}|{d.location.split('+')[0]}|{d.dst.ip}"


def netfilter_drop(ctx: Context, c: Connection) -> Finding | Repeat | None:
    # the connection's opening packet: a mid-stream packet dropped as INVALID (conntrack
    # forgot the connection) is kube-proxy's routine hygiene, not a policy
    drops = [d for d in _node_drops(ctx, c, "NETFILTER_DROP")
             if d.proto != 6 or (d.tcp_flags & 0x02 and not d.tcp_flags & 0x10)]
    if not drops or c.answered:
        return None
    d = drops[0]
    hook = _netfilter_hook(ctx, c.src.ip, c.translated_dst.ip)
    key = f"{hook}|{d.location.split('+')[0]}|{c.translated_dst.ip}"
    repeat = _repeat(ctx, c, "netfilter-drop", key)
    if repeat is not None:
        return repeat
    who, ref = ctx.client(c)
    target, tref = ctx.who(c.translated_dst.ip)
    forwarded = hook.startswith("FORWARD")
    rejected = [i.meaning for i in c.icmp_sent]
    how = f"rejects ({rejected[0]})" if rejected else "silently drops"
    fix = (f"if a NetworkPolicy selects {target}, allow {who} in its ingress rules (`kubectl "
           "get networkpolicy -A`); otherwise find the DROP rule in the host firewall "
           "(`iptables-save -c` / `nft list ruleset`: the counters that grow)") if forwarded \
        else (f"find the rule in the host firewall of {ctx.node_name()} (filter INPUT/OUTPUT:"
              " `iptables-save -c` / `nft list ruleset`, the counters that grow) and allow "
              f"port {c.translated_dst.port}")
    return _finding(
        ctx, c, "netfilter-drop",
        f"a firewall rule on {ctx.node_name()} {how} {who}'s traffic to "
        f"{target} port {c.translated_dst.port} (hook {hook}, in {d.location.split('+')[0]})",
        [ref, tref], [_drop(d), {"kind": "hook", "hook": hook, "function": d.location}],
        fix, key,
        "a NetworkPolicy and a host firewall rule look the same to the kernel: the "
        "matching rule's packet counter (`iptables-save -c`) tells which" if forwarded
        else None)


def _gateway_failed(ctx: Context, c: Connection) -> tuple[Route, list[Any]] | None:
    route = ctx.facts.lookup(c.translated_dst.ip)
    if route is None or route.gateway is None:
        return None
    neigh = [n for n in ctx.table.neigh if n.addr == route.gateway
             and ctx.in_node_netns(n.netns)
             and c.first_ns - NEIGH_MATCH_NS <= n.wall_ns <= c.last_ns + NEIGH_MATCH_NS]
    drops = _node_drops(ctx, c, "NEIGH_FAILED")
    if not neigh and not drops:
        return None
    return route, [*neigh[:1], *drops[:1]]


def nexthop_unreachable(ctx: Context, c: Connection) -> Finding | None:
    if c.answered:
        return None
    hit = _gateway_failed(ctx, c)
    if hit is None:
        return None
    route, evs = hit
    gw = route.gateway or "?"
    adjacent = ctx.facts.on_connected_subnet(gw, route.dev)
    subnets = ", ".join(ctx.facts.connected_subnets(route.dev)) or "none"
    why = ("does not answer ARP" if adjacent else
           f"is not on {route.dev}'s connected subnet ({subnets}) and does not answer ARP")
    who, ref = ctx.client(c)
    target, tref = ctx.who(c.translated_dst.ip)
    svc = ctx.names.service_by_ip(c.dst.ip, c.dst.port) if c.dnat else None
    node_of = ctx.names.node_of_pod_ip(c.translated_dst.ip)
    ev: list[dict[str, Any]] = [_route(route, c.translated_dst.ip)]
    for e in evs:
        ev.append(_drop(e) if isinstance(e, DropEvent) else
                  {"kind": "neigh", "addr": e.addr, "ifname": e.ifname, "event": e.event,
                   "state": e.state, "probes": e.probes})
    return _finding(
        ctx, c, "nexthop-unreachable",
        f"{ctx.node_name()} cannot reach {target}"
        + (f" (endpoint of {_svc_text(svc, c.dst)})" if svc else "")
        + f" for {who}: its route `{route.text}` uses next hop {gw}, which {why}",
        [ref, svc.ref if svc else None, tref, node_of, ctx.node_ref()], ev,
        f"point the route at a next hop on a connected subnet (host-gw needs the nodes on "
        f"one L2 segment): e.g. `ip route replace {route.dst} via <the node's address on "
        f"{route.dev}'s subnet>`, or use an overlay backend (vxlan) between these nodes",
        f"{route.dst}|{gw}")


def dns_unreachable(ctx: Context, c: Connection) -> Finding | Wait | None:
    if not c.dnat or c.answered:
        return None
    svc = ctx.names.service_by_ip(c.dst.ip, c.dst.port)
    if svc is None and c.dst.port != 53:
        return None
    if svc is not None and not ctx.names.is_cluster_dns(svc):
        return None
    if ctx.now_ns - c.first_ns < DNS_SETTLE_NS:
        return WAIT
    ep = c.translated_dst
    target, tref = ctx.who(ep.ip)
    node_of = ctx.names.node_of_pod_ip(ep.ip)
    route = ctx.facts.lookup(ep.ip)
    who, ref = ctx.client(c)
    here = ctx.node_name()
    remote = node_of is not None and node_of.name != here
    why, ambiguity = _reach(ctx, ep.ip, route, node_of)
    svc_text = _svc_text(svc, c.dst) if svc else f"DNS at {ep_text(c.dst.ip, c.dst.port)}"
    return _finding(
        ctx, c, "dns-unreachable",
        f"DNS queries from {who} to {svc_text} get no answer: {here} sends them to the "
        f"backend {target}" + (f" on node {node_of.name}" if remote and node_of else "")
        + f", and {why}", [svc.ref if svc else None, tref, node_of, ref, ctx.node_ref()],
        [_route(route, ep.ip), *_tcp(ctx, c)], _reach_fix(ctx, ep.ip, route, node_of),
        f"{svc.ref.namespace}/{svc.ref.name}" if svc else f"{c.dst.ip}:{c.dst.port}",
        ambiguity)


def _reach(ctx: Context, ip: str | None, route: Route | None,
           node_of: ObjRef | None) -> tuple[str, str | None]:
    """Why `ip` (a pod on another node) is not reachable from here, and what would tell
    when the node's routes cannot."""
    cidr = ctx.names.node_pod_cidr(node_of.name) if node_of else None
    net = f"{node_of.name}'s pod network {cidr}" if node_of and cidr else f"{ip}"
    if route is None:
        return f"{ctx.node_name()} has no route to {net}", None
    if route.is_default:
        return (f"{ctx.node_name()} has no route to {net}: it follows the default route "
                f"via {route.gateway or route.dev}, which does not carry pod traffic", None)
    if route.type != "unicast":
        return f"{ctx.node_name()}'s route to {net} is `{route.text}`", None
    return (f"nothing came back over `{route.text}`",
            f"the route exists: trace {node_of.name if node_of else 'the other node'} to see "
            "whether the packet arrives there and what happens to it")


def _reach_fix(ctx: Context, ip: str | None, route: Route | None,
               node_of: ObjRef | None) -> str:
    cidr = ctx.names.node_pod_cidr(node_of.name) if node_of else None
    dest = cidr or f"{ip}/32"
    if route is None or route.is_default or route.type != "unicast":
        return (f"restore the route to {dest} on {ctx.node_name()} (the CNI's job: check the "
                f"flannel/calico agent on {ctx.node_name()} and "
                f"{node_of.name if node_of else 'the other node'}; host-gw: `ip route add "
                f"{dest} via <{node_of.name if node_of else 'that node'}'s address>`)")
    return f"check the path to {dest} over `{route.text}` and the pod on the other end"


def pod_network_unreachable(ctx: Context, c: Connection) -> Finding | None:
    if c.answered:
        return None
    ep = c.translated_dst
    node_of = ctx.names.node_of_pod_ip(ep.ip)
    in_pods = ctx.inside(ep.ip, ctx.pod_networks) or node_of is not None
    if not in_pods or (node_of is not None and node_of.name == ctx.node_name()):
        return None
    route = ctx.facts.lookup(ep.ip)
    if route is not None and not route.is_default and route.type == "unicast":
        return None   # a route exists: the cause is elsewhere (next hop, the far node)
    if ctx.facts.is_local(ep.ip) or ctx.inside(ep.ip, _local_pod_nets(ctx)):
        return None
    icmp = _icmp_back(ctx, c, route)
    if route is not None and route.is_default and not icmp and not c.left_via("uplink") \
            and ctx.now_ns - c.first_ns < SETTLE_NS:
        return None
    who, ref = ctx.client(c)
    target, tref = ctx.who(ep.ip)
    svc = _service_of(ctx, c) if c.dnat else None
    why, ambiguity = _reach(ctx, ep.ip, route, node_of)
    how = f"{_svc_text(svc, c.dst)} is DNATed to {target}" if svc else (
        f"traffic DNATed to {target}" if c.dnat else f"traffic to {target}")
    ev: list[dict[str, Any]] = [_route(route, ep.ip)]
    ev += [{"kind": "icmp-received", "from": i.src.ip, "to": i.dst.ip, "ifname": i.ifname,
            "icmp": {"type": i.icmp_type, "code": i.icmp_code}} for i in icmp[:1]]
    return _finding(
        ctx, c, "pod-network-unreachable",
        f"{how}" + (f" on node {node_of.name}" if node_of else "") + f" for {who}, and {why}",
        [svc.ref if svc else None, tref, node_of, ref, ctx.node_ref()], ev,
        _reach_fix(ctx, ep.ip, route, node_of), f"{ep.ip}|{node_of.name if node_of else ''}",
        ambiguity)


def _local_pod_nets(ctx: Context) -> list[Network]:
    cidr = ctx.names.node_pod_cidr(ctx.node_name())
    return [ipaddress.ip_network(cidr, strict=False)] if cidr else []


def _icmp_back(ctx: Context, c: Connection, route: Route | None) -> list[Any]:
    """ICMP unreachable errors the node received, soon after the connection started, from
    the next hop it was sent to, addressed to the connection's source (as translated)."""
    srcs = {c.src.ip, c.translated_src.ip}
    return [i for i in ctx.table.icmp_in
            if is_unreachable(i.proto, i.icmp_type) and i.dst.ip in srcs
            and i.direction == "ingress"
            and (route is None or route.gateway is None or i.src.ip == route.gateway)
            and c.first_ns - S // 10 <= i.wall_ns <= c.first_ns + ICMP_MATCH_NS]


def no_route(ctx: Context, c: Connection) -> Finding | None:
    if c.answered:
        return None
    ep = c.translated_dst
    route = ctx.facts.lookup(ep.ip)
    icmp = [i for i in _icmp_back(ctx, c, route)
            if icmp_meaning(i.icmp_type, i.icmp_code, family_of_proto(i.proto)) in NO_ROUTE]
    failed_lookup = [r for r in ctx.table.routes if r.dst.ip == ep.ip
                     and ctx.in_node_netns(r.netns) and r.src.ip in (c.src.ip, c.translated_src.ip)
                     and c.first_ns - S <= r.wall_ns <= c.first_ns + ICMP_MATCH_NS]
    if route is not None and route.type == "unicast" and not route.is_default:
        return None
    if route is not None and route.is_default and not icmp:
        return None     # the default route may well reach it: only an error says it did not
    if route is None and not failed_lookup and not icmp:
        return None
    who, ref = ctx.client(c)
    node = ctx.node_name()
    if route is None:
        where = f"{node} has no route to {ep.ip} in table main"
    elif route.is_default:
        gw = route.gateway or route.dev
        where = (f"{node} has no route to {ep.ip} in table main other than the default route "
                 f"via {gw}, and {gw} answered "
                 + (icmp_name(icmp[0].proto, icmp[0].icmp_type, icmp[0].icmp_code) if icmp
                    else "nothing"))
    else:
        where = f"{node}'s route to {ep.ip} is `{route.text}`"
    ev: list[dict[str, Any]] = [_route(route, ep.ip)]
    ev += [{"kind": "icmp-received", "from": i.src.ip, "to": i.dst.ip, "ifname": i.ifname,
            "icmp": {"type": i.icmp_type, "code": i.icmp_code}} for i in icmp[:1]]
    ev += [{"kind": "route", "dst": r.dst.ip, "error": r.error, "table": r.table}
           for r in failed_lookup[:1]] + _tcp(ctx, c)
    dest = _guess_net(ep.ip)
    return _finding(
        ctx, c, "no-route",
        f"{who} cannot reach {ep_text(ep.ip, ep.port)}: {where}",
        [ref, ctx.node_ref()], ev,
        f"add the route on {node}: `ip route add {dest} via <the gateway that reaches it>` "
        "(and make it persistent in the node's network configuration)",
        f"{dest}|{node}",
        "the node's routes were not read: `ip route get " + str(ep.ip) + "` on " + node
        + " confirms" if not ctx.facts.known else None if route is None else
        f"the /24 is a guess: the network that holds {ep.ip} is what needs the route")


def icmp_name(proto: int, t: int, code: int) -> str:
    family = family_of_proto(proto)
    return f"ICMP{'v6' if family == 6 else ''} {icmp_meaning(t, code, family)}"


def _guess_net(ip: str | None) -> str:
    try:
        return str(ipaddress.ip_network(f"{ip}/24", strict=False))
    except ValueError:
        return f"{ip}"


def masquerade_missing(ctx: Context, c: Connection) -> Finding | None:
    if c.answered:
        return None
    hop = c.left_via("uplink")
    if hop is None:
        return None
    # the path marker's judgment (its pod networks: the node's own, from its routes),
    # or ours from the cluster's pod networks
    shape = UNTRANSLATED_POD_SOURCE in hop.marks or (
        ctx.inside(hop.src.ip, ctx.pod_networks)
        and not ctx.inside(hop.dst.ip, ctx.pod_networks + ctx.service_networks))
    if not shape:
        return None
    settled = (c.syn_retransmits > 0 or c.failed_socket() is not None
               or any(t.event == "failed" for t in ctx.table.tcp_for(c))
               or ctx.now_ns - c.first_ns >= SETTLE_NS)
    if not settled:
        return None
    who, ref = ctx.client(c)
    node = ctx.node_name()
    nets = list(ipaddress.collapse_addresses(n for n in ctx.pod_networks if n.version == 4))
    cidr = str(nets[0]) if len(nets) == 1 else "<the cluster's pod CIDR>"
    if not nets:
        cidr = _guess_net(hop.src.ip)
    return _finding(
        ctx, c, "masquerade-missing",
        f"{who} cannot reach {ep_text(hop.dst.ip, hop.dst.port)}: its traffic leaves {node} "
        f"via {hop.ifname} with source {hop.src.ip} (not masqueraded), so replies cannot "
        "return", [ref, ctx.node_ref()],
        [hop.record(), *_tcp(ctx, c)],
        f"masquerade pod traffic leaving the cluster network on {node}: `iptables -t nat "
        f"-A POSTROUTING -s {cidr} ! -d {cidr} -j MASQUERADE` (flannel: run with --ip-masq; "
        "calico: natOutgoing on the IP pool; or route the pod network on the far side)",
        f"{node}|{hop.ifname}",
        None if c.proto == 6 else "no reply to a datagram may also be one-way traffic: a "
        "TCP connection from the pod to the same network, or its reply, would confirm")


ConnectionRule = Callable[[Context, Connection], Finding | Repeat | Wait | None]


@dataclass(frozen=True)
class Rule:
    """A rule as data: the kind it names, its check, and the evidence it cannot do
    without (probe families, metadata, the node's state) — so that coverage can say
    which causes could not have been seen."""

    kind: str
    check: ConnectionRule | None      # None: a rule over loose events (engine.py)
    needs: tuple[str, ...]


# probe families: "drops" (skb:kfree_skb), "tc" (flows), "conntrack" (nat), "neigh",
# "route", "icmp" (icmp_send), "tcp", "sock"; and "metadata", "node_state"
RULES: tuple[Rule, ...] = (
    Rule("rp-filter-drop", rp_filter_drop, ("drops", "node_state")),
    Rule("ip-forward-disabled", ip_forward_disabled, ("drops",)),
    Rule("service-no-endpoints", service_no_endpoints, ("icmp", "metadata")),
    Rule("externalip-untranslated", externalip_untranslated,
         ("conntrack", "metadata", "node_state")),
    Rule("connection-refused", connection_refused, ("tc", "tcp")),
    Rule("netfilter-drop", netfilter_drop, ("drops",)),
    Rule("nexthop-unreachable", nexthop_unreachable, ("neigh", "node_state")),
    Rule("dns-unreachable", dns_unreachable, ("conntrack", "node_state")),
    Rule("pod-network-unreachable", pod_network_unreachable,
         ("conntrack", "tc", "metadata", "node_state")),
    Rule("no-route", no_route, ("tc", "node_state")),
    Rule("masquerade-missing", masquerade_missing, ("tc",)),
    Rule("hostport-conflict", None, ("sock",)),
)
CONNECTION_RULES: tuple[ConnectionRule, ...] = tuple(r.check for r in RULES if r.check)


# --- rules over the node's loose events --------------------------------------------

def hostport_conflict(ctx: Context, ev: SockEvent) -> Finding | None:
    if ev.error != "EADDRINUSE" or ev.op not in ("bind", "listen") or ev.holder is None \
            or not ctx.in_node_netns(ev.netns):
        return None
    h = ev.holder
    if ev.pod is not None and h.pod is not None and ev.pod.uid == h.pod.uid:
        return None    # a pod's own restart racing itself
    loser = ctx.names.pod_by_uid(ev.pod.uid if ev.pod else None)
    holder = ctx.names.pod_by_uid(h.pod.uid if h.pod else None)
    lose_text = f"pod {loser.namespace}/{loser.name}" if loser else (
        f"pod uid {ev.pod.uid}" if ev.pod else f"process {ev.process.comm}[{ev.process.pid}]")
    hold_text = f"pod {holder.namespace}/{holder.name}" if holder else (
        f"pod uid {h.pod.uid}" if h.pod else f"process {h.comm}[{h.pid}] (not a pod)"
        if h.pid is not None else "a socket whose owner could not be read")
    node = ctx.node_name()
    rec = event_record(ev)
    port = ev.addr.port
    return Finding(
        kind="hostport-conflict", severity="error",
        summary=f"{lose_text} cannot bind {ep_text(ev.addr.ip, port)} on {node}: "
                f"{hold_text} already holds it ({h.proto} {h.state})",
        objects=[o for o in (loser, holder, ctx.node_ref()) if o is not None],
        evidence=[{k: rec[k] for k in ("kind", "time", "op", "src", "error", "process",
                                       "holder") if k in rec}],
        fix=f"only one pod per node can hold {h.proto} port {port} in the host network: "
            "spread the replicas (podAntiAffinity on kubernetes.io/hostname, "
            "topologySpreadConstraints, or a DaemonSet), or give one a different port",
        key=f"hostport-conflict|{node}|{port}", first_seen_ns=ev.wall_ns)


def rp_filter_arp(ctx: Context, ev: TcpEvent) -> Finding | None:
    """A pod sending from an address the node's strict rp_filter rejects gets no answer
    to its ARP requests for its gateway either (arp_process validates the sender
    address like a packet's): its neighbour entry for the node fails in its own
    namespace, and no packet ever reaches the node."""
    if ev.event != "connect" or not ev.src.ip or (ctx.in_node_netns(ev.netns) and \
            ctx.node_netns is not None and ev.netns == ctx.node_netns):
        return None
    failed = [n for n in ctx.table.neigh if n.netns == ev.netns and ctx.facts.is_local(n.addr)
              and ev.wall_ns <= n.wall_ns <= ev.wall_ns + NEIGH_MATCH_NS]
    if not failed:
        return None
    gw = failed[0].addr or ""
    iface = ctx.facts.interface_of(gw)
    back = ctx.facts.lookup(ev.src.ip)
    rp = ctx.facts.rp_filter(iface) if iface else None
    if iface is None or rp != 1 or (back is not None and back.dev == iface):
        return None
    uid = ev.pod.uid if ev.pod else None
    who, ref = ctx.who(ev.src.ip, uid)
    target, tref = ctx.who(ev.dst.ip)
    node = ctx.node_name()
    via = f"via {back.dev}" if back is not None and back.dev else "nowhere"
    rec = event_record(ev)
    return Finding(
        kind="rp-filter-drop", severity="error",
        summary=f"{node} drops traffic from {who} to {target}: "
                f"reverse-path filtering (rp_filter=1 on {iface}) finds the route back to "
                f"{ev.src.ip} {via}, so even its ARP requests for {gw} go unanswered",
        objects=[o for o in (ref, tref, ctx.node_ref()) if o is not None],
        evidence=[{k: rec[k] for k in ("kind", "time", "event", "src", "dst") if k in rec},
                  {"kind": "neigh", "netns": failed[0].netns, "addr": gw,
                   "state": failed[0].state, "probes": failed[0].probes},
                  _route(back, ev.src.ip),
                  {"kind": "sysctl", "name": f"net.ipv4.conf.{iface}.rp_filter",
                   "effective": rp}],
        fix=f"route {ev.src.ip}'s network back through {iface} on {node} (`ip route add "
            f"<its CIDR> via <the pod's address> dev {iface}`), or set loose reverse-path "
            f"filtering: `sysctl -w net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.{iface}."
            "rp_filter=2`",
        key=f"rp-filter-drop|{node}|{iface}", first_seen_ns=ev.wall_ns,
        last_seen_ns=ev.wall_ns, affected=Tally({str(ev.src.ip): 1}, 1))

