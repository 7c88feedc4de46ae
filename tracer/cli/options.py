"""Flags shared by the commands that read events (trace now; replay and diagnose later)."""

from __future__ import annotations

import argparse
import ipaddress
import sys
from pathlib import Path

OUTPUTS = ("table", "jsonl")


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


def add_output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", choices=OUTPUTS, default=None,
                        help="output format (default: table on a terminal, else jsonl)")


def resolve_output(choice: str | None) -> str:
    if choice:
        return choice
    return "table" if sys.stdout.isatty() else "jsonl"
