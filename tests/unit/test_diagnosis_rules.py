"""Each diagnosis rule on recorded input, without root: the lab's real event streams
(tests/data/diagnosis/*.jsonl, made by capture.py) loaded through the decoded-event
model, with the objects and node state of the same run.  Positive: the scenario's
finding, naming its objects; near misses: the same streams changed in the one way
that removes the cause, and must then say nothing."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tracer.diagnosis.engine import Diagnoser
from tracer.diagnosis.names import IndexNames, NoNames
from tracer.diagnosis.nodefacts import NodeFacts
from tracer.events.finding import Finding
from tracer.events.jsonl import JsonlEvents
from tracer.events.model import (
    DropEvent,
    Endpoint,
    Event,
    FlowEvent,
    IcmpEvent,
    NatEvent,
    SockEvent,
)
from tracer.modes.diagnose_file import diagnose_events, diagnose_file

DATA = Path(__file__).resolve().parents[1] / "data" / "diagnosis"
SERVICE_CIDR = ipaddress.ip_network("10.43.0.0/16")

EXPECTED: dict[str, tuple[str, set[tuple[str, str | None, str]]]] = {
    "masquerade-missing": ("masquerade-missing", {("Pod", "default", "client")}),
    "ip-forward-disabled": ("ip-forward-disabled", {("Pod", "default", "client")}),
    "no-route": ("no-route", {("Pod", "default", "client"), ("Node", None, "node1")}),
    "hostport-conflict": ("hostport-conflict", {
        ("Pod", "monitoring", "metrics-6f7c9b8d4-q9m4d"),
        ("Pod", "monitoring", "metrics-6f7c9b8d4-x7k2p")}),
    "externalip-untranslated": ("externalip-untranslated", {
        ("Service", "default", "web"), ("Pod", "kube-system", "agent")}),
    "service-no-endpoints": ("service-no-endpoints", {("Service", "default", "orders")}),
    "dns-unreachable": ("dns-unreachable", {("Service", "kube-system", "kube-dns"),
                                            ("Pod", "kube-system", "coredns"),
                                            ("Node", None, "node2")}),
    "nodeport-remote-endpoint": ("pod-network-unreachable", {
        ("Service", "default", "web"), ("Pod", "default", "web-a"), ("Node", None, "node1"),
        ("Node", None, "node2")}),
    "nexthop-not-adjacent": ("nexthop-unreachable", {("Service", "default", "api"),
                                                     ("Pod", "default", "api")}),
    "policy-drop": ("netfilter-drop", {("Pod", "default", "client"),
                                       ("Pod", "default", "web-a")}),
    "connection-refused": ("connection-refused", {("Service", "default", "web"),
                                                  ("Pod", "default", "web-a")}),
    "rp-filter-drop": ("rp-filter-drop", {("Pod", "default", "vpn-gw"),
                                          ("Pod", "default", "api")}),
    # the same scenario with the pod's ARP entry fresh: a drop (IP_RPFILTER) on node1
    "rp-filter-drop-arp-cached": ("rp-filter-drop", {("Pod", "default", "vpn-gw"),
                                                     ("Pod", "default", "api")}),
}


def events(scenario: str) -> list[Event]:
    return list(JsonlEvents.open(DATA / f"{scenario}.jsonl"))


def facts(scenario: str) -> NodeFacts:
    return NodeFacts.from_snapshot(json.loads((DATA / f"{scenario}.node.json").read_text()))


def diagnose(scenario: str, evs: list[Event] | None = None,
             node: NodeFacts | None = None) -> list[Finding]:
    names = IndexNames.from_file(DATA / f"{scenario}.objects.json")
    diag = Diagnoser(names, node or facts(scenario), service_networks=[SERVICE_CIDR])
    diagnose_events(evs if evs is not None else events(scenario), diag)
    return diag.all_findings()


def objects(f: Finding) -> set[tuple[str, str | None, str]]:
    return {(o.kind, o.namespace, o.name) for o in f.objects}


@pytest.mark.parametrize("scenario", list(EXPECTED))
def test_scenario_finding(scenario: str) -> None:
    kind, objs = EXPECTED[scenario]
    found = diagnose(scenario)
    assert [f.kind for f in found] == [kind]
    f = found[0]
    assert objs <= objects(f), f.objects
    rec = f.record()
    assert rec["summary"] and rec["fix"] and rec["evidence"] and rec["count"] >= 1
    assert all("kind" in e for e in rec["evidence"])


def test_healthy_has_no_finding() -> None:
    assert diagnose("healthy") == []


def test_findings_as_soon_as_complete() -> None:
    """Each finding comes out while the stream is read, not only at its end."""
    names = IndexNames.from_file(DATA / "masquerade-missing.objects.json")
    diag = Diagnoser(names, facts("masquerade-missing"))
    early: list[Finding] = []
    evs = events("masquerade-missing")
    for ev in evs:
        early += [f for f in diag.process([ev]) if isinstance(f, Finding)]
    assert [f.kind for f in early] == ["masquerade-missing"]
    # evidence was complete at the SYN retransmit, before the rest of the stream
    assert early[0].first_seen_ns < evs[-1].wall_ns


# --- near misses -------------------------------------------------------------------------

def _replace(evs: list[Event], fn: Callable[[Event], Event | None]) -> list[Event]:
    return [e2 for e in evs if (e2 := fn(e)) is not None]


def test_masqueraded_external_traffic_is_not_masquerade_missing() -> None:
    """The same unanswered SYNs, but leaving the uplink with the node's address (the
    external host is simply down): no finding at all, and certainly not masquerade-missing."""
    node_ip = "192.168.1.11"

    def masquerade(e: Event) -> Event | None:
        if isinstance(e, FlowEvent) and e.role == "uplink" and e.src.ip == "10.42.0.10":
            return dataclasses.replace(e, src=Endpoint(node_ip, 40000), marks=())
        return e

    evs = _replace(events("masquerade-missing"), masquerade)
    snat = next(e for e in events("no-route") if isinstance(e, NatEvent)
                and e.orig_dst.ip == "192.168.2.10")
    flow = next(e for e in evs if isinstance(e, FlowEvent) and e.role == "pod"
                and e.dst.ip == "192.168.2.10")
    evs.append(dataclasses.replace(snat, wall_ns=flow.wall_ns + 5_000_000,
                                   orig_src=flow.src, reply_dst=Endpoint(node_ip, 40000)))
    assert diagnose("masquerade-missing", evs) == []


def test_answered_untranslated_traffic_is_not_masquerade_missing() -> None:
    """A pod address leaving untranslated is fine when the far side routes it back."""
    evs = events("masquerade-missing")
    out = next(e for e in evs if isinstance(e, FlowEvent) and e.role == "uplink"
               and "untranslated-pod-source" in e.marks)
    reply = dataclasses.replace(out, direction="ingress", src=out.dst, dst=out.src,
                                tcp_flags=0x12, tcp_flags_seen=0x12, report="new", marks=(),
                                wall_ns=out.wall_ns + 1_000_000)
    found = diagnose("masquerade-missing", [*evs[:evs.index(out) + 1], reply,
                                            *evs[evs.index(out) + 1:]])
    assert "masquerade-missing" not in [f.kind for f in found]


def test_forwarding_on_is_not_ip_forward_disabled() -> None:
    def forwarding_on(e: Event) -> Event | None:
        if isinstance(e, DropEvent) and e.forwarding is not None:
            return dataclasses.replace(e, forwarding=dataclasses.replace(e.forwarding,
                                                                         ip_forward=1))
        return e

    node = facts("ip-forward-disabled")
    node.sysctls["net.ipv4.ip_forward"] = "1"
    found = diagnose("ip-forward-disabled", _replace(events("ip-forward-disabled"),
                                                     forwarding_on), node)
    assert "ip-forward-disabled" not in [f.kind for f in found]


def test_no_route_needs_an_error_back() -> None:
    """Through the default route with no ICMP error back (a host that is down): not
    no-route — the default route may reach it."""
    def no_icmp(e: Event) -> Event | None:
        return None if isinstance(e, FlowEvent) and e.proto == 1 else e

    assert "no-route" not in [f.kind for f in diagnose("no-route",
                                                        _replace(events("no-route"), no_icmp))]


def test_no_route_with_a_specific_route_is_not_no_route() -> None:
    node = facts("no-route")
    node.routes += NodeFacts.from_snapshot(
        {"ip_route": "192.168.2.0/24 via 192.168.1.1 dev eth0\n"}).routes
    assert "no-route" not in [f.kind for f in diagnose("no-route", node=node)]


def test_service_with_endpoints_is_not_service_no_endpoints() -> None:
    objs = json.loads((DATA / "service-no-endpoints.objects.json").read_text())
    for o in objs["items"]:
        if o["kind"] == "EndpointSlice" and o["metadata"]["name"].startswith("orders"):
            o["endpoints"] = [{"addresses": ["10.42.0.13"], "conditions": {"ready": True}}]
    diag = Diagnoser(IndexNames.from_objects(objs["items"]), facts("service-no-endpoints"),
                     service_networks=[SERVICE_CIDR])
    diagnose_events(events("service-no-endpoints"), diag)
    kinds = [f.kind for f in diag.all_findings()]
    assert "service-no-endpoints" not in kinds
    assert kinds == ["netfilter-drop"]   # rejected by a rule although it has endpoints


def test_externalip_from_outside_is_translated() -> None:
    """The externalIP from outside (DNAT happens): only the node-local call is a finding."""
    found = diagnose("externalip-untranslated")
    assert len(found) == 1 and "agent" in found[0].summary


def test_refused_with_icmp_is_not_connection_refused() -> None:
    """A REJECT's ICMP error is not a closed port: service-no-endpoints stays."""
    assert [f.kind for f in diagnose("service-no-endpoints")] == ["service-no-endpoints"]


def test_dns_reachable_route_is_ambiguous_not_guessed() -> None:
    """With a route to node2's pod network, an unanswered query cannot be blamed on a
    missing route: the finding says what would tell (trace node2)."""
    node = facts("dns-unreachable")
    node.routes += NodeFacts.from_snapshot(
        {"ip_route": "10.42.1.0/24 via 192.168.1.12 dev eth0\n"}).routes
    found = diagnose("dns-unreachable", node=node)
    assert [f.kind for f in found] == ["dns-unreachable"]
    assert found[0].ambiguity and "node2" in found[0].ambiguity
    assert "no route" not in found[0].summary


def test_local_pod_network_is_not_pod_network_unreachable() -> None:
    """The same NodePort traffic on a node that has the route: nothing to say."""
    node = facts("nodeport-remote-endpoint")
    node.routes += NodeFacts.from_snapshot(
        {"ip_route": "10.42.0.0/24 via 192.168.1.11 dev eth0\n"}).routes
    assert diagnose("nodeport-remote-endpoint", node=node) == []


def test_answering_nexthop_is_not_nexthop_unreachable() -> None:
    def neighbour_ok(e: Event) -> Event | None:
        if isinstance(e, DropEvent) and e.reason == "NEIGH_FAILED":
            return None
        return None if e.kind == "neigh" else e

    found = diagnose("nexthop-not-adjacent", _replace(events("nexthop-not-adjacent"),
                                                      neighbour_ok))
    assert "nexthop-unreachable" not in [f.kind for f in found]


def test_rejected_policy_drop_says_rejected() -> None:
    evs = events("policy-drop")
    drop = next(e for e in evs if isinstance(e, DropEvent) and e.reason == "NETFILTER_DROP")
    icmp = IcmpEvent(0, drop.wall_ns, drop.netns, 3, 13, "admin-prohibited", 4, 6,
                     drop.src, drop.dst, drop.ifindex, drop.ifname, 60)
    # where the kernel sends it: beside the drop (diagnosis judges in event time)
    evs.insert(evs.index(drop) + 1, icmp)
    found = diagnose("policy-drop", evs)
    assert [f.kind for f in found] == ["netfilter-drop"]
    assert "rejects (admin-prohibited)" in found[0].summary


def test_loose_rp_filter_is_not_rp_filter_drop() -> None:
    node = facts("rp-filter-drop")
    node.sysctls["net.ipv4.conf.all.rp_filter"] = "2"
    assert "rp-filter-drop" not in [f.kind for f in diagnose("rp-filter-drop", node=node)]


def test_rp_filter_drop_names_the_route_back() -> None:
    (f,) = diagnose("rp-filter-drop-arp-cached")
    assert "via eth0" in f.summary and "cni0" in f.summary
    assert any(e.get("reason") == "IP_RPFILTER" for e in f.evidence)
    without = [e for e in events("rp-filter-drop-arp-cached")
               if not (isinstance(e, DropEvent) and e.reason == "IP_RPFILTER")]
    assert diagnose("rp-filter-drop-arp-cached", without) == []


def test_same_pod_restart_is_not_hostport_conflict() -> None:
    def self_held(e: Event) -> Event | None:
        if isinstance(e, SockEvent) and e.holder is not None:
            return dataclasses.replace(e, holder=dataclasses.replace(e.holder, pod=e.pod))
        return e

    assert diagnose("hostport-conflict", _replace(events("hostport-conflict"),
                                                  self_held)) == []


def test_hostport_holder_whose_owner_could_not_be_read() -> None:
    """No process could be shown to hold the socket: said so, never `None[None]`; and
    a pod known from the socket's own cgroup is still named."""
    def ownerless(keep_pod: bool) -> Callable[[Event], Event | None]:
        def change(e: Event) -> Event | None:
            if isinstance(e, SockEvent) and e.holder is not None:
                return dataclasses.replace(e, holder=dataclasses.replace(
                    e.holder, pid=None, comm=None,
                    pod=e.holder.pod if keep_pod else None))
            return e
        return change

    (bare,) = diagnose("hostport-conflict", _replace(events("hostport-conflict"),
                                                      ownerless(keep_pod=False)))
    assert bare.summary == (
        "pod monitoring/metrics-6f7c9b8d4-q9m4d cannot bind 0.0.0.0:9100 on node1: "
        "a socket whose owner could not be read already holds it (tcp LISTEN)")
    (named,) = diagnose("hostport-conflict", _replace(events("hostport-conflict"),
                                                       ownerless(keep_pod=True)))
    assert named.summary == (
        "pod monitoring/metrics-6f7c9b8d4-q9m4d cannot bind 0.0.0.0:9100 on node1: "
        "pod monitoring/metrics-6f7c9b8d4-x7k2p already holds it (tcp LISTEN)")
    assert ("Pod", "monitoring", "metrics-6f7c9b8d4-x7k2p") in objects(named)


def test_repeats_are_counted_not_repeated() -> None:
    found = diagnose("hostport-conflict")
    assert len(found) == 1 and found[0].count == 2   # two restarts in the capture


# --- inputs and coverage -------------------------------------------------------------

def test_no_metadata_names_addresses_and_says_so(tmp_path: Path) -> None:
    diag = diagnose_file(DATA / "masquerade-missing.jsonl", facts=facts("masquerade-missing"))
    found = diag.all_findings()
    assert [f.kind for f in found] == ["masquerade-missing"]
    assert "10.42.0.10" in found[0].summary
    notes = diag.coverage.record()["notes"]
    assert any("metadata" in n for n in notes)


def test_jsonl_garbage_is_skipped_and_counted(tmp_path: Path) -> None:
    good = (DATA / "masquerade-missing.jsonl").read_text().splitlines()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(["not json", "[1, 2]", '{"kind": "drop"}',
                              '{"kind": "nosuch", "time": "x"}', *good]) + "\n")
    stream = JsonlEvents.open(bad)
    assert len(list(stream)) == len(good) and stream.skipped == 4


def test_jsonl_round_trip_keeps_the_fields() -> None:
    """An event read back from its JSON line prints the same line again."""
    from tracer.events.records import event_record

    lines = [json.loads(x) for x in (DATA / "no-route.jsonl").read_text().splitlines()]
    assert [event_record(e) for e in JsonlEvents(map(json.dumps, lines))] == lines


def test_no_names_adapter_misses_everything() -> None:
    n = NoNames()
    assert n.pod_by_ip("10.42.0.10") is None and n.service_by_ip("10.43.0.10", 53) is None


def test_young_connection_at_the_end_is_undecided_not_guessed() -> None:
    """The stream ends 1 ms after the untranslated SYN left: too early to say."""
    evs = events("masquerade-missing")
    out = next(e for e in evs if isinstance(e, FlowEvent) and e.role == "uplink")
    names = IndexNames.from_file(DATA / "masquerade-missing.objects.json")
    diag = Diagnoser(names, facts("masquerade-missing"))
    diagnose_events(evs[:evs.index(out) + 1], diag)
    assert diag.all_findings() == []
    assert diag.coverage.undecided == 1


def test_invalid_midstream_drop_is_not_netfilter_drop() -> None:
    """kube-proxy drops ctstate INVALID packets (a connection conntrack forgot): routine."""
    def ack_only(e: Event) -> Event | None:
        if isinstance(e, DropEvent) and e.reason == "NETFILTER_DROP":
            return dataclasses.replace(e, tcp_flags=0x10)
        return None if isinstance(e, FlowEvent) and e.dst.port == 8080 else e

    assert "netfilter-drop" not in [f.kind for f in diagnose(
        "policy-drop", _replace(events("policy-drop"), ack_only))]


def test_late_datagram_to_a_closed_client_port_is_not_refused() -> None:
    """A DNS answer arriving after the client gave up meets no socket: not a refusal."""
    evs = events("healthy")
    dns = next(e for e in evs if isinstance(e, FlowEvent) and e.dst.port == 53)
    late = DropEvent(0, evs[-1].wall_ns, dns.netns, dns.ifindex, dns.ifname, "NO_SOCKET", 2,
                     "udp_queue_rcv_skb", 0, 4, 17, Endpoint("10.42.1.10", 53),
                     Endpoint(dns.src.ip, 45000), 0, None, None, 80, 0x800)
    assert diagnose("healthy", [*evs, late]) == []


def test_dns_is_not_claimed_by_the_general_rule_while_it_waits() -> None:
    """A DNS query DNATed to an unreachable pod network is dns-unreachable, also when
    the stream is read one event at a time (pod-network-unreachable would match at 1 s)."""
    names = IndexNames.from_file(DATA / "dns-unreachable.objects.json")
    diag = Diagnoser(names, facts("dns-unreachable"), service_networks=[SERVICE_CIDR])
    found = []
    for ev in events("dns-unreachable"):
        found += diag.process([ev])
    found += diag.finish()
    assert [f.kind for f in found] == ["dns-unreachable"]
