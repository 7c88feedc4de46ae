"""The rules judge ICMPv6 errors as they judge ICMP ones: the lab's recorded scenarios
mirrored into IPv6 (tests/unit/ipv6_mirror.py: addresses in fd6e::/96, each ICMP
error the ICMPv6 error of the same meaning, reported via tc) give the same findings,
and ICMPv6 type numbers are never read as ICMP ones (v6 type 3 is time exceeded)."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest

from tests.unit import ipv6_mirror
from tests.unit.test_diagnosis_rules import DATA, EXPECTED, objects
from tracer.diagnosis.engine import Diagnoser
from tracer.diagnosis.names import IndexNames
from tracer.diagnosis.nodefacts import NodeFacts
from tracer.events.finding import Finding
from tracer.events.icmp_names import icmp_meaning, is_error, is_unreachable
from tracer.events.jsonl import JsonlEvents
from tracer.events.model import DropEvent, Event, FlowEvent, IcmpEvent
from tracer.modes.diagnose_file import diagnose_events

SERVICE_CIDR6 = ipaddress.ip_network(ipv6_mirror.text("10.43.0.0/16"))
# the scenarios whose streams hold an ICMP error (sent by a node, or received)
WITH_ICMP = ("service-no-endpoints", "no-route", "nodeport-remote-endpoint",
             "nexthop-not-adjacent", "externalip-untranslated", "rp-filter-drop")


def events6(scenario: str) -> list[Event]:
    return list(JsonlEvents(ipv6_mirror.events_text(DATA / f"{scenario}.jsonl").splitlines()))


def diagnose6(scenario: str, evs: list[Event] | None = None) -> list[Finding]:
    names = IndexNames.from_objects(ipv6_mirror.objects(DATA / f"{scenario}.objects.json")["items"])
    facts = NodeFacts.from_snapshot(ipv6_mirror.node_state(DATA / f"{scenario}.node.json"))
    diag = Diagnoser(names, facts, service_networks=[SERVICE_CIDR6])
    diagnose_events(evs if evs is not None else events6(scenario), diag)
    return diag.all_findings()


def test_the_mirror_really_is_ipv6() -> None:
    evs = events6("service-no-endpoints")
    icmp = [e for e in evs if isinstance(e, IcmpEvent)]
    assert icmp and all(i.via == "tc" and i.family == 6 for i in icmp)
    assert (icmp[0].icmp_type, icmp[0].icmp_code) == (1, 4)
    assert all(":" in str(e.dst.ip) for e in evs if isinstance(e, FlowEvent))


@pytest.mark.parametrize("scenario", WITH_ICMP)
def test_ipv6_scenario_gives_the_ipv4_finding(scenario: str) -> None:
    kind, objs = EXPECTED[scenario]
    found = diagnose6(scenario)
    assert [f.kind for f in found] == [kind]
    assert objs <= objects(found[0]), found[0].objects


def test_service_no_endpoints_from_an_icmpv6_port_unreachable() -> None:
    (f,) = diagnose6("service-no-endpoints")
    assert "ICMPv6 port-unreachable" in f.summary
    icmp = [e for e in f.record()["evidence"] if e["kind"] == "icmp"]
    assert icmp and icmp[0]["meaning"] == "port-unreachable"
    assert icmp[0]["dst"] == f"[{ipv6_mirror.v6('10.43.0.30')}]:80"


def test_service_no_endpoints_needs_the_rejection_itself() -> None:
    """Without the ICMPv6 error and the refused connect, nothing says REJECT."""
    evs: list[Event] = [e for e in events6("service-no-endpoints")
                        if not isinstance(e, IcmpEvent)
                        and getattr(e, "error", None) != "ECONNREFUSED"]
    assert "service-no-endpoints" not in [f.kind for f in diagnose6("service-no-endpoints",
                                                                    evs)]


def test_no_route_from_an_icmpv6_no_route_received() -> None:
    (f,) = diagnose6("no-route")
    gw = ipv6_mirror.v6("192.168.1.254")
    assert f"and {gw} answered ICMPv6 no-route" in f.summary
    received = [e for e in f.record()["evidence"] if e["kind"] == "icmp-received"]
    assert received and received[0]["icmp"] == {"type": 1, "code": 0}


def _as(evs: list[Event], icmp_type: int, code: int) -> list[Event]:
    return [dataclasses.replace(e, icmp_type=icmp_type, icmp_code=code)
            if isinstance(e, FlowEvent) and e.proto == 58 else e for e in evs]


def test_icmpv6_address_unreachable_is_no_route_too() -> None:
    found = diagnose6("no-route", _as(events6("no-route"), 1, 3))
    assert [f.kind for f in found] == ["no-route"]
    assert "answered ICMPv6 address-unreachable" in found[0].summary


@pytest.mark.parametrize(("icmp_type", "code"), [(3, 0), (3, 3), (2, 0), (1, 4)])
def test_icmpv6_errors_that_are_not_no_route_are_not_read_as_one(icmp_type: int,
                                                                 code: int) -> None:
    """ICMPv6 type 3 (time exceeded) code 0 and 3 are ICMP's net- and port-unreachable
    by number; a packet too big or a port unreachable says the network was reached."""
    found = diagnose6("no-route", _as(events6("no-route"), icmp_type, code))
    assert "no-route" not in [f.kind for f in found]


def test_rejected_policy_drop_says_rejected_with_icmpv6_admin_prohibited() -> None:
    evs = events6("policy-drop")
    drop = next(e for e in evs if isinstance(e, DropEvent) and e.reason == "NETFILTER_DROP")
    icmp = IcmpEvent(0, drop.wall_ns, drop.netns, 1, 1, icmp_meaning(1, 1, 6), 6, 6,
                     drop.src, drop.dst, drop.ifindex, drop.ifname, 100, via="tc",
                     direction="egress")
    evs.insert(evs.index(drop) + 1, icmp)   # where the kernel sends it: beside the drop
    found = diagnose6("policy-drop", evs)
    assert [f.kind for f in found] == ["netfilter-drop"]
    assert "rejects (admin-prohibited)" in found[0].summary


def test_error_and_unreachable_types_by_protocol() -> None:
    assert is_error(1, 3) and is_error(1, 11) and is_error(1, 12)
    assert not is_error(1, 8) and not is_error(1, 0) and not is_error(1, 1)
    assert all(is_error(58, t) for t in (1, 2, 3, 4))
    assert not any(is_error(58, t) for t in (128, 129, 133, 135, 136, None))
    assert is_unreachable(1, 3) and is_unreachable(58, 1)
    assert not is_unreachable(58, 3) and not is_unreachable(1, 1)


def test_node_facts_read_the_ipv6_routes() -> None:
    """`ip -6 route`'s "default" is ::/0: without it an IPv6 lookup found no route."""
    facts = NodeFacts.from_snapshot({
        "ip_route": "default via 192.168.1.254 dev eth0\n",
        "ip6_route": "default via fd6e::1 dev eth0 metric 1024\n"
                     "fd6e::a2a:0/120 dev cni0 proto kernel metric 256\n"})
    r = facts.lookup("fd6e::c0a8:20a")
    assert r is not None and r.is_default and r.gateway == "fd6e::1"
    r4 = facts.lookup("192.168.2.10")
    assert r4 is not None and r4.gateway == "192.168.1.254"
    local = facts.lookup("fd6e::a2a:a")
    assert local is not None and local.dev == "cni0"
