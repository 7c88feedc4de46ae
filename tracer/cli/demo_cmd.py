"""`nodetrace demo`: the built-in drop demo, in namespaces of its own (no cluster)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tracer.cli.options import add_output_choice, duration_s
from tracer.lab.demo import CLOSED_UDP_PORT, DROPPED_TCP_PORT, DropDemo
from tracer.util.errors import TracerError


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="watch nodetrace explain drops in a built-in demo node",
                       description="Build a node and a pod in network namespaces of their "
                       "own, drop a TCP port in the node's firewall, send traffic from the pod "
                       "and trace it.  Everything is removed afterwards.",
                       epilog="example:\n  nodetrace demo -o jsonl",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_output_choice(p, ("table", "jsonl"), "table", "the tracer's output (default: table)")
    p.add_argument("--duration", type=duration_s, default=6.0, metavar="DURATION",
                   help="how long to trace (default: 6s)")
    p.set_defaults(func=main)


def wait_for(path: Path, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if proc.poll() is not None:
            raise TracerError(f"the tracer exited with {proc.returncode} before attaching")
        if time.monotonic() > deadline:
            raise TracerError(f"the tracer did not attach within {timeout_s:.0f} s")
        time.sleep(0.05)


def main(args: argparse.Namespace) -> int:
    demo = DropDemo()
    print("nodetrace demo: building a node and a pod in network namespaces "
          f"({', '.join(ns.name for ns in demo.namespaces())})", file=sys.stderr)
    demo.up()
    try:
        with tempfile.TemporaryDirectory(prefix="nodetrace-demo-") as tmp:
            ready = Path(tmp) / "ready"
            tracer = demo.node.popen(sys.executable, "-m", "tracer.cli.main", "trace",
                                     "-o", args.output, "--duration", str(args.duration),
                                     "--ready-file", str(ready))
            try:
                wait_for(ready, tracer, 60)
                print(f"nodetrace demo: the pod connects to the node's TCP {DROPPED_TCP_PORT} "
                      f"(dropped by the firewall) and sends to UDP {CLOSED_UDP_PORT} "
                      "(nothing listens)", file=sys.stderr)
                for host in (demo.node_addr.v4, demo.node_addr.v6):
                    demo.pod.exec(sys.executable, "-m", "tracer.lab.poke", "tcp", host,
                                  str(DROPPED_TCP_PORT), "--timeout", "1.5")
                    demo.pod.exec(sys.executable, "-m", "tracer.lab.poke", "udp", host,
                                  str(CLOSED_UDP_PORT))
                tracer.wait(timeout=args.duration + 30)
            finally:
                if tracer.poll() is None:
                    tracer.terminate()
                    tracer.wait(timeout=10)
        return 0 if tracer.returncode == 0 else 1
    finally:
        demo.down()
