"""Local enrichment of the failure kinds, beside the raw fields:

- tcp and sock events: the pod of the process, from its cgroup (tracer/node/podmap.py);
- sock events that failed with EADDRINUSE: who holds the address (tracer/node/ports.py),
  looked up at once, while the holder still holds it;
- route and drop events of traffic the node forwards: the node's ip_forward and
  rp_filter (tracer/node/sysctls.py).  Forwarded means: seen in the node's namespace,
  received on an interface (route: an input lookup; drop: an skb with a device) and
  neither from nor to one of the node's own addresses.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Sequence
from dataclasses import replace

from tracer.events.model import (
    DropEvent,
    Endpoint,
    Event,
    PortHolder,
    RouteEvent,
    SockEvent,
    TcpEvent,
)
from tracer.node.podmap import PodMap
from tracer.node.ports import find_holder
from tracer.node.sysctls import ForwardingSysctls
from tracer.pipeline.stage import PassStage

EADDRINUSE = errno.errorcode[errno.EADDRINUSE]


def _ifname(ifindex: int) -> str | None:
    try:
        return socket.if_indextoname(ifindex)
    except OSError:
        return None


class LocalEnricher(PassStage):
    name = "local-names"

    def __init__(self, node_netns: int, pods: PodMap, sysctls: ForwardingSysctls) -> None:
        self.node_netns = node_netns
        self.pods = pods
        self.sysctls = sysctls

    def process(self, batch: Sequence[Event]) -> list[Event]:
        return [self._one(ev) for ev in batch]

    def _one(self, ev: Event) -> Event:
        if isinstance(ev, TcpEvent) and ev.process is not None:
            return replace(ev, pod=self.pods.pod_of(ev.process.pid, ev.process.cgroup_id))
        if isinstance(ev, SockEvent):
            pod = self.pods.pod_of(ev.process.pid, ev.process.cgroup_id)
            holder = self._holder(ev) if ev.error == EADDRINUSE else None
            return replace(ev, pod=pod, holder=holder)
        if isinstance(ev, RouteEvent) and ev.netns == self.node_netns and ev.iif > 1:
            return replace(ev, forwarding=self.sysctls.for_packet(ev.family, _ifname(ev.iif)))
        if (isinstance(ev, DropEvent) and ev.netns == self.node_netns and ev.ifindex
                and ev.family and not self.sysctls.is_local(ev.src.ip)
                and not self.sysctls.is_local(ev.dst.ip)):
            return replace(ev, forwarding=self.sysctls.for_packet(
                ev.family, ev.ifname or _ifname(ev.ifindex)))
        return ev

    def _holder(self, ev: SockEvent) -> PortHolder | None:
        if ev.addr.port is None or ev.op == "connect":
            return None
        h = find_holder(ev.netns, ev.addr.port, ev.addr.ip, exclude_pid=ev.process.pid)
        if h is None:
            return None
        return PortHolder(proto=h.socket.proto, addr=Endpoint(h.socket.ip, h.socket.port),
                          state=h.socket.state, pid=h.pid, comm=h.comm,
                          pod=self.pods.pod_of(h.pid or 0, h.cgroup_id or 0))
