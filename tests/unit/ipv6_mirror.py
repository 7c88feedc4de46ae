"""The lab's recorded IPv4 scenarios (tests/data/diagnosis) mirrored into IPv6.

The lab runs IPv4 only; the rules must judge an IPv6 cluster's ICMPv6 errors as they
judge ICMP ones.  Every IPv4 address and network in a scenario's events, objects and
node state becomes the same address inside fd6e::/96 (a /24 becomes a /120), the node's
routes move to its `ip -6 route` text, and each ICMP error becomes the ICMPv6 error
that means the same, as the tc programs report it (via tc, at the hook that saw it).
"""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path
from typing import Any

from tracer.events.icmp_names import icmp_meaning

PREFIX = int(ipaddress.IPv6Address("fd6e::"))
_V4 = re.compile(r"(?<![\w.:])(\d{1,3}(?:\.\d{1,3}){3})(?:/(\d{1,2}))?(?![\w.])")
# (ICMP type, code) -> the ICMPv6 (type, code) of the same meaning (RFC 4443 3.1)
ICMP_TO_ICMP6 = {(3, 0): (1, 0), (3, 1): (1, 3), (3, 3): (1, 4), (3, 9): (1, 1),
                 (3, 10): (1, 1), (3, 13): (1, 1), (3, 4): (2, 0), (11, 0): (3, 0),
                 (11, 1): (3, 1), (8, 0): (128, 0), (0, 0): (129, 0)}


def v6(ip4: str) -> str:
    if ip4 == "0.0.0.0":
        return "::"
    return str(ipaddress.IPv6Address(PREFIX | int(ipaddress.IPv4Address(ip4))))


def text(s: str) -> str:
    def one(m: re.Match[str]) -> str:
        addr = v6(m.group(1))
        if m.group(2) is None:
            return addr
        bits = int(m.group(2))
        return f"{addr}/{bits + 96 if bits else 0}"
    return _V4.sub(one, s)


def _walk(v: Any) -> Any:
    if isinstance(v, str):
        return text(v)
    if isinstance(v, list):
        return [_walk(x) for x in v]
    if isinstance(v, dict):
        return {k: _walk(x) for k, x in v.items()}
    return v


def _icmp6(icmp: dict[str, int]) -> dict[str, int]:
    t, c = ICMP_TO_ICMP6[(icmp["type"], icmp["code"])]
    return {"type": t, "code": c}


def event(rec: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = _walk(rec)
    for key in ("family",):
        if out.get(key) == "ipv4":
            out[key] = "ipv6"
    if out["kind"] == "flow" and out.get("proto") == "icmp":
        out["proto"] = "icmpv6"
        if "icmp" in out:
            out["icmp"] = _icmp6(out["icmp"])
    if out["kind"] == "icmp":
        out["icmp"] = _icmp6(out["icmp"])
        out["meaning"] = icmp_meaning(out["icmp"]["type"], out["icmp"]["code"], 6)
        out["via"], out["direction"] = "tc", "egress"
    if out["kind"] == "nat":
        out["family"] = "ipv6"
    return out


def events_text(path: Path) -> str:
    return "".join(json.dumps(event(json.loads(line))) + "\n"
                   for line in path.read_text().splitlines() if line.strip())


def objects(path: Path) -> dict[str, Any]:
    out: dict[str, Any] = _walk(json.loads(path.read_text()))
    return out


def node_state(path: Path) -> dict[str, Any]:
    snap = json.loads(path.read_text())
    out: dict[str, Any] = _walk(snap)
    out["ip6_route"] = out.pop("ip_route", "")
    out["ip_addr"] = out.get("ip_addr", "").replace(" inet ", " inet6 ")
    return out
