"""The output stream survives a signal that arrives while a write is blocked on a full
pipe: every line written is whole (buffered stdout loses the rest of such a write)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

WRITER = r"""
import json, signal, sys, threading
from tracer.sinks.output import OutputStream
stop = threading.Event()
signal.signal(signal.SIGINT, lambda *_: stop.set())
out = OutputStream(sys.stdout)
print("ready", file=sys.stderr, flush=True)
for i in range(0, 6000, 500):    # each write ~160 KB: more than the pipe holds
    out.write("".join(json.dumps({"i": i + k, "pad": "y" * 300}) + "\n" for k in range(500)))
"""


def test_every_line_is_whole_after_signals_during_blocked_writes() -> None:
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, "-c", WRITER], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None and proc.stderr.readline().strip() == "ready"
        time.sleep(0.2)             # the 64 KiB pipe is full: the writer is blocked
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert [json.loads(line)["i"] for line in out.splitlines()] == list(range(6000))
