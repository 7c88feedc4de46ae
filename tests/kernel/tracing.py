"""Run the real `nodetrace trace` inside a namespace and collect its JSON lines.

Synchronises on the ready file (written once every probe is attached), never on sleeps.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tracer.lab.netns import Netns


@dataclass
class TraceRun:
    proc: subprocess.Popen[str]
    ready: Path
    stdout: str = ""
    stderr: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)

    def wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.ready.exists():
            if self.proc.poll() is not None:
                _out, err = self.proc.communicate()
                raise AssertionError(f"trace exited {self.proc.returncode} before attaching: "
                                     f"{err}")
            assert time.monotonic() < deadline, "trace did not attach in time"
            time.sleep(0.02)

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 20) -> int:
        """SIGTERM, the stop a service manager asks for: exit 0 after the drain (SIGINT
        drains the same way and exits 130, as an interrupted command)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.finish(timeout_s)

    def finish(self, timeout_s: float = 30) -> int:
        self.stdout, self.stderr = self.proc.communicate(timeout=timeout_s)
        self.events = [json.loads(line) for line in self.stdout.splitlines() if line.strip()]
        return self.proc.returncode

    def drops(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["kind"] == "drop"]


@contextlib.contextmanager
def tracing(ns: Netns | None, tmp: Path, *extra: str,
            ready_timeout_s: float = 60) -> Iterator[TraceRun]:
    """A trace run that is ended (SIGKILL as a last resort) whatever the test does."""
    run = start_trace(ns, tmp, *extra, ready_timeout_s=ready_timeout_s)
    try:
        yield run
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.communicate(timeout=10)


def start_trace(ns: Netns | None, tmp: Path, *extra: str,
                ready_timeout_s: float = 60) -> TraceRun:
    ready = tmp / "ready"
    ready.unlink(missing_ok=True)  # a ready file of an earlier run must not count
    cmd = [sys.executable, "-m", "tracer.cli.main", "trace", "-o", "jsonl",
           "--ready-file", str(ready), *extra]
    if ns is not None:
        cmd = ["ip", "netns", "exec", ns.name, *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = TraceRun(proc, ready)
    try:
        run.wait_ready(ready_timeout_s)
    except BaseException:
        proc.kill()
        proc.communicate(timeout=10)
        raise
    return run


def raw(endpoint: dict[str, object]) -> dict[str, object]:
    """The kernel's fields of an endpoint, without the Kubernetes names beside them."""
    return {"ip": endpoint["ip"], "port": endpoint["port"]}


def poke(ns: Netns, proto: str, host: str, port: int, *, sport: int = 0,
         timeout_s: float = 1.0, count: int = 1, vary_sport: bool = False) -> str:
    return ns.exec(sys.executable, "-m", "tracer.lab.poke", proto, host, str(port),
                   "--sport", str(sport), "--timeout", str(timeout_s), "--count", str(count),
                   *(["--vary-sport"] if vary_sport else []), timeout=120).stdout.strip()


def of(run: TraceRun, kind: str, **match: Any) -> list[dict[str, Any]]:
    """Events of `kind` whose fields include `match` (dotted names reach into dicts)."""
    out = []
    for e in run.events:
        if e["kind"] != kind:
            continue
        ok = True
        for key, want in match.items():
            value: Any = e
            for part in key.split("__"):
                value = value.get(part) if isinstance(value, dict) else None
            ok = ok and value == want
        if ok:
            out.append(e)
    return out
