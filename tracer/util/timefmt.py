"""Time formatting shared by every output, and the one RFC 3339 parser."""

from __future__ import annotations

import calendar
import re
import time
from functools import lru_cache

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


# UTC ("Z") or a numeric offset; up to 9 fraction digits (what rfc3339_ns prints)
_RFC3339 = re.compile(r"(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?"
                      r"(?:([Zz])|([+-])(\d\d):(\d\d))")


@lru_cache(maxsize=4096)
def _epoch_s(y: int, mo: int, d: int, h: int, mi: int, s: int) -> int:
    # time.strptime would accept second 60 and 61; a recording never holds them
    if not (1 <= mo <= 12 and 1 <= d <= calendar.monthrange(y, mo)[1] and h < 24
            and mi < 60 and s < 60):
        raise ValueError
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))


@lru_cache(maxsize=4096)
def _utc_second(prefix: str) -> int | None:
    m = _RFC3339.fullmatch(prefix + "Z")
    if m is None:
        return None
    g = m.groups()
    try:
        return _epoch_s(int(g[0]), int(g[1]), int(g[2]), int(g[3]), int(g[4]), int(g[5]))
    except ValueError:
        return None


def parse_rfc3339(text: str) -> int:
    """RFC 3339 (2026-11-23T05:35:41.123456789Z, or with an offset like +02:00) -> wall
    ns since the epoch.  Strict: anything else, a month 13 or a February 30 included,
    raises ValueError (the caller says which input it was)."""
    # what rfc3339_ns prints (every record's time): its second once, then a slice;
    # a third of the time of the general path, and readers parse several per record
    if type(text) is str and len(text) == 30 and text[29] == "Z" and text[19] == "." \
            and text[20:29].isdigit():
        secs = _utc_second(text[:19])
        if secs is not None:
            return secs * 1_000_000_000 + int(text[20:29])
    m = _RFC3339.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"not an RFC 3339 time: {text!r} (e.g. 2026-01-05T03:12:00Z)")
    g = m.groups()
    try:
        secs = _epoch_s(int(g[0]), int(g[1]), int(g[2]), int(g[3]), int(g[4]), int(g[5]))
    except ValueError:
        raise ValueError(f"not a valid date and time: {text!r}") from None
    if g[8] is not None:
        oh, om = int(g[9]), int(g[10])
        if oh > 23 or om > 59:
            raise ValueError(f"not a valid UTC offset: {text!r}")
        secs -= (1 if g[8] == "+" else -1) * (oh * 3600 + om * 60)
    frac = g[6]
    return secs * 1_000_000_000 + (int(frac.ljust(9, "0")) if frac else 0)
