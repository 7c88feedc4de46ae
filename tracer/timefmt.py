"""Time formatting shared by every output."""

from __future__ import annotations

import time


def rfc3339_ns(wall_ns: int) -> str:
    """UTC, RFC 3339 with nanoseconds: 2026-11-23T05:35:41.123456789Z."""
    secs, ns = divmod(wall_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{ns:09d}Z"


def mono_to_wall_offset_ns() -> int:
    """wall_ns - monotonic_ns now; bpf_ktime_get_ns() is CLOCK_MONOTONIC."""
    a = time.monotonic_ns()
    w = time.time_ns()
    b = time.monotonic_ns()
    return w - (a + b) // 2
