"""`nodetrace` entry point: one argparse tree, one subcommand module each.

Exit codes: 0 ok, 1 runtime error, 2 usage, 3 missing prerequisite (with the fix).
Logs go to stderr; stdout carries only the chosen output format.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import Protocol

from tracer import __version__
from tracer.util.errors import TracerError, UsageError

# Each module has register(subparsers) that adds its parser and sets `func`.
COMMAND_MODULES = (
    "tracer.cli.trace_cmd",
    "tracer.cli.doctor_cmd",
    "tracer.cli.demo_cmd",
    "tracer.cli.cleanup_cmd",
    "tracer.cli.lab_cmd",
    "tracer.cli.record_cmd",
    "tracer.cli.replay_cmd",
    "tracer.cli.diagnose_cmd",
)

EPILOG = """examples:
  nodetrace lab run masquerade-missing    see a broken node explained (no cluster needed)
  nodetrace doctor                        what this kernel supports
  nodetrace trace -o jsonl --duration 10  drops on this node as JSON lines, for 10 s
"""


class _Handler(Protocol):
    def __call__(self, args: argparse.Namespace) -> int: ...


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}\n{self.format_usage().rstrip()}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nodetrace", description=__doc__.splitlines()[0] if __doc__ else "",
                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"nodetrace {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log detail on stderr (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # a command not built yet
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        logging.basicConfig(
            stream=sys.stderr,
            level=logging.WARNING - 10 * min(args.verbose, 2) if args.verbose else logging.INFO,
            format="nodetrace: %(message)s" if not args.verbose
            else "%(asctime)s %(name)s %(levelname)s: %(message)s")
        func: _Handler | None = getattr(args, "func", None)
        if func is None:
            parser.print_help(sys.stderr)
            return 2
        return func(args)
    except TracerError as exc:
        print(f"nodetrace: error: {exc.message}", file=sys.stderr)
        if exc.detail:
            print(exc.detail.rstrip(), file=sys.stderr)
        if exc.fix:
            print(f"nodetrace: fix: {exc.fix}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
