"""NAT decisions from conntrack events (ctnetlink multicast), in the node's namespace.

Event-driven rather than polled: a refused or rejected connection's entry lives for
milliseconds, so a periodic dump would miss exactly the failures nodetrace is for.
Only translated connections (IPS_SRC_NAT / IPS_DST_NAT) become `nat` events: when
created, when a reply is first seen, and when destroyed (so "never replied" is a fact,
not an absence).  Messages are parsed with pyroute2's ctnetlink message class; the
socket is a plain AF_NETLINK one because pyroute2 0.9 exposes no group subscription.
"""

from __future__ import annotations

import errno
import logging
import socket
import struct
import time
from typing import Any

from tracer.events.model import IPS_DST_NAT, IPS_SEEN_REPLY, IPS_SRC_NAT, Endpoint, Event, NatEvent

log = logging.getLogger(__name__)

NETLINK_NETFILTER = 12
# NFNLGRP_CONNTRACK_NEW=1, _UPDATE=2, _DESTROY=3 -> bit (group - 1)
GROUPS = 0x1 | 0x2 | 0x4
CT_EVENTS = {0: "new", 2: "destroy"}   # IPCTNL_MSG_CT_NEW is also used for updates
NLM_F_CREATE = 0x400
_NLMSG = struct.Struct("=IHHII")


def _tuple(msg: Any, which: str) -> tuple[int, int, Endpoint, Endpoint]:
    """(family, proto, src, dst) of CTA_TUPLE_ORIG / CTA_TUPLE_REPLY."""
    ip = msg.get((which, "CTA_TUPLE_IP"))
    proto = msg.get((which, "CTA_TUPLE_PROTO"))
    src = ip.get("CTA_IP_V4_SRC") if ip else None
    family = 4
    if src is None and ip is not None:
        src, family = ip.get("CTA_IP_V6_SRC"), 6
    dst = ip.get("CTA_IP_V4_DST") if family == 4 else ip.get("CTA_IP_V6_DST")
    num = int(proto.get("CTA_PROTO_NUM") or 0) if proto else 0
    ports = num in (6, 17, 132)
    sport = proto.get("CTA_PROTO_SRC_PORT") if proto and ports else None
    dport = proto.get("CTA_PROTO_DST_PORT") if proto and ports else None
    return family, num, Endpoint(src, sport), Endpoint(dst, dport)


class ConntrackEvents:
    """Non-blocking reader of ctnetlink events; call `drain()` from the event loop."""

    def __init__(self, netns_ino: int) -> None:
        self.netns_ino = netns_ino
        self.overflows = 0      # ENOBUFS: the kernel dropped events we were too slow for
        self.decode_errors = 0
        self._replied: set[tuple[Any, ...]] = set()
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind((0, GROUPS))
        self.sock.setblocking(False)

    def close(self) -> None:
        self.sock.close()

    def drain(self) -> list[Event]:
        from pyroute2.netlink.nfnetlink.nfctsocket import nfct_msg

        out: list[Event] = []
        while True:
            try:
                data = self.sock.recv(1 << 16)
            except BlockingIOError:
                return out
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    self.overflows += 1
                    continue
                raise
            off = 0
            while off + _NLMSG.size <= len(data):
                length, mtype, flags, _seq, _pid = _NLMSG.unpack_from(data, off)
                if length < _NLMSG.size:
                    break
                try:
                    msg = nfct_msg(data[off:off + length])
                    msg.decode()
                    ev = self._event(msg, mtype & 0xFF, flags)
                except Exception as exc:  # a malformed message must not stop tracing
                    self.decode_errors += 1
                    log.debug("conntrack message: %s", exc)
                    ev = None
                if ev is not None:
                    out.append(ev)
                off += (length + 3) & ~3

    def _event(self, msg: Any, mtype: int, flags: int) -> NatEvent | None:
        status = int(msg.get("CTA_STATUS") or 0)
        if not status & (IPS_SRC_NAT | IPS_DST_NAT):
            return None
        family, proto, osrc, odst = _tuple(msg, "CTA_TUPLE_ORIG")
        _f, _p, rsrc, rdst = _tuple(msg, "CTA_TUPLE_REPLY")
        key = (family, proto, osrc, odst)
        if mtype == 2:
            kind = "destroy"
            self._replied.discard(key)
        elif flags & NLM_F_CREATE:
            kind = "new"
        else:
            # updates are frequent (every TCP state change); report only the first reply
            if not status & IPS_SEEN_REPLY or key in self._replied:
                return None
            kind = "update"
        if status & IPS_SEEN_REPLY and kind != "destroy":
            self._replied.add(key)
        return NatEvent(ts_ns=time.monotonic_ns(), wall_ns=time.time_ns(),
                        netns=self.netns_ino, family=family, proto=proto, orig_src=osrc,
                        orig_dst=odst, reply_src=rsrc, reply_dst=rdst, status=status,
                        origin="conntrack", manip=None, ct_event=kind)
