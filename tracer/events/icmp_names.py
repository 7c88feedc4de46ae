"""ICMP and ICMPv6 type/code names: one vocabulary for both families.

IPv4 names are RFC 792's as iptables' `REJECT --reject-with` spells them; ICMPv6
names are RFC 4443's, spelled the same way where the meaning is the same
(`port-unreachable`, `admin-prohibited`, `reassembly-time-exceeded`), so a rule that
looks for a meaning matches both families.  The type numbers themselves differ
(ICMPv6 type 3 is time exceeded, ICMP type 3 destination unreachable), so nothing
outside this module compares them.
"""

from __future__ import annotations

ICMP_UNREACH = {0: "net-unreachable", 1: "host-unreachable", 2: "protocol-unreachable",
                3: "port-unreachable", 4: "fragmentation-needed", 5: "source-route-failed",
                6: "net-unknown", 7: "host-unknown", 9: "net-prohibited",
                10: "host-prohibited", 13: "admin-prohibited"}
ICMP_OTHER = {5: "redirect", 12: "parameter-problem", 4: "source-quench"}

ICMP6_UNREACH = {0: "no-route", 1: "admin-prohibited", 2: "beyond-scope",
                 3: "address-unreachable", 4: "port-unreachable",
                 5: "source-policy-failed", 6: "reject-route",
                 7: "source-routing-header-error", 8: "headers-too-long"}
ICMP6_PARAM = {0: "parameter-problem", 1: "unrecognized-next-header",
               2: "unrecognized-option"}
ICMP6_OTHER = {128: "echo-request", 129: "echo-reply", 133: "router-solicitation",
               134: "router-advertisement", 135: "neighbour-solicitation",
               136: "neighbour-advertisement", 137: "redirect"}

# by IP protocol number: unreachable, time exceeded, parameter problem (and ICMPv6's
# packet too big, which IPv4 says as unreachable code 4)
ICMP_ERROR_TYPES = {1: (3, 11, 12), 58: (1, 2, 3, 4)}
UNREACHABLE_TYPE = {1: 3, 58: 1}

# the destination (or its network) has no route or did not answer: what "no route"
# looks like from the sender of the packet
NO_ROUTE = frozenset({"net-unreachable", "host-unreachable", "net-unknown", "host-unknown",
                      "no-route", "address-unreachable"})


def icmp_meaning(icmp_type: int, code: int, family: int = 4) -> str:
    """The name of an ICMP (family 4) or ICMPv6 (family 6) type and code."""
    if family == 6:
        if icmp_type == 1:
            return ICMP6_UNREACH.get(code, f"unreachable-{code}")
        if icmp_type == 2:
            return "packet-too-big"
        if icmp_type == 3:
            return "hop-limit-exceeded" if code == 0 else "reassembly-time-exceeded"
        if icmp_type == 4:
            return ICMP6_PARAM.get(code, "parameter-problem")
        return ICMP6_OTHER.get(icmp_type, f"type-{icmp_type}")
    if icmp_type == 3:
        return ICMP_UNREACH.get(code, f"unreachable-{code}")
    if icmp_type == 11:
        return "ttl-exceeded" if code == 0 else "reassembly-time-exceeded"
    return ICMP_OTHER.get(icmp_type, f"type-{icmp_type}")


def family_of_proto(proto: int) -> int:
    return 6 if proto == 58 else 4


def is_error(proto: int, icmp_type: int | None) -> bool:
    """An ICMP (proto 1) or ICMPv6 (proto 58) error message: it quotes a packet."""
    return icmp_type is not None and icmp_type in ICMP_ERROR_TYPES.get(proto, ())


def is_unreachable(proto: int, icmp_type: int | None) -> bool:
    return icmp_type is not None and UNREACHABLE_TYPE.get(proto) == icmp_type
