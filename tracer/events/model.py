"""The typed, frozen records the pipeline passes around (decoded, not yet enriched),
gathered from their family modules (tracer/events/drop.py, flow.py, ...) and
tracer/events/common.py, where each is defined.  Import from here or from there."""

from __future__ import annotations

from tracer.events.common import (
    PROTO_NAMES,
    TCP_FLAG_NAMES,
    Endpoint,
    Forwarding,
    PodRef,
    Process,
    errno_name,
    proto_name,
    tcp_flag_names,
)
from tracer.events.drop import DropEvent
from tracer.events.flow import FlowEvent
from tracer.events.icmp import IcmpEvent
from tracer.events.lost import LostEvent
from tracer.events.nat import (
    IPS_ASSURED,
    IPS_CONFIRMED,
    IPS_DST_NAT,
    IPS_SEEN_REPLY,
    IPS_SRC_NAT,
    NatEvent,
    nat_translation,
)
from tracer.events.neigh import NUD_STATES, NeighEvent, nud_state_name
from tracer.events.registry import Event
from tracer.events.route import RouteEvent
from tracer.events.sock import PortHolder, SockEvent
from tracer.events.tcp import TCP_STATES, TcpEvent, tcp_state_name

__all__ = ["IPS_ASSURED", "IPS_CONFIRMED", "IPS_DST_NAT", "IPS_SEEN_REPLY", "IPS_SRC_NAT",
           "NUD_STATES", "PROTO_NAMES", "TCP_FLAG_NAMES", "TCP_STATES", "DropEvent",
           "Endpoint", "Event", "FlowEvent", "Forwarding", "IcmpEvent", "LostEvent",
           "NatEvent", "NeighEvent", "PodRef", "PortHolder", "Process", "RouteEvent",
           "SockEvent", "TcpEvent", "errno_name", "nat_translation", "nud_state_name",
           "proto_name", "tcp_flag_names", "tcp_state_name"]
