"""`nodetrace doctor`: one line per capability, with what it means for tracing."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tracer.cli.options import DOCUMENT_OUTPUTS, add_output_choice, write_document


def register(sub: Any) -> None:
    p = sub.add_parser("doctor", help="check what this kernel and host support",
                       description="Check BTF, kernel headers, tracepoints, kprobes, fentry, "
                       "tc/tcx, ring buffer and privileges. Exit 0 if tracing can run, "
                       "3 (with the fix) if not.",
                       epilog="examples:\n  nodetrace doctor\n  nodetrace doctor -o json | jq "
                       ".checks\n  nodetrace doctor -o yaml",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_output_choice(p, DOCUMENT_OUTPUTS, "table",
                      "table (default): one line per check; json, yaml: one document")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from tracer.kernel.features import probe  # only when this command runs (replay)

    feats = probe()
    if args.output in ("json", "yaml"):
        write_document(feats.to_json(), args.output, sys.stdout)
    else:
        width = max(len(c.name) for c in feats.checks)
        print(f"kernel {feats.kernel}")
        for c in feats.checks:
            mark = "ok " if c.ok else ("!! " if c.required else "-- ")
            print(f"{mark}{c.name.ljust(width)}  {c.verdict:<11} {c.meaning}")
            if not c.ok and c.fix:
                print(f"   {' ' * width}  fix: {c.fix}")
        print("tracing can run" if feats.can_trace else "tracing cannot run: see !! lines")
    return 0 if feats.can_trace else 3
