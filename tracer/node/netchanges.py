"""Has this namespace's network configuration changed since I last looked?

The session re-reads interfaces, pod namespaces, addresses and forwarding sysctls, and
diagnosis re-reads routes; doing that on a 2 s timer cost ~1 % of a CPU on an idle
node (netlink dumps through pyroute2, a /proc walk, three `ip` processes), taken from
the very workload being traced.  The kernel announces every such change on rtnetlink
multicast groups, sysctl changes of forwarding and rp_filter included (RTM_NEWNETCONF),
so a reader re-reads when something was announced, plus a slow safety timer for what
no group announces (a namespace appearing before its veth, for instance).

The socket is non-blocking and never waited on: `due()` drains it from the loop that
already wakes up to drain the ring buffer.  A full socket buffer (ENOBUFS: messages
were lost) counts as a change.
"""

from __future__ import annotations

import errno
import socket
import time

# rtnetlink multicast groups (uapi/linux/rtnetlink.h, enum rtnetlink_groups)
_GROUPS = {
    "link": 1,
    "ipv4_ifaddr": 5,
    "ipv4_route": 7,
    "ipv4_rule": 8,
    "ipv6_ifaddr": 9,
    "ipv6_route": 11,
    "ipv4_netconf": 24,   # net.ipv4.conf.*.forwarding / rp_filter, net.ipv4.ip_forward
    "ipv6_netconf": 25,
}
_NETLINK_ROUTE = 0
SAFETY_S = 30.0
_RCVBUF = 1 << 20


class NetChanges:
    """One reader's view: `due()` is True once after each change announced since the
    socket was opened (open it before the first read), and at least every `safety_s`."""

    def __init__(self, safety_s: float = SAFETY_S, groups: tuple[str, ...] = tuple(_GROUPS)
                 ) -> None:
        self.safety_s = safety_s
        self.changes = 0        # batches of announcements seen (for tests and `doctor`)
        self._last = time.monotonic()
        self._sock: socket.socket | None = None
        mask = 0
        for name in groups:
            mask |= 1 << (_GROUPS[name] - 1)
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK
                                 | socket.SOCK_CLOEXEC, _NETLINK_ROUTE)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
            sock.bind((0, mask))
            self._sock = sock
        except OSError:
            # no announcements: fall back to the timer alone, as often as before
            self.safety_s = min(safety_s, 2.0)

    def _drain(self) -> bool:
        if self._sock is None:
            return False
        seen = False
        while True:
            try:
                if not self._sock.recv(65536):
                    return seen
                seen = True
            except BlockingIOError:
                return seen
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:   # lost some: something changed
                    seen = True
                    continue
                return seen

    def due(self) -> bool:
        changed = self._drain()
        if changed:
            self.changes += 1
        now = time.monotonic()
        if changed or now - self._last >= self.safety_s:
            self._last = now
            return True
        return False

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
