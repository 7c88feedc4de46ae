"""Time formatting shared by every output."""

from __future__ import annotations

import time

# whole second -> its text with a slot for the nanoseconds: events come in bursts
_SECONDS: dict[int, str] = {}
_SECONDS_MAX = 4096


def rfc3339_ns(wall_ns: int) -> str:
    """UTC, RFC 3339 with nanoseconds: 2026-11-23T05:35:41.123456789Z."""
    text = _SECONDS.get(wall_ns // 1_000_000_000)
    if text is None:
        secs = wall_ns // 1_000_000_000
        if len(_SECONDS) >= _SECONDS_MAX:
            _SECONDS.clear()
        text = _SECONDS[secs] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) \
            + ".%09dZ"
    return text % (wall_ns % 1_000_000_000)


def mono_to_wall_offset_ns() -> int:
    """wall_ns - monotonic_ns now; bpf_ktime_get_ns() is CLOCK_MONOTONIC."""
    a = time.monotonic_ns()
    w = time.time_ns()
    b = time.monotonic_ns()
    return w - (a + b) // 2
