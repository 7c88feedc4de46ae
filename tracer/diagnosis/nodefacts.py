"""The node's routes, addresses and forwarding sysctls, as the rules need them.

Parsed from the text of tracer/recording/nodestate.py's snapshot (`ip route show table
all`, `ip -6 route show table all`, `ip -o addr show`, /proc/sys/net): the same parser
serves the live node (read again every few seconds), a recording's header and the
committed test fixtures.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
TABLE_IDS = {"main": 254, "local": 255, "default": 253}
ROUTE_TYPES = ("unicast", "local", "broadcast", "multicast", "unreachable", "prohibit",
               "blackhole", "throw", "anycast", "nat")


@dataclass(frozen=True)
class Route:
    dst: Network
    type: str                 # "unicast", "unreachable", "blackhole", ...
    gateway: str | None
    dev: str | None
    table: int
    onlink: bool
    text: str                 # the line as `ip route` printed it

    @property
    def is_default(self) -> bool:
        return self.dst.prefixlen == 0


@dataclass(frozen=True)
class Address:
    ifname: str
    network: ipaddress.IPv4Interface | ipaddress.IPv6Interface


def parse_route(line: str, default: str = "0.0.0.0/0") -> Route | None:
    """One line of `ip route` (`default`: what "default" stands for, "::/0" for
    `ip -6 route`)."""
    words = line.split()
    if not words:
        return None
    rtype = "unicast"
    if words[0] in ROUTE_TYPES:
        rtype, words = words[0], words[1:]
    if not words:
        return None
    try:
        dst: Network = ipaddress.ip_network(default if words[0] == "default" else words[0],
                                            strict=False)
    except ValueError:
        return None
    opts: dict[str, str] = {}
    for i in range(1, len(words) - 1):
        if words[i] in ("via", "dev", "table"):
            opts.setdefault(words[i], words[i + 1])
    table_word = opts.get("table", "main")
    table = TABLE_IDS.get(table_word, int(table_word) if table_word.isdigit() else -1)
    return Route(dst=dst, type=rtype, gateway=opts.get("via"), dev=opts.get("dev"),
                 table=table, onlink="onlink" in words, text=line.strip())


@dataclass
class NodeFacts:
    node: str | None = None          # the Kubernetes node name, when known
    netns: int | None = None
    routes: list[Route] = field(default_factory=list)
    addresses: list[Address] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)
    known: bool = False              # False: nothing about the node could be read
    _local_ips: tuple[tuple[int, int], tuple[str, ...], frozenset[str]] | None = field(
        default=None, init=False, repr=False, compare=False)

    @classmethod
    def from_snapshot(cls, snap: Mapping[str, Any]) -> NodeFacts:
        facts = cls(node=snap.get("node"), netns=snap.get("netns"), known=True)
        for name, default in (("ip_route", "0.0.0.0/0"), ("ip6_route", "::/0")):
            for line in str(snap.get(name, "")).splitlines():
                if line.startswith("#"):
                    continue
                r = parse_route(line, default)
                if r is not None:
                    facts.routes.append(r)
        for line in str(snap.get("ip_addr", "")).splitlines():
            words = line.replace("\\", " ").split()
            if len(words) >= 4 and words[2] in ("inet", "inet6"):
                try:
                    facts.addresses.append(Address(words[1], ipaddress.ip_interface(words[3])))
                except ValueError:
                    continue
        sysctls = snap.get("sysctls")
        if isinstance(sysctls, dict):
            facts.sysctls = {str(k): str(v) for k, v in sysctls.items()}
        return facts

    # --- questions the rules ask ------------------------------------------------------

    def _local(self) -> tuple[tuple[str, ...], frozenset[str]]:
        # formatted once per change of the list: the rules ask of every event, and
        # formatting an IPv6 address costs more than the whole look-up
        key = (id(self.addresses), len(self.addresses))
        if self._local_ips is None or self._local_ips[0] != key:
            ips = tuple(str(a.network.ip) for a in self.addresses)
            self._local_ips = (key, ips, frozenset(ips))
        return self._local_ips[1], self._local_ips[2]

    def local_ips(self) -> tuple[str, ...]:
        """The node's own addresses as text, in the order `ip addr` lists them."""
        return self._local()[0]

    def is_local(self, ip: str | None) -> bool:
        return ip is not None and ip in self._local()[1]

    def lookup(self, ip: str | None, table: int = 254) -> Route | None:
        """The route the node would use for `ip` in `table` (longest prefix)."""
        if ip is None:
            return None
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        best: Route | None = None
        for r in self.routes:
            if r.table == table and r.dst.version == addr.version and addr in r.dst and \
                    (best is None or r.dst.prefixlen > best.dst.prefixlen):
                best = r
        return best

    def connected_subnets(self, ifname: str | None) -> list[str]:
        return [str(a.network.network) for a in self.addresses
                if a.ifname == ifname and not a.network.ip.is_loopback]

    def on_connected_subnet(self, ip: str, ifname: str | None) -> bool:
        addr = ipaddress.ip_address(ip)
        return any(addr in a.network.network for a in self.addresses
                   if a.ifname == ifname and a.network.version == addr.version)

    def sysctl(self, name: str) -> int | None:
        value = self.sysctls.get(name)
        return int(value) if value is not None and value.lstrip("-").isdigit() else None

    def rp_filter(self, ifname: str) -> int | None:
        """The effective value for `ifname`: max(conf.all, conf.<ifname>)."""
        a = self.sysctl("net.ipv4.conf.all.rp_filter")
        i = self.sysctl(f"net.ipv4.conf.{ifname}.rp_filter")
        vals = [v for v in (a, i) if v is not None]
        return max(vals) if vals else None

    def interface_of(self, ip: str) -> str | None:
        """The interface holding `ip`'s connected subnet (cni0 for a local pod)."""
        route = self.lookup(ip)
        return route.dev if route is not None else None


def read_live(node: str | None = None) -> NodeFacts:
    """This namespace's facts now (the namespace nodetrace runs in: the node's)."""
    from tracer.recording import nodestate

    snap: dict[str, Any] = {name: nodestate._run(nodestate.COMMANDS[name])
                            for name in ("ip_addr", "ip_route", "ip6_route")}
    snap["sysctls"] = nodestate.sysctls()
    snap["node"] = node
    return NodeFacts.from_snapshot(snap)
