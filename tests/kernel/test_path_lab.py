"""A connection's path on the node lab: what it looked like at each point of node1 and
how NAT rewrote it — Service DNAT, MASQUERADE, NodePort DNAT, a missing MASQUERADE —
from flows on the pod veths and the uplink, conntrack's NAT events and the path marks.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.kernel.lab_fixtures import (  # noqa: F401
    Traces,
    events,
    failing_probe,
    host_unchanged_fixture,
    lab_scenario_fixture,
    traces_fixture,
)
from tracer.lab.cluster import EXTERNAL_DB_PORT, EXTERNAL_HOST, NODE_BY_NAME
from tracer.lab.lifecycle import Lab
from tracer.lab.scenarios import EXT, Probe

pytestmark = pytest.mark.kernel

NODE1_IP = NODE_BY_NAME["node1"].ip
WEB_VIP, WEB_PORT, NODEPORT = "10.43.0.20", 80, 30080


def flows(run: Any, *, role: str, direction: str, dst: str | None = None,
          src: str | None = None) -> list[dict[str, Any]]:
    return [e for e in events(run, "flow") if e["role"] == role
            and e["direction"] == direction and (dst is None or e["dst"]["ip"] == dst)
            and (src is None or e["src"]["ip"] == src)]


def at(endpoint: dict[str, Any]) -> tuple[str, int]:
    """An endpoint's address, without the Kubernetes names beside it."""
    return endpoint["ip"], endpoint["port"]


def pod_ips(lab: Lab, prefix: str) -> set[str]:
    return {ip for p in lab.state.pods if p.name.startswith(prefix) for ip in p.ips}


@pytest.mark.parametrize("lab_scenario", ["healthy"], indirect=True)
def test_healthy_node_shows_each_translation_and_flags_nothing(lab_scenario: Lab,
                                                                traces: Traces) -> None:
    node1 = traces.start(lab_scenario.node("node1").netns)
    purges = traces.start(lab_scenario.node("node1").netns, "--include-reason", "QUEUE_PURGE")
    client = lab_scenario.pod("client").ips[0]
    for probe in (Probe("client", "http", WEB_VIP, WEB_PORT),
                  Probe("client", "tcp", EXTERNAL_HOST, EXTERNAL_DB_PORT),
                  Probe(EXT, "http", NODE1_IP, NODEPORT),
                  # node2 SNATs it to its own address; node1's pod replies unmasqueraded
                  Probe(EXT, "http", NODE_BY_NAME["node2"].ip, NODEPORT)):
        assert lab_scenario.probe(probe)["outcome"] == "ok", probe.describe()
    traces.stop_all()
    nat = events(node1, "nat")
    web = pod_ips(lab_scenario, "web-")

    # Service ClusterIP: the pod sent it to the VIP; conntrack chose a web endpoint
    svc = [n for n in nat if at(n["orig"]["dst"]) == (WEB_VIP, WEB_PORT)]
    assert svc and all("dnat" in n["translation"] for n in svc), nat
    assert {n["reply"]["src"]["ip"] for n in svc} <= web
    assert any(n["replied"] for n in svc)
    assert flows(node1, role="pod", direction="ingress", src=client, dst=WEB_VIP)

    # MASQUERADE: the pod's source became node1's on the uplink, and the reply came back
    masq = [n for n in nat if n["orig"]["dst"]["ip"] == EXTERNAL_HOST]
    assert masq and all(n["translation"] == ["snat"] for n in masq), nat
    assert {n["reply"]["dst"]["ip"] for n in masq} == {NODE1_IP}
    assert flows(node1, role="pod", direction="ingress", src=client, dst=EXTERNAL_HOST)
    assert flows(node1, role="uplink", direction="egress", src=NODE1_IP, dst=EXTERNAL_HOST)
    assert flows(node1, role="uplink", direction="ingress", src=EXTERNAL_HOST, dst=NODE1_IP)
    assert not flows(node1, role="uplink", direction="egress", src=client)

    # NodePort on node1's address, to the web pod on node1
    nodeport = [n for n in nat if at(n["orig"]["dst"]) == (NODE1_IP, NODEPORT)]
    assert nodeport and all("dnat" in n["translation"] for n in nodeport), nat
    assert {n["reply"]["src"]["ip"] for n in nodeport} <= web

    # nothing is wrong here: no mark on any flow or drop, and no drop: the queues that
    # sockets purge as they close are reported only when asked for
    assert [e for e in node1.events if e.get("marks")] == []
    assert events(node1, "drop") == []
    assert {d["reason"] for d in events(purges, "drop")} == {"QUEUE_PURGE"}

    # each flow's last report carries its whole count: the final reports read at exit
    finals = [f for f in events(node1, "flow") if f["report"] == "final"]
    assert finals
    for f in finals:
        same = [g for g in events(node1, "flow") if (g["ifname"], g["direction"], g["src"],
                                                     g["dst"]) == (f["ifname"], f["direction"],
                                                                   f["src"], f["dst"])]
        assert f["packets"] == max(g["packets"] for g in same)


@pytest.mark.parametrize("lab_scenario", ["masquerade-missing"], indirect=True)
def test_masquerade_missing_is_the_pod_source_on_the_uplink(lab_scenario: Lab,
                                                            traces: Traces) -> None:
    node1 = traces.start(lab_scenario.node("node1").netns)
    client = lab_scenario.pod("client").ips[0]
    assert failing_probe(lab_scenario)["outcome"] == "timeout"
    traces.stop_all()
    out = flows(node1, role="uplink", direction="egress", src=client, dst=EXTERNAL_HOST)
    assert out, events(node1, "flow")
    assert all("untranslated-pod-source" in f["marks"] for f in out)
    assert not flows(node1, role="uplink", direction="ingress", src=EXTERNAL_HOST)
    # the SYN was retried and nothing answered
    assert any("syn-retransmits" in f["marks"] for f in out)
    assert [n for n in events(node1, "nat") if n["orig"]["dst"]["ip"] == EXTERNAL_HOST
            and n["translation"]] == []
