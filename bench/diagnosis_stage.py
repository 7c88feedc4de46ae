"""Cost of the diagnosis stage (connection view + rules) per event, as a ratio against
the stage before it (the path marks), on a synthetic stream shaped like the lab's
healthy Service traffic: per connection a pod veth SYN, the DNATed SYN at the
endpoint's veth, the SYN-ACK back at both, conntrack new/update, the client's connect
and established — plus one unanswered connection in a hundred (masquerade-missing
shape), so the rules have work.  No root, no kernel.

    .venv/bin/python bench/diagnosis_stage.py [--connections 50000] [--runs 5]

Prints events/s of each, the ratio (marks+diagnosis time / marks time) and the
connections the table holds at the end.
"""

from __future__ import annotations

import argparse
import ipaddress
import statistics
import time

from tracer.diagnosis.engine import Diagnoser
from tracer.diagnosis.names import NoNames
from tracer.diagnosis.nodefacts import NodeFacts
from tracer.events.model import Endpoint, Event, FlowEvent, NatEvent, TcpEvent
from tracer.pipeline.path import PathMarker

MS = 1_000_000
POD_NET = ipaddress.ip_network("10.42.0.0/16")
SVC_NET = ipaddress.ip_network("10.43.0.0/16")


def flow(ifname: str, role: str, direction: str, src: Endpoint, dst: Endpoint, flags: int,
         t: int) -> FlowEvent:
    return FlowEvent(0, t, 1, 1, ifname, direction, "new", 4, 6, src, dst, flags, flags,
                     None, None, 1, 60, t, t, role)


def stream(n: int) -> list[Event]:
    evs: list[Event] = []
    t = 1_700_000_000_000_000_000
    vip, ep = Endpoint("10.43.0.20", 80), Endpoint("10.42.0.11", 8080)
    for i in range(n):
        t += MS // 10
        client = Endpoint(f"10.42.{1 + i // 60000 % 200}.{1 + i % 250}", 1024 + i % 60000)
        if i % 100 == 99:   # unanswered, leaving untranslated
            ext = Endpoint("192.168.2.10", 5432)
            evs += [flow("veth-c", "pod", "ingress", client, ext, 0x02, t),
                    flow("eth0", "uplink", "egress", client, ext, 0x02, t + 1)]
            continue
        evs += [
            TcpEvent(0, t, 2, "connect", 4, Endpoint(client.ip, 0), vip, "SYN_SENT", "CLOSE",
                     None, 0, None, 0, None),
            flow("veth-c", "pod", "ingress", client, vip, 0x02, t),
            flow("veth-w", "pod", "egress", client, ep, 0x02, t + 1),
            flow("veth-w", "pod", "ingress", ep, client, 0x12, t + 2),
            flow("veth-c", "pod", "egress", vip, client, 0x12, t + 3),
            TcpEvent(0, t + 4, 2, "established", 4, client, vip, "ESTABLISHED", "SYN_SENT",
                     None, 0, 100, 0, None),
            NatEvent(0, t + 5 * MS, 1, 4, 6, client, vip, ep, client, 0x20, "conntrack",
                     None, "new"),
            NatEvent(0, t + 5 * MS, 1, 4, 6, client, vip, ep, client, 0x22, "conntrack",
                     None, "update"),
        ]
    return evs


def timed(evs: list[Event], diagnose: bool) -> tuple[float, int]:
    marker = PathMarker([POD_NET], [SVC_NET])
    diag = Diagnoser(NoNames(), NodeFacts(), pod_networks=[POD_NET],
                     service_networks=[SVC_NET]) if diagnose else None
    found = 0
    start = time.perf_counter()
    for i in range(0, len(evs), 256):
        batch = marker.process(evs[i:i + 256])
        if diag is not None:
            found += len(diag.process(batch))
    if diag is not None:
        found += len(diag.finish())
    return time.perf_counter() - start, found


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, default=50_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    evs = stream(args.connections)
    ratios, marks_rate, diag_rate = [], [], []
    found = 0
    for _ in range(args.runs):
        base, _f = timed(evs, diagnose=False)
        full, found = timed(evs, diagnose=True)
        ratios.append(full / base)
        marks_rate.append(len(evs) / base)
        diag_rate.append(len(evs) / full)
    print(f"{len(evs)} events, {args.connections} connections, {found} finding(s)")
    print(f"path marks only:        {statistics.median(marks_rate):>10,.0f} events/s")
    print(f"marks + diagnosis:      {statistics.median(diag_rate):>10,.0f} events/s "
          f"({1e6 / statistics.median(diag_rate):.1f} µs/event)")
    print(f"ratio (time with / without diagnosis): {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
