"""Who holds a port: the socket bound to it in a network namespace, and the process
that has that socket open — for a bind() that failed with EADDRINUSE.

Read from /proc, not sock_diag: /proc/PID/net/{tcp,udp}[6] shows the namespace of PID
without entering it (pyroute2 opens sockets in other namespaces through a forked
helper, which a threaded tracer must avoid), and /proc/PID/fd links name the socket
inode.  Only processes of the failing namespace are scanned.  When no process can be
shown to hold the socket (their fds are closed to us, or none holds it), the socket's
own cgroup names its pod: sock_diag, in our own namespace only (tracer/node/sockdiag.py).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tracer.node.sockdiag import socket_cgroup

PROC = Path("/proc")
TCP_LISTEN = 0x0A
_TCP_STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
               6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN",
               11: "CLOSING"}


@dataclass(frozen=True)
class BoundSocket:
    proto: str        # "tcp" | "udp"
    ip: str
    port: int
    state: str        # TCP state name; "" for UDP
    inode: int


def _hex_ip(text: str) -> str:
    raw = bytes.fromhex(text)
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw[::-1]))
    # /proc prints an IPv6 address as four host-order 32-bit words
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    return str(ipaddress.IPv6Address(words))


def parse_proc_net(text: str, proto: str) -> list[BoundSocket]:
    """Rows of /proc/net/tcp, tcp6, udp or udp6."""
    out = []
    for line in text.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 10:
            continue
        ip_hex, port_hex = cols[1].rsplit(":", 1)
        state = int(cols[3], 16)
        out.append(BoundSocket(proto, _hex_ip(ip_hex), int(port_hex, 16),
                               _TCP_STATES.get(state, str(state)) if proto == "tcp" else "",
                               int(cols[9])))
    return out


def netns_pids(netns_ino: int, proc: Path = PROC) -> list[int]:
    """Processes whose network namespace has this inode."""
    want = f"net:[{netns_ino}]"
    pids = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "ns" / "net") == want:
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def _covers(bound_ip: str, wanted_ip: str | None) -> bool:
    if wanted_ip is None or bound_ip in ("0.0.0.0", "::") or wanted_ip in ("0.0.0.0", "::"):
        return True
    if bound_ip == wanted_ip:
        return True
    # an IPv4 address bound through an AF_INET6 socket: ::ffff:a.b.c.d
    return bound_ip == f"::ffff:{wanted_ip}" or wanted_ip == f"::ffff:{bound_ip}"


def bound_sockets(pid: int | str, port: int, ip: str | None,
                  proc: Path = PROC) -> list[BoundSocket]:
    """Sockets bound to `port` (and `ip`, wildcards match) in pid's namespace; TCP
    listeners first."""
    found: list[BoundSocket] = []
    for name, proto in (("tcp", "tcp"), ("tcp6", "tcp"), ("udp", "udp"), ("udp6", "udp")):
        try:
            text = (proc / str(pid) / "net" / name).read_text()
        except OSError:
            continue
        found += [s for s in parse_proc_net(text, proto)
                  if s.port == port and _covers(s.ip, ip) and s.state != "TIME_WAIT"]
    return sorted(found, key=lambda s: (s.state != "LISTEN", s.proto != "tcp"))


def socket_owners(inode: int, pids: list[int], proc: Path = PROC) -> Iterator[int]:
    link = f"socket:[{inode}]"
    for pid in pids:
        try:
            fds = os.listdir(proc / str(pid) / "fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(proc / str(pid) / "fd" / fd) == link:
                    yield pid
                    break
            except OSError:
                continue


@dataclass(frozen=True)
class Holder:
    socket: BoundSocket
    pid: int | None           # None: no process could be shown to have it open
    comm: str | None
    cgroup_id: int | None = None   # the socket's cgroup, asked only when pid is None


def own_netns(proc: Path = PROC) -> int | None:
    try:
        return os.stat(proc / "self" / "ns" / "net").st_ino
    except OSError:
        return None


def find_holder(netns_ino: int, port: int, ip: str | None, *, exclude_pid: int = 0,
                proc: Path = PROC) -> Holder | None:
    """The socket holding (ip, port) in the namespace, and a process that has it open
    (not `exclude_pid`, the one whose bind failed) — else the socket's cgroup."""
    pids = netns_pids(netns_ino, proc)
    ours = own_netns(proc) == netns_ino
    # our own namespace is readable through /proc/self even when no process of it is
    reader: int | str | None = "self" if ours else (pids[0] if pids else None)
    if reader is None:
        return None
    sockets = bound_sockets(reader, port, ip, proc)
    if not sockets:
        return None
    others = [p for p in pids if p != exclude_pid]
    for sock in sockets:
        for pid in socket_owners(sock.inode, others, proc):
            try:
                comm = (proc / str(pid) / "comm").read_text().strip()
            except OSError:
                comm = None
            return Holder(sock, pid, comm)
    held = sockets[0]
    return Holder(held, None, None, socket_cgroup(held.proto, held.inode) if ours else None)
