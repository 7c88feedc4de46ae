"""Make tests/data/golden.ntrec (and golden.jsonl, what the live run printed at the same
time) from the real tracer on the lab scenario `masquerade-missing`, as root:

    sudo PYTHONPATH=. .venv/bin/python tests/data/make_golden.py

What it does is what an operator does: `ip netns exec <node1> nodetrace trace -o jsonl
--record FILE`, the scenario's traffic driven once every probe is attached (the failing
connection to the external database, the Service that still works), then SIGINT.  The
recording holds that scenario's flow, nat, drop and tcp events, the node's state
(routes, sysctls, iptables-save, listeners) and the end record.

It feeds the unit tests of the recording format (truncation at every byte offset,
corruption, replay), the TUI and diagnosis tests: keep it small (well under 200 KB).

When the format changes how records are laid out (2.0's blocks, 2.1's checked
frames), keep the old file as golden-X.Y.ntrec (the reader must still read it:
tests/unit/test_recording_format.py, the hostile tests) and re-encode the same session
in the new format, so every test that replays it sees the same events:

    PYTHONPATH=. .venv/bin/python tests/data/make_golden.py --reencode
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from tracer.lab import lifecycle, runner  # noqa: E402
from tracer.lab.cluster import CLUSTER_CIDR, SERVICE_CIDR  # noqa: E402

SCENARIO = "masquerade-missing"
LAB_LOCK = "/run/nodetrace-lab.test-lock"   # tests/kernel/lab_fixtures.py: one lab at a time
SIZE_LIMIT = 200_000
SETTLE_S = 1.5                              # the last flows report before the stop


def say(text: str) -> None:
    print(f"make_golden: {text}", file=sys.stderr, flush=True)


def record(lab: lifecycle.Lab, tmp: Path) -> tuple[bytes, bytes]:
    ready, rec = tmp / "ready", tmp / "golden.ntrec"
    node = lab.scenario.trace_node
    # names from the node's API stand-in (recorded as metadata), findings named as well
    argv = [sys.executable, "-m", "tracer.cli.main", "trace", "-o", "jsonl",
            "--record", str(rec), "--ready-file", str(ready),
            "--cluster-cidr", CLUSTER_CIDR, "--service-cidr", SERVICE_CIDR,
            "--kubeconfig", lab.node(node).kubeconfig, "--metadata", lab.state.objects_file,
            "--node", node]
    proc = runner.start_tracer(lab, lab.scenario.trace_node, argv, stdout=subprocess.PIPE,
                               cwd=str(ROOT), env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        runner.wait_for_file(ready, proc, runner.ATTACH_TIMEOUT_S)
        runner.drive(lab, say)
        time.sleep(SETTLE_S)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    if proc.returncode != 130:     # SIGINT: interrupted, after the drain
        raise SystemExit(f"the tracer exited {proc.returncode}")
    return rec.read_bytes(), out


def reencode(path: Path) -> None:
    """The recording at `path`, rewritten in this version's format: its header's facts,
    then every record in order (events as this version writes them)."""
    from tracer.recording.format import MAGIC, VERSION, Rec, schema
    from tracer.recording.metadata import MetadataRecord
    from tracer.recording.reader import EndRecord, RecordingReader, SyncMarker
    from tracer.recording.writer import EventEncoder, NodeState

    enc = EventEncoder()
    events: list[Any] = []

    def flush_events() -> None:
        if events:
            enc.events(events)
            events.clear()

    with RecordingReader(path) as r:
        if r.warnings():
            raise SystemExit(f"{path}: {r.warnings()}")
        enc.record([int(Rec.HEADER), MAGIC, list(VERSION), {**r.header.raw, "schema": schema()}])
        for item in r:
            if isinstance(item, MetadataRecord):
                flush_events()
                enc.record([int(Rec.METADATA), item.wall_ns, item.kind, item.action, item.obj])
            elif isinstance(item, NodeState):
                flush_events()
                enc.record([int(Rec.NODE_STATE), item.wall_ns, dict(item.items)])
            elif isinstance(item, SyncMarker):
                flush_events()
                enc.record([int(Rec.SYNC), item.wall_ns, item.mono_ns, item.events])
            elif isinstance(item, EndRecord):
                flush_events()
                info = item.info
                enc.record([int(Rec.END), item.wall_ns, {
                    "reason": info.reason, "events": item.events, "received": info.received,
                    "decode_errors": info.decode_errors, "lost": dict(info.lost),
                    "next_part": item.next_part}])
            else:
                events.append(item)
        flush_events()
        if r.warnings():
            raise SystemExit(f"{path}: {r.warnings()}")
    path.write_bytes(enc.take())
    say(f"{path.name}: re-encoded in format {VERSION[0]}.{VERSION[1]}, "
        f"{path.stat().st_size} bytes")


def main() -> int:
    if sys.argv[1:] == ["--reencode"]:
        reencode(HERE / "golden.ntrec")
        return 0
    with open(LAB_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with lifecycle.lab_running(SCENARIO, ttl_s=300) as lab, \
                tempfile.TemporaryDirectory(prefix="nt-golden-") as tmp:
            data, out = record(lab, Path(tmp))
    if len(data) > SIZE_LIMIT:
        raise SystemExit(f"the recording is {len(data)} bytes (limit {SIZE_LIMIT})")
    (HERE / "golden.ntrec").write_bytes(data)
    (HERE / "golden.jsonl").write_bytes(out)
    kinds: dict[str, int] = {}
    for line in out.decode().splitlines():
        kind = line.split('"kind":"', 1)[1].split('"', 1)[0]
        kinds[kind] = kinds.get(kind, 0) + 1
    say(f"golden.ntrec: {len(data)} bytes, {len(out.splitlines())} events {kinds}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
