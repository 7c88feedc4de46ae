"""Marks on a packet's path that are findings by themselves.

`untranslated-pod-source`: a flow leaves the node through an uplink with a pod address
as its source, to a destination outside the pod and service networks.  Replies to a
pod address cannot come back from outside the cluster: this is the shape of a missing
MASQUERADE (or of an overlay/route that is not there).
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterable, Sequence

from tracer.interfaces import ROLE_UPLINK
from tracer.model import Event, FlowEvent

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

UNTRANSLATED_POD_SOURCE = "untranslated-pod-source"


class PathMarker:
    def __init__(self, pod_networks: Iterable[Network],
                 service_networks: Iterable[Network] = ()) -> None:
        self.pod_networks = tuple(pod_networks)
        self.cluster_networks = self.pod_networks + tuple(service_networks)

    def _inside(self, ip: str | None, nets: Sequence[Network]) -> bool:
        if ip is None:
            return False
        addr = ipaddress.ip_address(ip)
        return any(addr in net for net in nets if net.version == addr.version)

    def process(self, batch: list[Event]) -> list[Event]:
        if not self.pod_networks:
            return batch
        out: list[Event] = []
        for ev in batch:
            if (isinstance(ev, FlowEvent) and ev.role == ROLE_UPLINK
                    and ev.direction == "egress"
                    and self._inside(ev.src.ip, self.pod_networks)
                    and not self._inside(ev.dst.ip, self.cluster_networks)
                    and UNTRANSLATED_POD_SOURCE not in ev.marks):
                ev = dataclasses.replace(ev, marks=(*ev.marks, UNTRANSLATED_POD_SOURCE))
            out.append(ev)
        return out
