"""The node's interfaces that tc programs watch, and what each one is.

- pod veths: host-side veths whose peer lives in another namespace and that carry no
  global address (CNI bridge ports and point-to-point pod veths alike);
- uplinks: interfaces holding a global address of the node or its default route, that
  are not bridges (a CNI bridge such as cni0 holds the pod gateway, not a node address)
  and not loopback.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

ROLE_POD = "pod"
ROLE_UPLINK = "uplink"


@dataclass(frozen=True)
class Iface:
    ifindex: int
    name: str
    role: str              # "pod" | "uplink"
    kind: str              # link kind: "veth", "bridge", "" for physical...
    addresses: tuple[str, ...]


@contextlib.contextmanager
def _iproute() -> Iterator[Any]:
    from pyroute2 import IPRoute

    ipr = IPRoute()
    try:
        yield ipr
    finally:
        ipr.close()


def discover() -> list[Iface]:
    with _iproute() as ipr:
        links = ipr.get_links()
        addrs: dict[int, list[str]] = {}
        for a in ipr.get_addr():
            if a.get("scope") == 0:  # RT_SCOPE_UNIVERSE: global addresses only
                addrs.setdefault(int(a["index"]), []).append(str(a.get("IFA_ADDRESS")))
        default_oifs: set[int] = set()
        for family in (2, 10):
            for r in ipr.get_routes(family=family, table=254):
                if r.get("dst_len") == 0 and r.get("RTA_OIF") is not None:
                    default_oifs.add(int(r.get("RTA_OIF")))
    out: list[Iface] = []
    for link in links:
        idx = int(link["index"])
        name = str(link.get("IFLA_IFNAME"))
        kind = str(link.get(("linkinfo", "kind")) or "")
        if name == "lo" or kind == "bridge":
            continue
        mine = tuple(addrs.get(idx, ()))
        peer_elsewhere = link.get("IFLA_LINK_NETNSID") is not None
        if mine or idx in default_oifs:
            out.append(Iface(idx, name, ROLE_UPLINK, kind, mine))
        elif kind == "veth" and peer_elsewhere:
            out.append(Iface(idx, name, ROLE_POD, kind, mine))
    return sorted(out, key=lambda i: i.ifindex)


def pod_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Networks the node reaches through its pod interfaces: connected routes on CNI
    bridges (flannel's cni0: the node's pod CIDR) and routes out of pod veths."""
    with _iproute() as ipr:
        links = {int(link["index"]): link for link in ipr.get_links()}
        out = []
        for family in (2, 10):
            for r in ipr.get_routes(family=family, table=254):
                oif = r.get("RTA_OIF")
                dst = r.get("RTA_DST")
                if oif is None or dst is None or r.get("dst_len") == 0:
                    continue
                link = links.get(int(oif))
                if link is None:
                    continue
                kind = link.get(("linkinfo", "kind"))
                pod_veth = kind == "veth" and link.get("IFLA_LINK_NETNSID") is not None
                if kind == "bridge" or (pod_veth and r.get("RTA_GATEWAY") is None
                                        and r.get("scope") == 253 and r.get("proto") != 2):
                    out.append(ipaddress.ip_network(f"{dst}/{r['dst_len']}", strict=False))
    return out


def bridge_ports() -> dict[int, int]:
    """ifindex of each bridge port in our namespace -> its bridge's ifindex."""
    with _iproute() as ipr:
        return {int(link["index"]): int(link.get("IFLA_MASTER"))
                for link in ipr.get_links() if link.get("IFLA_MASTER")}
