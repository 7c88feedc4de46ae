"""The tc programs' own cost per packet shape (BPF_PROG_TEST_RUN), no traffic needed.

Each shape runs `--repeat` times in the kernel per round; the median of the rounds'
means is reported in ns per run, per direction.  The flow (and error) tables are warm
after the first run, so this is the steady-state cost of a packet of a known flow —
what the datapath pays for all but the first packet.  Shapes: a TCP ACK over IPv4, a
UDP datagram over IPv6, an ICMPv6 echo request (the fast path of a packet whose next
header is ICMPv6 but that is no error) and an ICMPv6 port unreachable (the error path,
rate-limited per key after its first report).

    sudo .venv/bin/python -m bench.tc_prog_cost [--rounds 5] [--repeat 100000]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import struct

A4, B4 = "10.99.7.1", "10.99.7.2"
A6, B6 = "fd00:99:7::1", "fd00:99:7::2"


def _eth(proto: int) -> bytes:
    return b"\x02" * 6 + b"\x04" * 6 + struct.pack("!H", proto)


def _ip6(nxt: int, payload: bytes, src: str = A6, dst: str = B6) -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), nxt, 64,
                       socket.inet_pton(socket.AF_INET6, src),
                       socket.inet_pton(socket.AF_INET6, dst)) + payload


def shapes() -> dict[str, bytes]:
    ip4 = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 1, 0, 64, 6, 0,
                      socket.inet_aton(A4), socket.inet_aton(B4))
    tcp = struct.pack("!HHIIBBHHH", 40000, 5201, 1, 1, 0x50, 0x10, 1000, 0, 0)
    udp = struct.pack("!HHHH", 40000, 5201, 12, 0) + b"data"
    echo = struct.pack("!BBHHH", 128, 0, 0, 1, 1) + b"ping"
    offending = _ip6(17, udp, src=B6, dst=A6)
    unreach = struct.pack("!BBHI", 1, 4, 0, 0) + offending
    return {"tcp4": _eth(0x0800) + ip4 + tcp, "udp6": _eth(0x86DD) + _ip6(17, udp),
            "icmp6_echo": _eth(0x86DD) + _ip6(58, echo),
            "icmp6_port_unreachable": _eth(0x86DD) + _ip6(58, unreach)}


def measure(rounds: int, repeat: int) -> dict[str, dict[str, float]]:
    from tracer.kernel.libbpf import prog_test_run
    from tracer.kernel.loader import BuildSpec, Module

    out: dict[str, dict[str, float]] = {}
    with Module(BuildSpec(families=frozenset({"tc"}))) as m:
        m.load()
        progs = m.tc_programs()
        for name, pkt in shapes().items():
            for direction, p in progs.items():
                runs = [prog_test_run(p.fd, pkt, repeat=repeat).duration_ns
                        for _ in range(rounds)]
                out.setdefault(name, {})[direction] = float(statistics.median(runs))
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--repeat", type=int, default=100_000)
    args = p.parse_args()
    print(json.dumps(measure(args.rounds, args.repeat), indent=2))


if __name__ == "__main__":
    main()
