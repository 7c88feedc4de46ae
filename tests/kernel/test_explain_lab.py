"""Failures that are not drops, in the node lab's scenarios: the tracer runs in a node's namespace
as an operator would run it there, the scenario's own traffic fails, and the failure is
named by the event family that sees it (route, neigh, icmp, tcp, sock)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.kernel.lab_fixtures import (  # noqa: F401
    Traces,
    events,
    failing_probe,
    host_unchanged_fixture,
    lab_scenario_fixture,
    netns_inode,
    traces_fixture,
)
from tracer.lab.cluster import EXTERNAL_HOST
from tracer.lab.lifecycle import Lab
from tracer.lab.scenarios import METRICS_REPLICA
from tracer.lab.topology import NODE_NET

pytestmark = pytest.mark.kernel


@pytest.mark.parametrize("lab_scenario", ["no-route"], indirect=True)
def test_no_route_is_a_route_failure_where_the_lookup_fails(lab_scenario: Lab,
                                                             traces: Traces) -> None:
    # node1 has a default route: the lookup that fails is its gateway's
    node1_ns = lab_scenario.node("node1").netns
    gateway = traces.start(NODE_NET.name)
    node1 = traces.start(node1_ns)
    assert failing_probe(lab_scenario)["outcome"] in ("unreachable",
                                                                          "timeout")
    traces.stop_all()
    failed = [e for e in events(gateway, "route") if e["dst"]["ip"] == EXTERNAL_HOST]
    assert failed, events(gateway, "route")
    assert {e["error"] for e in failed} == {"ENETUNREACH"}
    assert {e["netns"] for e in failed} == {netns_inode(NODE_NET.name)}
    assert all(e["table"] == 254 and e["forwarding"]["ip_forward"] == 1 for e in failed)
    # the same lookup is not claimed by node1's tracer (ifindexes repeat across namespaces)
    assert not [e for e in events(node1, "route") if e["dst"]["ip"] == EXTERNAL_HOST]
    # what node1 sees: its pod's connect fails
    pod = lab_scenario.pod("client")
    assert any(e["event"] == "failed" and e["dst"]["ip"] == EXTERNAL_HOST
               and e["process"] and e["pod"]["uid"] == pod.uid
               for e in events(node1, "tcp")), events(node1, "tcp")


@pytest.mark.parametrize("lab_scenario", ["ip-forward-disabled"], indirect=True)
def test_forwarded_packets_die_with_ip_forward_0_attached(lab_scenario: Lab,
                                                           traces: Traces) -> None:
    node1 = traces.start(lab_scenario.node("node1").netns)
    assert failing_probe(lab_scenario)["outcome"] == "timeout"
    traces.stop_all()
    dead = [e for e in events(node1, "drop") if e["dst"]["ip"] == EXTERNAL_HOST]
    assert dead, events(node1, "drop")
    assert {e["reason"] for e in dead} == {"IP_INADDRERRORS"}
    assert all(e["forwarding"]["ip_forward"] == 0 and e["forwarding"]["iface"] == "cni0"
               for e in dead), dead


@pytest.mark.parametrize("lab_scenario", ["nexthop-not-adjacent"], indirect=True)
def test_unanswered_next_hop_is_a_failed_neighbour(lab_scenario: Lab,
                                                   traces: Traces) -> None:
    node1 = traces.start(lab_scenario.node("node1").netns)
    assert failing_probe(lab_scenario)["outcome"] in ("unreachable",
                                                                          "timeout")
    traces.stop_all()
    failed = [e for e in events(node1, "neigh") if e["event"] == "failed"]
    assert [(e["addr"], e["ifname"], e["state"]) for e in failed][:1] == [
        ("192.168.3.12", "eth0", "FAILED")], failed
    assert {e["netns"] for e in failed} == {netns_inode(lab_scenario.node("node1").netns)}


@pytest.mark.parametrize("lab_scenario", ["service-no-endpoints"], indirect=True)
def test_reject_is_port_unreachable_for_the_service_vip(lab_scenario: Lab,
                                                        traces: Traces) -> None:
    node1 = traces.start(lab_scenario.node("node1").netns)
    probe = lab_scenario.scenario.probe
    assert probe is not None
    assert lab_scenario.probe(probe)["outcome"] == "refused"
    traces.stop_all()
    sent = [e for e in events(node1, "icmp") if e["meaning"] == "port-unreachable"]
    assert sent, events(node1, "icmp")
    assert {(e["dst"]["ip"], e["dst"]["port"], e["proto"]) for e in sent} == {
        (probe.host, probe.port, "tcp")}
    assert {e["src"]["ip"] for e in sent} == set(lab_scenario.pod("client").ips)


@pytest.mark.parametrize("lab_scenario", ["hostport-conflict"], indirect=True)
def test_hostport_conflict_names_the_loser_and_the_holder(lab_scenario: Lab,
                                                          traces: Traces) -> None:
    node1 = traces.start(lab_scenario.node("node1").netns)
    loser = lab_scenario.pod(METRICS_REPLICA)
    holder = next(p for p in lab_scenario.state.pods if p.name.startswith("metrics-")
                  and p.name != METRICS_REPLICA and p.node == "node1")
    # the crash loop retries with back-off (at most 8 s here): a second restart after
    # attaching proves that a whole run of the replica, its bind() included, was traced
    start = lab_scenario.container_states()[METRICS_REPLICA].restart_count
    deadline = time.monotonic() + 40
    while lab_scenario.container_states()[METRICS_REPLICA].restart_count < start + 2:
        assert time.monotonic() < deadline, "the replica did not restart"
        time.sleep(0.2)
    traces.stop_all()
    failed = [e for e in events(node1, "sock") if e["error"] == "EADDRINUSE"]
    assert failed, events(node1, "sock")
    e = failed[0]
    assert (e["op"], e["src"]["port"]) == ("bind", 9100)
    assert e["pod"]["uid"] == loser.uid and e["process"]["pid"] > 0
    assert e["holder"]["pod"]["uid"] == holder.uid
    # the holder still runs: its pid is a process of the holder pod's container
    holder_cgroup = Path(f"/proc/{e['holder']['pid']}/cgroup").read_text()
    assert holder.uid in holder_cgroup or holder.uid.replace("-", "_") in holder_cgroup
    assert e["netns"] == netns_inode(lab_scenario.node("node1").netns)
