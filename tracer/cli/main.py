"""`nodetrace` entry point: one argparse tree, one subcommand module each.

Exit codes (the same for the same mistake in every command): 0 ok, 1 runtime error
(a file that cannot be read included), 2 usage, 3 missing prerequisite (with the fix),
4 `diagnose --exit-code` found something, 130 interrupted (SIGINT, after draining).
Logs go to stderr; stdout carries only the chosen output format.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import re
import sys
from collections.abc import Sequence
from typing import Any, Protocol

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

DESCRIPTION = """\
See what the kernel does to packets on a Kubernetes node: drops with the kernel's
reason, flows, NAT, routes, TCP and socket errors, and the root causes they add up to.

exit status: 0 ok, 1 runtime error (a file that cannot be read included), 2 usage,
3 missing prerequisite, 4 diagnose --exit-code found something, 130 interrupted"""

EPILOG = """examples:
  nodetrace lab run masquerade-missing    see a broken node explained (no cluster needed)
  nodetrace doctor                        what this kernel supports
  nodetrace trace -o jsonl --duration 10s what this node does to packets, as JSON lines
  nodetrace diagnose --from node.ntrec    a recording's root causes, anywhere, no root
"""


class _Handler(Protocol):
    def __call__(self, args: argparse.Namespace) -> int: ...


_PARSER = "_nodetrace_parser"   # the namespace attribute naming the deepest parser


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Prose paragraphs wrapped to the terminal; laid-out ones (examples, tables:
    lines indented by two spaces) kept as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        out = []
        for para in text.strip("\n").split("\n\n"):
            laid_out = any(line.startswith("  ") for line in para.splitlines())
            out.append(super()._fill_text(para, width, indent) if laid_out
                       else argparse.HelpFormatter._fill_text(self, para, width, indent))
        return "\n\n".join(out) + ("\n" if text.endswith("\n") else "")


class _Parser(argparse.ArgumentParser):
    """Errors raise UsageError carrying this (sub)command's usage; every subcommand
    takes -v as the top level does."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["formatter_class"] = _HelpFormatter
        super().__init__(*args, **kwargs)
        if self.prog != "nodetrace":
            self.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                              help="more log detail on stderr (-vv for debug)")

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None,
                         ) -> tuple[argparse.Namespace, list[str]]:
        ns, extra = super().parse_known_args(args, namespace)
        # a subcommand's parser returns first: the deepest one is kept
        if not hasattr(ns, _PARSER):
            setattr(ns, _PARSER, self)
        return ns, extra

    def _get_values(self, action: argparse.Action, arg_strings: list[str]) -> Any:
        # argparse drops a "--" value (`--until=--`) and hands the flag an empty list,
        # unconverted: a value the types never saw
        if action.nargs is None and action.option_strings and arg_strings == ["--"]:
            self.error(f"argument {'/'.join(action.option_strings)}: expected one argument")
        return super()._get_values(action, arg_strings)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise usage_error(self, message)


def usage_error(parser: argparse.ArgumentParser, message: str) -> UsageError:
    command = parser.prog.removeprefix("nodetrace").strip()
    return UsageError(f"{command}: {message}" if command else message,
                      detail=parser.format_usage().rstrip())


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nodetrace", description=DESCRIPTION, epilog=EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
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


# what would break the error onto more lines (a file name may hold a newline)
_LINE_BREAKS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text: str) -> str:
    return _LINE_BREAKS.sub(lambda m: repr(m.group())[1:-1], text)


def main(argv: Sequence[str] | None = None, *,
         parser: argparse.ArgumentParser | None = None) -> int:
    """`parser`: a tree from build_parser() (a test may swap handlers for checks)."""
    try:
        parser = parser or build_parser()
        args, extra = parser.parse_known_args(argv)
        if extra:   # reported by the subcommand that did not know them, with its usage
            raise usage_error(getattr(args, _PARSER, parser),
                              f"unrecognized arguments: {' '.join(extra)}")
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
        print(f"nodetrace: error: {one_line(exc.message)}", file=sys.stderr)
        if exc.detail:
            print(exc.detail.rstrip(), file=sys.stderr)
        if exc.fix:
            print(f"nodetrace: fix: {exc.fix}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:
        # a file a command could not open or read, not reported nearer: still one line
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"nodetrace: error: {one_line(f'cannot read {where}{exc.strerror or exc}')}",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
