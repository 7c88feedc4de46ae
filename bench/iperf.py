"""iperf3 runs and their untraced/traced ratios, shared by the throughput benchmarks."""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable

from tracer.lab.netns import Netns

UDP_PAYLOAD = 64
# name -> iperf3 client arguments
TCP: dict[str, list[str]] = {"tcp_1_stream_bps": []}
TCP_NO_GSO = {"tcp_1_stream_gso_off_bps": ["-M", "1400", "-Z"]}
UDP_SMALL = {"udp_64B_pps": ["-u", "-l", str(UDP_PAYLOAD), "-b", "0"]}
CONFIGS = {**TCP, **TCP_NO_GSO, **UDP_SMALL}
SHORT = {"tcp": "tcp_1_stream_bps", "tcp-gso-off": "tcp_1_stream_gso_off_bps",
         "udp64": "udp_64B_pps"}


def add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--configs", default=",".join(SHORT),
                   help=f"comma-separated, of {', '.join(SHORT)}")
    p.add_argument("--control", action="store_true",
                   help="also run untraced/untraced pairs: the noise floor of a ratio")


def configs(p: argparse.ArgumentParser, arg: str) -> dict[str, list[str]]:
    names = arg.split(",")
    unknown = [n for n in names if n not in SHORT]
    if unknown:
        p.error(f"--configs: unknown {', '.join(unknown)}; expected some of "
                f"{', '.join(SHORT)}")
    return {SHORT[n]: CONFIGS[SHORT[n]] for n in names}


def paired(runs: int, untraced: Callable[[], float], traced: Callable[[], float]
           ) -> tuple[list[float], list[float]]:
    """`runs` pairs, the order swapped every other pair: whatever favours the first (or
    second) run of a pair then cancels in the median instead of biasing it."""
    base: list[float] = []
    other: list[float] = []
    for i in range(runs):
        if i % 2:
            other.append(traced())
            base.append(untraced())
        else:
            base.append(untraced())
            other.append(traced())
    return base, other


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
