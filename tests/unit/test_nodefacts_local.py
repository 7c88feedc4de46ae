"""The node's own addresses, as the rules and the local-names stage ask of every event:
answered from text formatted once, and still right when the list changes."""

from __future__ import annotations

import ipaddress

from tracer.diagnosis.nodefacts import Address, NodeFacts
from tracer.node.sysctls import ForwardingSysctls


def test_is_local_follows_a_changed_address_list() -> None:
    facts = NodeFacts.from_snapshot({"ip_addr": "2: eth0    inet 10.0.2.15/24 scope global eth0\n"
                                                "2: eth0    inet6 fd00::15/64 scope global\n"})
    assert facts.is_local("10.0.2.15") and facts.is_local("fd00::15")
    assert not facts.is_local("10.0.2.16") and not facts.is_local(None)
    facts.addresses.append(Address("cni0", ipaddress.ip_interface("10.42.0.1/24")))
    assert facts.is_local("10.42.0.1")
    facts.addresses = [Address("eth1", ipaddress.ip_interface("192.168.1.2/24"))]
    assert facts.local_ips() == ("192.168.1.2",) and not facts.is_local("10.0.2.15")


def test_loopback_and_multicast_count_as_local_without_parsing() -> None:
    s = ForwardingSysctls(local_addresses=frozenset({"10.0.2.15"}))
    local = ["10.0.2.15", "127.0.0.1", "127.3.2.1", "224.0.0.251", "239.255.255.250", "::1",
             "ff02::fb"]
    remote = ["10.0.2.16", "240.0.0.1", "223.255.255.255", "fe80::1", "2001:db8::1", "", "x"]
    assert all(s.is_local(ip) for ip in local)
    assert not any(s.is_local(ip) for ip in remote) and not s.is_local(None)
