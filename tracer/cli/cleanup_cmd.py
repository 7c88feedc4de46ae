"""`nodetrace cleanup`: remove tc filters left by nodetrace runs that died.

tcx links and tracepoints go with the process; legacy cls_bpf filters do not.  Only
filters tagged as ours (`nodetrace/<pid>/<start time>`) whose process is gone are
removed; other filters and qdiscs are never touched.  Run it in the node's namespace
(`ip netns exec NS nodetrace cleanup` for a lab node).
"""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("cleanup", help="remove tc filters left by dead nodetrace runs",
                       description="Remove the tc filters left by nodetrace runs that died.  "
                       "tcx links and tracepoints go with the process; legacy cls_bpf "
                       "filters do not.  Only filters tagged as nodetrace's whose process is "
                       "gone are removed; other filters and qdiscs are never touched.  Run it "
                       "in the node's namespace (ip netns exec NS nodetrace cleanup for a lab "
                       "node).", epilog="example:\n  nodetrace cleanup",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(func=main)


def main(_args: argparse.Namespace) -> int:
    # tracer.kernel only when this command runs: replay must not load it
    from tracer.kernel.loader import require_privileges
    from tracer.kernel.tc import sweep_stale

    require_privileges()
    removed = sweep_stale()
    for what in removed:
        print(f"removed {what}")
    print(f"{len(removed)} stale nodetrace filter(s) removed")
    return 0
