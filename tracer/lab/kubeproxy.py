"""kube-proxy's iptables mode (and flannel's masquerade, and a NetworkPolicy
implementation's filter chains), as `iptables-restore` text for one lab node.

The shape follows kube-proxy's proxier.go (v1.28+): chain names are the first 16
characters of base32(sha256(...)) exactly as kube-proxy computes them, rules carry
kube-proxy's comments, and the hooks are PREROUTING and OUTPUT (nat) and
INPUT/FORWARD/OUTPUT (filter).  `externalip_local=False` writes externalIP rules in
the shape older kube-proxy releases used, which translate an externalIP only for
traffic arriving from outside the node.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from tracer.lab.cluster import CLUSTER_CIDR, Cluster, NetworkPolicy, Node, Pod, Service, ServicePort

MASQ_MARK = "0x4000/0x4000"
POLICY_MARK = "0x10000/0x10000"


@dataclass(frozen=True)
class ProxyOptions:
    masquerade: bool = True         # flannel's --ip-masq: pod traffic leaving 10.42.0.0/16
    externalip_local: bool = True   # False: the pre-1.2x externalIP rules (outside only)


def _hash(text: str) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


def _port_name(svc: Service, port: ServicePort) -> str:
    return f"{svc.namespace}/{svc.name}:{port.name}"


def svc_chain(svc: Service, port: ServicePort) -> str:
    return "KUBE-SVC-" + _hash(_port_name(svc, port) + port.protocol.lower())


def ext_chain(svc: Service, port: ServicePort) -> str:
    return "KUBE-EXT-" + _hash(_port_name(svc, port) + port.protocol.lower())


def sep_chain(svc: Service, port: ServicePort, endpoint: str) -> str:
    return "KUBE-SEP-" + _hash(_port_name(svc, port) + port.protocol.lower() + endpoint)


def policy_chain(prefix: str, key: str) -> str:
    return prefix + _hash(key)


def _dport(proto: str, dport: int, comment: str) -> str:
    """kube-proxy's order: protocol, comment, then the port match."""
    p = proto.lower()
    return f"-p {p} {_c(comment)} -m {p} --dport {dport}"


def _c(text: str) -> str:
    return f'-m comment --comment "{text}"'


class _Tables:
    def __init__(self) -> None:
        self.chains: dict[str, list[str]] = {}

    def chain(self, name: str) -> list[str]:
        return self.chains.setdefault(name, [])

    def add(self, chain: str, rule: str) -> None:
        self.chain(chain).append(f"-A {chain} {rule}")


_BUILTIN = {"nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
            "filter": ("INPUT", "FORWARD", "OUTPUT")}


def _render(table: str, t: _Tables) -> list[str]:
    lines = [f"*{table}"]
    lines += [f":{name} ACCEPT [0:0]" for name in _BUILTIN[table]]
    lines += [f":{name} - [0:0]" for name in t.chains if name not in _BUILTIN[table]]
    for rules in t.chains.values():
        lines += rules
    lines.append("COMMIT")
    return lines


def _nat_service(nat: _Tables, svc: Service, port: ServicePort, endpoints: tuple[Pod, ...],
                 opts: ProxyOptions) -> None:
    name = _port_name(svc, port)
    svc_c, ext_c = svc_chain(svc, port), ext_chain(svc, port)
    m = _dport(port.protocol, port.port, f"{name} cluster IP")
    nat.add("KUBE-SERVICES", f"-d {svc.cluster_ip}/32 {m} -j {svc_c}")
    nat.add(svc_c, f"! -s {CLUSTER_CIDR} -d {svc.cluster_ip}/32 {m} -j KUBE-MARK-MASQ")
    for ip in svc.external_ips:
        dst = f"-d {ip}/32 {_dport(port.protocol, port.port, f'{name} external IP')}"
        if opts.externalip_local:
            nat.add("KUBE-SERVICES", f"{dst} -j {ext_c}")
        else:
            # Older kube-proxy: masquerade, then translate only what neither came from
            # a bridge nor from a local process, or is addressed to a local address.
            nat.add("KUBE-SERVICES", f"{dst} -j KUBE-MARK-MASQ")
            nat.add("KUBE-SERVICES", f"{dst} -m physdev ! --physdev-is-in "
                                     f"-m addrtype ! --src-type LOCAL -j {svc_c}")
            nat.add("KUBE-SERVICES", f"{dst} -m addrtype --dst-type LOCAL -j {svc_c}")
    if port.node_port:
        nat.add("KUBE-NODEPORTS", f"{_dport(port.protocol, port.node_port, name)} -j {ext_c}")
    if port.node_port or (svc.external_ips and opts.externalip_local):
        nat.add(ext_c, f"{_c(f'masquerade traffic for {name} external destinations')} "
                       "-j KUBE-MARK-MASQ")
        nat.add(ext_c, f"-j {svc_c}")
    n = len(endpoints)
    for i, pod in enumerate(endpoints):
        ep = f"{pod.address}:{port.target_port}"
        sep = sep_chain(svc, port, ep)
        prob = "" if i == n - 1 else \
            f" -m statistic --mode random --probability {1 / (n - i):.11f}"
        nat.add(svc_c, f"{_c(f'{name} -> {ep}')}{prob} -j {sep}")
        nat.add(sep, f"-s {pod.address}/32 {_c(name)} -j KUBE-MARK-MASQ")
        nat.add(sep, f"-p {port.protocol.lower()} {_c(name)} -m {port.protocol.lower()} "
                     f"-j DNAT --to-destination {ep}")


def _flannel(nat: _Tables, node: Node) -> None:
    c = _c("flanneld masq")
    nat.add("POSTROUTING", f"{c} -j FLANNEL-POSTRTG")
    nat.add("FLANNEL-POSTRTG", f"-m mark --mark {MASQ_MARK} {c} -j RETURN")
    nat.add("FLANNEL-POSTRTG", f"-s {node.pod_cidr} -d {CLUSTER_CIDR} {c} -j RETURN")
    nat.add("FLANNEL-POSTRTG", f"-s {CLUSTER_CIDR} -d {node.pod_cidr} {c} -j RETURN")
    nat.add("FLANNEL-POSTRTG", f"! -s {CLUSTER_CIDR} -d {node.pod_cidr} {c} -j RETURN")
    nat.add("FLANNEL-POSTRTG", f"-s {CLUSTER_CIDR} ! -d 224.0.0.0/4 {c} "
                               "-j MASQUERADE --random-fully")
    nat.add("FLANNEL-POSTRTG", f"! -s {CLUSTER_CIDR} -d {CLUSTER_CIDR} {c} "
                               "-j MASQUERADE --random-fully")


def _policy(flt: _Tables, cluster: Cluster, node: Node, pol: NetworkPolicy) -> None:
    """kube-router's shape: a per-pod firewall chain that accepts what a policy chain
    marks and drops the rest (kube-router REJECTs by default; Calico drops)."""
    allowed = cluster.selected(pol.namespace, pol.allow_from)
    np_chain = policy_chain("KUBE-NWPLCY-", f"{pol.namespace}{pol.name}")
    for src in allowed:
        flt.add(np_chain, f"-s {src.address}/32 {_c(f'allow from {src.namespace}/{src.name}')} "
                          f"-j MARK --set-xmark {POLICY_MARK}")
    flt.chain(np_chain)
    for pod in cluster.selected(pol.namespace, pol.pod_selector):
        if pod.node != node.name or pod.host_network:
            continue
        fw = policy_chain("KUBE-POD-FW-", f"{pod.namespace}{pod.name}")
        who = f"POD name:{pod.name} namespace: {pod.namespace}"
        flt.add("KUBE-ROUTER-FORWARD", f"-d {pod.address}/32 "
                f"{_c(f'rule to jump traffic destined to {who} to chain {fw}')} -j {fw}")
        flt.add(fw, f"{_c('rule for stateful firewall for pod')} "
                    "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
        flt.add(fw, f"-d {pod.address}/32 "
                    f"{_c(f'run through nw policy {pol.name}')} -j {np_chain}")
        flt.add(fw, f"-m mark ! --mark {POLICY_MARK} "
                    f"{_c(f'drop traffic destined for {who}')} -j DROP")
        flt.add(fw, f"-j MARK --set-xmark 0x0/{POLICY_MARK.split('/')[1]}")
    if "KUBE-ROUTER-FORWARD" in flt.chains:
        flt.chains["FORWARD"].insert(
            0, f"-A FORWARD {_c('kube-router netpol - TEMCG2JMHZYE7H7T')} -j KUBE-ROUTER-FORWARD")


def render(cluster: Cluster, node: Node, opts: ProxyOptions = ProxyOptions()) -> str:
    """The node's whole nat and filter tables, for `iptables-restore` (which replaces
    both tables, so applying it twice is the same as once)."""
    nat, flt = _Tables(), _Tables()
    for builtin in _BUILTIN["nat"]:
        nat.chain(builtin)
    for builtin in _BUILTIN["filter"]:
        flt.chain(builtin)
    for chain in ("KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"):
        nat.chain(chain)
    nat.add("PREROUTING", f"{_c('kubernetes service portals')} -j KUBE-SERVICES")
    nat.add("OUTPUT", f"{_c('kubernetes service portals')} -j KUBE-SERVICES")
    nat.add("POSTROUTING", f"{_c('kubernetes postrouting rules')} -j KUBE-POSTROUTING")
    nat.add("KUBE-MARK-MASQ", f"-j MARK --set-xmark {MASQ_MARK}")
    nat.add("KUBE-POSTROUTING", f"-m mark ! --mark {MASQ_MARK} -j RETURN")
    nat.add("KUBE-POSTROUTING", "-j MARK --set-xmark 0x4000/0x0")
    nat.add("KUBE-POSTROUTING", f"{_c('kubernetes service traffic requiring SNAT')} "
                                "-j MASQUERADE --random-fully")

    for chain in ("KUBE-EXTERNAL-SERVICES", "KUBE-SERVICES", "KUBE-FORWARD"):
        flt.chain(chain)
    flt.add("INPUT", "-m conntrack --ctstate NEW "
                     f"{_c('kubernetes externally-visible service portals')} "
                     "-j KUBE-EXTERNAL-SERVICES")
    flt.add("FORWARD", f"{_c('kubernetes forwarding rules')} -j KUBE-FORWARD")
    flt.add("FORWARD", f"-m conntrack --ctstate NEW {_c('kubernetes service portals')} "
                       "-j KUBE-SERVICES")
    flt.add("OUTPUT", f"-m conntrack --ctstate NEW {_c('kubernetes service portals')} "
                      "-j KUBE-SERVICES")
    flt.add("KUBE-FORWARD", f"-m conntrack --ctstate INVALID {_c('kubernetes forwarding rules')}"
                            " -j DROP")
    flt.add("KUBE-FORWARD", f"{_c('kubernetes forwarding rules')} -m mark --mark {MASQ_MARK} "
                            "-j ACCEPT")
    flt.add("KUBE-FORWARD", f"{_c('kubernetes forwarding conntrack rule')} "
                            "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")

    for svc in cluster.services:
        endpoints = cluster.endpoints(svc)
        for port in svc.ports:
            if endpoints:
                _nat_service(nat, svc, port, endpoints, opts)
                continue
            none = f"{_port_name(svc, port)} has no endpoints"
            m = _dport(port.protocol, port.port, none)
            for ip in (svc.cluster_ip, *svc.external_ips):
                flt.add("KUBE-SERVICES", f"-d {ip}/32 {m} "
                                         "-j REJECT --reject-with icmp-port-unreachable")
            if port.node_port:
                flt.add("KUBE-EXTERNAL-SERVICES",
                        f"-p {port.protocol.lower()} {_c(none)} -m addrtype --dst-type LOCAL "
                        f"-m {port.protocol.lower()} --dport {port.node_port} "
                        "-j REJECT --reject-with icmp-port-unreachable")
    last = _c("kubernetes service nodeports; NOTE: this must be the last rule in this chain")
    nat.add("KUBE-SERVICES", f"{last} -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS")
    if opts.masquerade:
        _flannel(nat, node)
    for pol in cluster.policies:
        _policy(flt, cluster, node, pol)
    return "\n".join([*_render("nat", nat), *_render("filter", flt), ""])
