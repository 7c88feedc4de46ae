"""The scenario scripts' helpers (vagrant/scenarios/lib.sh) on the real kernel, in a network
namespace shaped like a cluster node: the route, rule, iptables and sysctl changes a break
makes are the ones meant, and repair puts back exactly what was there."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.vagrant.support import SCENARIOS_DIR
from tracer.lab.netns import Netns

pytestmark = pytest.mark.kernel

LIB = SCENARIOS_DIR / "lib.sh"
NODE_IP = "192.168.56.11"
NAT_GW = "192.168.56.2"         # the node's default route: the provider's NAT
LEGACY_VIA = "192.168.56.20"
LEGACY_NET = "192.168.2.0/24"
OTHER_PODS = "10.42.2.0/24"
VXLAN_ROUTE = f"{OTHER_PODS} via 10.42.2.0 dev flannel.1 onlink"


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Netns]:
    ns = Netns(f"nt-vgt-{os.getpid()}").create()
    try:
        # veth pairs inside the namespace stand in for the node's interfaces (no dummy
        # module on every kernel); both ends up, so routes over them are usable
        for cmd in (["link", "add", "eth1", "type", "veth", "peer", "name", "eth1-peer"],
                    ["link", "add", "flannel.1", "type", "veth", "peer", "name", "fl-peer"],
                    *(["link", "set", dev, "up"] for dev in
                      ("eth1", "eth1-peer", "flannel.1", "fl-peer")),
                    ["addr", "add", f"{NODE_IP}/24", "dev", "eth1"],
                    ["route", "add", "default", "via", NAT_GW],
                    ["route", "add", LEGACY_NET, "via", LEGACY_VIA, "dev", "eth1"],
                    ["addr", "add", "10.42.1.0/32", "dev", "flannel.1"],
                    ["route", "add", *VXLAN_ROUTE.split()]):
            ns.ip(*cmd)
        yield ns
    finally:
        ns.delete()


def lib(ns: Netns, state: Path, script: str) -> subprocess.CompletedProcess[str]:
    """Run script with lib.sh sourced inside the node, as scenario_init would leave it."""
    prelude = (f"set -euo pipefail; . {LIB}; SCENARIO=test; NODE_NAME=nt-agent1; "
               f"NODE_IFACE=eth1; LEGACY_VIA={LEGACY_VIA}; STATE={state}; mkdir -p {state}; ")
    return ns.exec("bash", "-c", prelude + script)


def route_get(ns: Netns, dst: str) -> str:
    proc = ns.ip("route", "get", dst, check=False)
    return proc.stdout.strip() or proc.stderr.strip()


def test_no_route_leaves_no_route_and_no_way_to_the_nat(node: Netns, tmp_path: Path) -> None:
    assert f"via {LEGACY_VIA}" in route_get(node, "192.168.2.10")
    lib(node, tmp_path, f"no_route_break {LEGACY_NET}; ip route del {LEGACY_NET}")
    assert "unreachable" in route_get(node, "192.168.2.10").lower()
    assert f"via {NAT_GW}" in route_get(node, "203.0.113.7"), "only that subnet loses its route"
    # the fix is the static route, which the rules do not hide
    node.ip("route", "add", LEGACY_NET, "via", LEGACY_VIA, "dev", "eth1")
    assert f"via {LEGACY_VIA}" in route_get(node, "192.168.2.10")
    lib(node, tmp_path, "no_route_repair; no_route_repair")
    assert node.ip("rule", "show").stdout.count("suppress_prefixlength") == 0
    assert "unreachable" not in node.ip("rule", "show").stdout


def test_pod_route_break_and_repair(node: Netns, tmp_path: Path) -> None:
    before = node.ip("route", "show", "exact", OTHER_PODS).stdout
    lib(node, tmp_path, f"pod_route_break {OTHER_PODS}")
    # to the LAN host that does not forward, never to the default route (the NAT)
    assert f"via {LEGACY_VIA} dev eth1" in route_get(node, "10.42.2.10")
    lib(node, tmp_path, f"pod_route_break {OTHER_PODS}")        # twice: still repairable
    lib(node, tmp_path, f"pod_route_repair {OTHER_PODS}")
    assert node.ip("route", "show", "exact", OTHER_PODS).stdout == before
    lib(node, tmp_path, f"pod_route_break {OTHER_PODS} 192.168.57.12")
    assert "via 192.168.57.12 dev eth1" in route_get(node, "10.42.2.10")
    lib(node, tmp_path, f"pod_route_repair {OTHER_PODS}")
    assert node.ip("route", "show", "exact", OTHER_PODS).stdout == before


def test_iptables_rules_are_tagged_and_removed(node: Netns, tmp_path: Path) -> None:
    rule = f"POSTROUTING -s 10.42.0.0/16 -d {LEGACY_NET} -j RETURN"
    lib(node, tmp_path, f"iptables_break nat {rule}; iptables_break nat {rule}")
    rules = node.exec("iptables", "-t", "nat", "-S", "POSTROUTING").stdout
    assert rules.count("nodetrace-scenario:test") == 1, rules
    lib(node, tmp_path, "iptables_repair nat")
    assert "nodetrace-scenario" not in node.exec("iptables", "-t", "nat", "-S").stdout


def test_forward_policy_and_sysctls_are_restored(node: Netns, tmp_path: Path) -> None:
    node.sysctl("net.ipv4.ip_forward", "1")
    node.sysctl("net.ipv4.conf.eth1.rp_filter", "2")
    lib(node, tmp_path, "forward_policy_break DROP; sysctl_break net.ipv4.ip_forward 0; "
                        "sysctl_break net.ipv4.conf.eth1.rp_filter 1; "
                        "sysctl_break net.ipv4.conf.eth1.rp_filter 1")
    assert "-P FORWARD DROP" in node.exec("iptables", "-S", "FORWARD").stdout
    assert node.exec("sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "0"
    lib(node, tmp_path, "forward_policy_repair; sysctl_repair net.ipv4.ip_forward; "
                        "sysctl_repair net.ipv4.conf.eth1.rp_filter")
    assert "-P FORWARD ACCEPT" in node.exec("iptables", "-S", "FORWARD").stdout
    assert node.exec("sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "1"
    assert node.exec("sysctl", "-n", "net.ipv4.conf.eth1.rp_filter").stdout.strip() == "2"
    assert not list(tmp_path.iterdir()), "repair left state behind"
