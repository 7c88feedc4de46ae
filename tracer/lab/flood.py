"""A flood of distinct flows, run inside a lab namespace: every packet a new source
address (in --src-net) and source port, as a scanner or a storm of retrying pods
sends.  `python -m tracer.lab.flood HOST PORT --count N [--rate R] [--proto tcp|udp]`
sends IPv4 packets through a raw socket (the source is spoofed, so no reply is
expected) and prints the number sent and the seconds taken as JSON.

--same-flow sends every packet from one source and port instead (the control of a
random-flow run)."""

from __future__ import annotations

import argparse
import ipaddress
import json
import random
import socket
import struct
import time

_TCP_FLAGS = {"S": 0x02, "A": 0x10}


def packet(src: bytes, dst: bytes, sport: int, dport: int, proto: str, flags: int) -> bytes:
    """An IPv4 packet with a zero IP checksum (the kernel fills it in for a raw
    socket) and no L4 checksum: the drop under test comes before anyone checks it."""
    if proto == "tcp":
        l4 = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, flags, 1024, 0, 0)
        number = socket.IPPROTO_TCP
    else:
        l4 = struct.pack("!HHHH", sport, dport, 8, 0)
        number = socket.IPPROTO_UDP
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0, 64, number, 0, src, dst)
    return ip + l4


def flood(host: str, port: int, count: int, rate: float, proto: str, flags: int,
          src_net: str, same_flow: bool, seed: int) -> tuple[int, float]:
    net = ipaddress.IPv4Network(src_net)
    rng = random.Random(seed)
    dst = socket.inet_aton(host)
    base = int(net.network_address)
    span = net.num_addresses - 2
    one = packet(struct.pack("!I", base + 1), dst, 40000, port, proto, flags)
    # built before the clock starts: the sender's rate is then the same loop for one
    # flow and for random flows, and what slows it is the datapath, not random()
    if same_flow:
        packets = [one] * count
    else:
        packets = [packet(struct.pack("!I", base + 1 + rng.randrange(span)), dst,
                          rng.randrange(1024, 65536), port, proto, flags)
                   for _ in range(count)]
    sent = 0
    target = (host, 0)
    start = time.monotonic()
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as s:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
        send = s.sendto
        while sent < count:
            try:
                send(packets[sent], target)
            except BlockingIOError:
                continue
            sent += 1
            if rate > 0 and sent % 64 == 0:
                ahead = sent / rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
    return sent, time.monotonic() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=0.0, help="packets/s (0: as fast as it can)")
    ap.add_argument("--proto", choices=("tcp", "udp"), default="tcp")
    ap.add_argument("--flags", choices=sorted(_TCP_FLAGS), default="A",
                    help="TCP flags: S (a SYN scan) or A (a lone ACK)")
    ap.add_argument("--src-net", default="10.90.0.0/16")
    ap.add_argument("--same-flow", action="store_true")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    sent, secs = flood(a.host, a.port, a.count, a.rate, a.proto, _TCP_FLAGS[a.flags],
                       a.src_net, a.same_flow, a.seed)
    print(json.dumps({"sent": sent, "seconds": round(secs, 3)}))


if __name__ == "__main__":
    main()
