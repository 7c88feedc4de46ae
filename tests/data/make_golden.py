"""Make tests/data/golden.ntrec (and golden.jsonl, what the live run printed) from the
real tracer: the built-in drop demo traced with `trace -o jsonl --record`, as root.

    sudo .venv/bin/python tests/data/make_golden.py

The recording feeds the unit tests of the recording format (truncation at every byte,
corruption), replay, the TUI and diagnosis; keep it small (a few dozen events).
Regenerate it when the format's major version changes, and say so in the commit.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from tracer.lab.demo import CLOSED_UDP_PORT, DROPPED_TCP_PORT, DropDemo  # noqa: E402

SPORTS = {"tcp4": 41101, "tcp6": 41102, "udp": 41103}


def poke(demo: DropDemo, *args: str) -> None:
    demo.pod.exec(sys.executable, "-m", "tracer.lab.poke", *args, timeout=60)


def main() -> int:
    demo = DropDemo(prefix="nt-t7g").up()
    try:
        with tempfile.TemporaryDirectory(prefix="nt-t7g-") as tmp:
            ready = Path(tmp) / "ready"
            rec = Path(tmp) / "golden.ntrec"
            proc = demo.node.popen(sys.executable, "-m", "tracer.cli.main", "trace",
                                   "-o", "jsonl", "--record", str(rec),
                                   "--ready-file", str(ready), "--service-cidr", "10.96.0.0/12",
                                   stdout=subprocess.PIPE, cwd=str(ROOT))
            deadline = time.monotonic() + 60
            while not ready.exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    raise SystemExit("the tracer did not attach")
                time.sleep(0.05)
            for host in (demo.node_addr.v4, demo.node_addr.v6):
                sport = SPORTS["tcp4" if ":" not in host else "tcp6"]
                poke(demo, "tcp", host, str(DROPPED_TCP_PORT), "--timeout", "1.2",
                     "--sport", str(sport))
                poke(demo, "udp", host, str(CLOSED_UDP_PORT), "--sport", str(SPORTS["udp"]))
            time.sleep(0.5)   # the last flow reports
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=30)
            if proc.returncode != 0:
                raise SystemExit(f"the tracer exited {proc.returncode}")
            (HERE / "golden.ntrec").write_bytes(rec.read_bytes())
            (HERE / "golden.jsonl").write_bytes(out)
            print(f"golden.ntrec: {rec.stat().st_size} bytes, "
                  f"{len(out.splitlines())} events", file=sys.stderr)
    finally:
        demo.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
