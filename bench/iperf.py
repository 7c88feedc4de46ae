"""iperf3 runs and their untraced/traced ratios, shared by the throughput benchmarks."""

from __future__ import annotations

import json
import statistics

from tracer.lab.netns import Netns

UDP_PAYLOAD = 64
# name -> iperf3 client arguments
TCP: dict[str, list[str]] = {"tcp_1_stream_bps": []}
TCP_NO_GSO = {"tcp_1_stream_gso_off_bps": ["-M", "1400", "-Z"]}
UDP_SMALL = {"udp_64B_pps": ["-u", "-l", str(UDP_PAYLOAD), "-b", "0"]}


def iperf(client: Netns, server_ip: str, args: list[str], seconds: float) -> float:
    """Bits/s received for TCP; datagrams/s received for UDP (sent less lost)."""
    # client on CPU 0, server on CPU 1: unpinned, the scheduler's placement alone moved
    # an untraced/untraced pair's ratio between 0.85 and 1.46 on this 2-CPU machine;
    # pinned, 0.95 to 1.03
    out = client.exec("iperf3", "-c", server_ip, "-t", str(seconds), "-J", "-A", "0,1", *args,
                      timeout=seconds + 30).stdout
    end = json.loads(out)["end"]
    if "-u" in args:
        s = end["sum"]
        return float(s["packets"] - s["lost_packets"]) / float(s["seconds"])
    return float(end["sum_received"]["bits_per_second"])


def summary(base: list[float], traced: list[float]) -> dict[str, object]:
    """Pairs run back to back, so each pair's ratio cancels drift between pairs."""
    ratios = [t / u for u, t in zip(base, traced, strict=True)]
    return {"untraced_median": statistics.median(base),
            "traced_median": statistics.median(traced),
            "ratio_median": round(statistics.median(ratios), 4),
            "ratios": [round(r, 4) for r in ratios]}
