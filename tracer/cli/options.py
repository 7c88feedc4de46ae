"""Flags shared by the commands that read events (trace now; replay and diagnose later)."""

from __future__ import annotations

import argparse
import ipaddress
import sys
from pathlib import Path

OUTPUTS = ("tui", "table", "jsonl")


def _positive(text: str, conv: type[int] | type[float], what: str) -> float:
    try:
        value = conv(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text!r}")
    return value


def positive_float(text: str) -> float:
    return _positive(text, float, "a number")


def positive_int(text: str) -> int:
    return int(_positive(text, int, "a whole number"))


def power_of_two(text: str) -> int:
    value = positive_int(text)
    if value & (value - 1):
        raise argparse.ArgumentTypeError(f"must be a power of two: {text!r}")
    return value


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
    parser.add_argument("-o", "--output", choices=OUTPUTS, default=None,
                        help="output format (default: the TUI on a terminal, else jsonl)")


def resolve_output(choice: str | None) -> str:
    if choice:
        return choice
    if sys.stdout.isatty():
        # the TUI draws on stderr (Textual's choice): with stderr redirected, a table
        return "tui" if sys.stderr.isatty() else "table"
    return "jsonl"


# --- recordings (trace --record, record -w) ---------------------------------------------

_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def byte_size(text: str) -> int:
    """"500M", "2G", "65536": bytes."""
    t = text.strip().lower().removesuffix("b").removesuffix("i")
    unit = t[-1:] if t[-1:] in _SIZE_UNITS else ""
    try:
        value = float(t[:len(t) - len(unit)]) * _SIZE_UNITS[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 500M, 2G)") from None
    if value < 64 << 10:
        raise argparse.ArgumentTypeError(f"too small for a recording: {text!r} (>= 64K)")
    return int(value)


def add_recording_size(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-size", type=byte_size, metavar="SIZE",
                        help="largest recording file (e.g. 500M); at that size the "
                        "recording stops, or rotates with --rotate")
    parser.add_argument("--rotate", type=positive_int, default=0, metavar="N",
                        help="at --max-size, move FILE to FILE.1 (keeping N older files) "
                        "and continue in a new FILE")
