"""ICMPv6 errors on the real kernel, seen by the tc programs.

ICMPv6 has no tracepoint, so its errors are read off the wire by tc: two private
namespaces (names carry this process's id) joined by a veth with IPv6 ULA addresses;
`nodetrace trace` runs in `b`, whose veth end carries its tc programs.  From `a`, a
connected UDP socket sends to a closed port of `b` (b's stack answers port
unreachable) and to a port `b`'s ip6tables REJECTs (admin prohibited); an echo request
and the neighbour discovery before it are ICMPv6 too, and must not be reported as
errors.  Observe only: the probes arrive and their senders get the errors.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.kernel.tracing import TraceRun, of, raw, tracing
from tracer.lab.netns import Netns, veth

pytestmark = pytest.mark.kernel

A_IP, B_IP = "fd00:6e:1::1", "fd00:6e:1::2"
B_IF = "veth-a"                 # b's end of the pair: where the tc programs sit
CLOSED_PORT = 9                 # nothing listens: b's UDP answers port unreachable
REJECTED_PORT = 9998            # b's ip6tables REJECTs it: admin prohibited
SPORT_CLOSED, SPORT_REJECTED, SPORT_STORM = 42161, 42162, 42163
STORM = 5                       # datagrams to the closed port, well within a second

# A connected UDP socket learns of an ICMPv6 error from its next recv(): the error
# arrived, and the probe therefore did too.
UDP_PROBE = """
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
s.connect((sys.argv[3], int(sys.argv[4])))
s.settimeout(3)
s.send(b"nodetrace icmp6 probe")
try:
    s.recv(64)
    print("answered")
except OSError as exc:
    print(exc.__class__.__name__ if exc.errno is None else __import__("errno").errorcode[exc.errno])
"""

# An echo request on a raw socket (the kernel fills in the ICMPv6 checksum), and its
# reply awaited among whatever else arrives (neighbour discovery).
ECHO_PROBE = """
import socket, struct, sys, time
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.settimeout(3)
s.sendto(struct.pack("!BBHHH", 128, 0, 0, 0x6e6e, 1) + b"ping", (sys.argv[1], 0))
deadline = time.monotonic() + 3
answer = "timeout"
try:
    while time.monotonic() < deadline and answer == "timeout":
        data, addr = s.recvfrom(1500)
        if data[0] == 129 and addr[0] == sys.argv[1]:
            answer = "echo-reply"
except OSError:
    pass
print(answer)
"""


@dataclass
class Pair:
    a: Netns
    b: Netns

    def down(self) -> None:
        for ns in (self.a, self.b):
            ns.delete()


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    p = Pair(Netns(f"nt-i6-{os.getpid()}-a"), Netns(f"nt-i6-{os.getpid()}-b"))
    p.down()
    try:
        for ns in (p.a, p.b):
            ns.create()
        veth(p.b, B_IF, p.a, "eth0")
        p.a.ip("-6", "addr", "add", f"{A_IP}/64", "dev", "eth0", "nodad")
        p.b.ip("-6", "addr", "add", f"{B_IP}/64", "dev", B_IF, "nodad")
        # the stack's own errors are rate-limited per peer (icmpv6 ratelimit, 1 s):
        # two probes a moment apart must both be answered
        p.b.sysctl("net.ipv6.icmp.ratelimit", "0")
        p.b.iptables_restore(
            "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
            f"-A INPUT -p udp --dport {REJECTED_PORT} "
            "-j REJECT --reject-with icmp6-adm-prohibited\nCOMMIT\n", v6=True)
        yield p
    finally:
        p.down()


@dataclass
class Observed:
    run: TraceRun
    results: dict[str, str]     # probe -> what its sender saw


@pytest.fixture(scope="module")
def observed(pair: Pair, tmp_path_factory: pytest.TempPathFactory) -> Observed:
    with tracing(pair.b, tmp_path_factory.mktemp("trace-icmp6")) as run:
        results = {
            "echo": _py(pair.a, ECHO_PROBE, B_IP),
            "closed": _py(pair.a, UDP_PROBE, A_IP, str(SPORT_CLOSED), B_IP, str(CLOSED_PORT)),
            "rejected": _py(pair.a, UDP_PROBE, A_IP, str(SPORT_REJECTED), B_IP,
                            str(REJECTED_PORT)),
            "storm": pair.a.exec(sys.executable, "-m", "tracer.lab.poke", "udp", B_IP,
                                 str(CLOSED_PORT), "--sport", str(SPORT_STORM), "--count",
                                 str(STORM), timeout=30).stdout.strip(),
        }
        assert run.stop() == 0, run.stderr
    return Observed(run, results)


@pytest.fixture(scope="module")
def traced(observed: Observed) -> TraceRun:
    return observed.run


def _py(ns: Netns, script: str, *args: str) -> str:
    return ns.exec(sys.executable, "-c", script, *args, timeout=30).stdout.strip()


def test_probes_and_their_errors_arrived(observed: Observed) -> None:
    """Observe only: each sender got its error back, the echo its reply."""
    assert observed.results == {"echo": "echo-reply", "closed": "ECONNREFUSED",
                                "rejected": "EACCES", "storm": "sent"}, observed.run.stderr


def test_port_unreachable_is_an_icmp_event_via_tc(pair: Pair, traced: TraceRun) -> None:
    hits = of(traced, "icmp", dst__port=CLOSED_PORT, src__port=SPORT_CLOSED)
    assert len(hits) == 1, of(traced, "icmp")
    e = hits[0]
    assert e["icmp"] == {"type": 1, "code": 4} and e["meaning"] == "port-unreachable"
    assert (e["via"], e["direction"], e["ifname"]) == ("tc", "egress", B_IF)
    assert e["family"] == "ipv6" and e["proto"] == "udp" and e["count"] == 1
    assert raw(e["src"]) == {"ip": A_IP, "port": SPORT_CLOSED}
    assert raw(e["dst"]) == {"ip": B_IP, "port": CLOSED_PORT}
    assert e["netns"] == pair.b.inode()
    assert "mtu" not in e
    # the probe itself passed the same hook on its way in
    assert of(traced, "flow", ifname=B_IF, direction="ingress", proto="udp",
              src__port=SPORT_CLOSED, dst__port=CLOSED_PORT)


def test_reject_is_an_icmpv6_admin_prohibited(traced: TraceRun) -> None:
    hits = of(traced, "icmp", dst__port=REJECTED_PORT)
    assert len(hits) == 1, of(traced, "icmp")
    e = hits[0]
    assert e["icmp"] == {"type": 1, "code": 1} and e["meaning"] == "admin-prohibited"
    assert raw(e["src"]) == {"ip": A_IP, "port": SPORT_REJECTED}
    assert (e["via"], e["direction"]) == ("tc", "egress")


def test_a_burst_of_errors_is_one_record_and_a_count(traced: TraceRun) -> None:
    """The storm limiter: the first error at once, the rest counted in the kernel and
    handed out when the trace ends — every error accounted for, none twice."""
    hits = of(traced, "icmp", src__port=SPORT_STORM, dst__port=CLOSED_PORT)
    assert [e["count"] for e in hits] == [1, STORM - 1], hits
    assert {e["meaning"] for e in hits} == {"port-unreachable"}
    assert {e["direction"] for e in hits} == {"egress"}


def test_echo_and_neighbour_discovery_are_not_errors(traced: TraceRun) -> None:
    icmp6_flows = {e["icmp"]["type"] for e in of(traced, "flow", proto="icmpv6")
                   if e.get("icmp")}
    # they crossed the hook (so the programs looked at them) ...
    assert {128, 129} <= icmp6_flows and icmp6_flows & {135, 136}, icmp6_flows
    # ... and only the probes' errors became icmp events
    assert {(e["src"]["port"], e["dst"]["port"]) for e in of(traced, "icmp")} == {
        (SPORT_CLOSED, CLOSED_PORT), (SPORT_REJECTED, REJECTED_PORT),
        (SPORT_STORM, CLOSED_PORT)}, of(traced, "icmp")


def test_no_loss_and_nothing_but_events_on_stdout(traced: TraceRun) -> None:
    assert of(traced, "lost") == []
    assert "Traceback" not in traced.stderr

