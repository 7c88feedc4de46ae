"""The node's forwarding sysctls, read from /proc/sys in the namespace nodetrace runs
in (the node's): /proc/sys/net answers for the reading task's namespace.  Re-read when
the kernel announces a change (tracer/node/netchanges.py); events get the values by a join
in user space, never a read per event."""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from tracer.events.model import Forwarding

SYS = Path("/proc/sys/net")


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class ForwardingSysctls:
    root: Path = SYS
    ip_forward: int | None = None
    ipv6_forwarding: int | None = None
    rp_filter: dict[str, int] = field(default_factory=dict)  # "all", "default", ifname
    local_addresses: frozenset[str] = frozenset()

    def refresh(self, local_addresses: set[str] | None = None) -> None:
        self.ip_forward = _read_int(self.root / "ipv4" / "ip_forward")
        self.ipv6_forwarding = _read_int(self.root / "ipv6" / "conf" / "all" / "forwarding")
        rp: dict[str, int] = {}
        conf = self.root / "ipv4" / "conf"
        if conf.is_dir():
            for entry in conf.iterdir():
                value = _read_int(entry / "rp_filter")
                if value is not None:
                    rp[entry.name] = value
        self.rp_filter = rp
        if local_addresses is not None:
            self.local_addresses = frozenset(local_addresses)

    def for_packet(self, family: int, iface: str | None) -> Forwarding | None:
        """The values deciding whether a packet of `family` arriving on `iface` is
        forwarded: the kernel uses max(conf.all.rp_filter, conf.<iface>.rp_filter)."""
        if family == 6:
            if self.ipv6_forwarding is None:
                return None
            return Forwarding(self.ipv6_forwarding, None, iface)
        if self.ip_forward is None:
            return None
        rp_all = self.rp_filter.get("all")
        rp_dev = self.rp_filter.get(iface) if iface else None
        values = [v for v in (rp_all, rp_dev) if v is not None]
        return Forwarding(self.ip_forward, max(values) if values else None, iface)

    def is_local(self, ip: str | None) -> bool:
        if ip is None:
            return False
        return ip in self.local_addresses or _loopback_or_multicast(ip)


def _loopback_or_multicast(ip: str) -> bool:
    # asked of every event's two addresses: a dotted quad is judged by its first
    # octet without building an address object (a storm's sources are all new)
    head, dot, _ = ip.partition(".")
    if dot and head.isdigit():
        first = int(head)
        return first == 127 or 224 <= first <= 239
    return _v6_loopback_or_multicast(ip)


@functools.lru_cache(maxsize=4096)
def _v6_loopback_or_multicast(ip: str) -> bool:
    try:
        a = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return a.is_loopback or a.is_multicast


def local_addresses() -> set[str]:
    """Every address of the namespace we run in (the node's)."""
    from pyroute2 import IPRoute

    ipr = IPRoute()
    try:
        return {str(a.get("IFA_ADDRESS") or a.get("IFA_LOCAL")) for a in ipr.get_addr()}
    finally:
        ipr.close()
