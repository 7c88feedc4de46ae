"""Flags and value types shared by the commands.

Every value a user types is checked here, at parse time, so a bad one is a usage error
(exit 2) naming the flag, before anything is loaded or attached: numbers must be finite
and in a range the code can act on, durations use Go's syntax as kubectl does.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from tracer.util.timefmt import parse_rfc3339

# -o for the commands that stream events; documents (diagnose, doctor, lab) take
# DOCUMENT_OUTPUTS.  One vocabulary: table for people (wide where columns are dropped),
# json/yaml for one document, jsonl for a stream, tui where a TUI exists.
OUTPUTS = ("tui", "table", "jsonl")
DOCUMENT_OUTPUTS = ("table", "json", "yaml")
# old spellings kept working
OUTPUT_ALIASES = {"text": "table"}


def output_choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    """An -o type: one of `choices`, or an old spelling of one of them."""
    def convert(text: str) -> str:
        value = OUTPUT_ALIASES.get(text, text)
        if value not in choices:
            raise argparse.ArgumentTypeError(
                f"invalid choice: {text!r} (choose from {', '.join(choices)})")
        return value
    convert.__name__ = "output format"
    return convert


def add_output_choice(p: argparse.ArgumentParser | argparse._ArgumentGroup,
                      choices: tuple[str, ...], default: str | None, help: str) -> None:
    p.add_argument("-o", "--output", type=output_choice(choices), default=default,
                   metavar="{" + ",".join(choices) + "}", help=help)


def write_document(doc: object, output: str, out: TextIO) -> None:
    """-o json / -o yaml: one document on stdout."""
    if output == "yaml":
        import yaml  # only when asked for: the commands that stream never need it

        # through JSON first: the document is then exactly the -o json one (tuples as
        # lists, no Python-specific tags)
        yaml.safe_dump(json.loads(json.dumps(doc)), out, sort_keys=False,
                       allow_unicode=True, width=100)
        return
    json.dump(doc, out, indent=2)
    out.write("\n")


def _number(text: str, conv: type[int] | type[float], what: str) -> float:
    try:
        value = conv(text)
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def bounded(conv: type[int] | type[float], what: str, low: float, high: float,
            low_open: bool = True) -> Callable[[str], float]:
    """A type for argparse: a finite number in (low, high] (or [low, high])."""
    def convert(text: str) -> float:
        value = _number(text, conv, what)
        if value < low or (low_open and value == low):
            raise argparse.ArgumentTypeError(
                f"must be {'>' if low_open else '>='} {low:g}: {text!r}")
        if value > high:
            raise argparse.ArgumentTypeError(f"must be <= {high:g}: {text!r}")
        return value
    convert.__name__ = what
    return convert


# A value that no run on a node needs more than: it keeps arithmetic (int(), sleeps,
# timers) away from overflow and a typo from meaning "forever".
MAX_COUNT = 2**63 - 1
MAX_SPEED = 1e6


def positive_int(text: str) -> int:
    return int(bounded(int, "a whole number", 0, MAX_COUNT)(text))


def speed(text: str) -> float:
    return float(bounded(float, "a number", 0, MAX_SPEED)(text))


def jobs(text: str) -> int:
    return int(bounded(int, "a whole number", 0, 64)(text))


def rotations(text: str) -> int:
    return int(bounded(int, "a whole number", 0, 1000)(text))


# 1 GiB of ring buffer: more than any node needs, and what a u32 size keeps clear of
MAX_RINGBUF_PAGES = 1 << 18


def power_of_two(text: str) -> int:
    value = int(bounded(int, "a whole number", 0, MAX_RINGBUF_PAGES)(text))
    if value & (value - 1):
        raise argparse.ArgumentTypeError(f"must be a power of two: {text!r}")
    return value


# --- durations and times ----------------------------------------------------------------

_UNIT_NS = {"ns": 1, "us": 10**3, "\u00b5s": 10**3, "\u03bcs": 10**3, "ms": 10**6,
            "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
_DURATION = re.compile(r"(?:(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h))+", re.ASCII)
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)", re.ASCII)
_BARE = re.compile(r"\d+(?:\.\d*)?|\.\d+", re.ASCII)
# a year: longer than any trace or recording, short enough for every timer
MAX_DURATION_NS = 366 * 24 * 3600 * 10**9


def duration_ns(text: str) -> int:
    """Go/kubectl syntax ("30s", "5m", "1h30m", "500ms", "1.5h"); a bare number is
    seconds.  Not negative, at most a year."""
    t = text.strip()
    if _BARE.fullmatch(t):
        total = int(float(t) * 10**9) if len(t) < 40 else MAX_DURATION_NS + 1
    elif _DURATION.fullmatch(t) and len(t) < 100:
        total = 0
        for number, unit in _DURATION_PART.findall(t):
            total += int(float(number) * _UNIT_NS[unit])
    else:
        raise argparse.ArgumentTypeError(
            f"not a duration: {text!r} (e.g. 30s, 5m, 1h30m, 500ms; a bare number is seconds)")
    if total > MAX_DURATION_NS:
        raise argparse.ArgumentTypeError(f"longer than a year: {text!r}")
    return total


def duration_s(text: str) -> float:
    """--duration and the like: a duration > 0, in seconds."""
    ns = duration_ns(text)
    if ns <= 0:
        raise argparse.ArgumentTypeError(f"must be longer than 0: {text!r}")
    return ns / 1e9


_RFC3339 = re.compile(r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(\.\d{1,9})?"
                      r"([Zz]|[+-]\d\d:\d\d)", re.ASCII)


def rfc3339_wall_ns(text: str) -> int:
    """An RFC 3339 time ("2026-01-05T03:12:00Z", "...+02:00") as wall-clock ns; a
    ValueError for anything else (the one parser: tracer/util/timefmt.py)."""
    return parse_rfc3339(text.strip())


@dataclass(frozen=True)
class TimeBound:
    """--since/--until: a duration before the end of the data (hubble's `--since 5m`)
    or an absolute time."""
    before_end_ns: int | None = None
    wall_ns: int | None = None

    def resolve(self, end_wall_ns: int) -> int:
        if self.wall_ns is not None:
            return self.wall_ns
        assert self.before_end_ns is not None
        return end_wall_ns - self.before_end_ns


def time_bound(text: str) -> TimeBound:
    try:
        return TimeBound(wall_ns=rfc3339_wall_ns(text))
    except ValueError:
        pass
    try:
        return TimeBound(before_end_ns=duration_ns(text))
    except argparse.ArgumentTypeError as exc:
        if "longer than" in str(exc):
            raise
        raise argparse.ArgumentTypeError(
            f"not a duration or an RFC 3339 time: {text!r} "
            "(e.g. 5m, 1h30m, 2026-01-05T03:12:00Z)") from None


def offset_ns(text: str) -> int:
    """--from-offset/--to-offset: a duration from the start of the data."""
    return duration_ns(text.removeprefix("+"))


def cidr(text: str) -> str:
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a CIDR: {text!r}") from None


def writable_path(text: str) -> Path:
    path = Path(text)
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"directory {path.parent} does not exist")
    return path


def directory(text: str) -> Path:
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"not a directory: {text!r}")
    return path


def add_output(parser: argparse.ArgumentParser) -> None:
    add_output_choice(parser, OUTPUTS, None,
                      "output format (default: the TUI on a terminal, else jsonl)")


def resolve_output(choice: str | None) -> str:
    if choice:
        return choice
    if sys.stdout.isatty():
        # the TUI draws on stderr (Textual's choice): with stderr redirected, a table
        return "tui" if sys.stderr.isatty() else "table"
    return "jsonl"


# --- recordings (trace --record, record -w) ---------------------------------------------

_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


_SIZE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([kmgt]?)", re.ASCII)
# a petabyte: no disk holds a bigger recording
MAX_SIZE = 1 << 50


def byte_size(text: str) -> int:
    """"500M", "2G", "1.5GiB", "65536": bytes."""
    t = text.strip().lower().removesuffix("b").removesuffix("i")
    m = _SIZE.fullmatch(t) if len(t) < 40 else None
    if m is None:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 500M, 2G)")
    value = float(m.group(1)) * _SIZE_UNITS[m.group(2)]
    if value < 64 << 10:
        raise argparse.ArgumentTypeError(f"too small for a recording: {text!r} (>= 64K)")
    if value > MAX_SIZE:
        raise argparse.ArgumentTypeError(f"larger than a petabyte: {text!r}")
    return int(value)


def add_recording_size(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-size", type=byte_size, metavar="SIZE",
                        help="largest recording file (e.g. 500M); at that size the "
                        "recording stops, or rotates with --rotate")
    parser.add_argument("--rotate", type=rotations, default=0, metavar="N",
                        help="at --max-size, move FILE to FILE.1 (keeping N older files) "
                        "and continue in a new FILE")
