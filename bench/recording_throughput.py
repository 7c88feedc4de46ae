"""What recording costs and how fast recordings read back.

1. Writing overhead: the live session's user-space work at 100 k events/s (raw
   ring-buffer records decoded by the real Decoder, path marks, `-o jsonl` to
   /dev/null), paced in 10 ms batches as the live source drains, with and without the
   RecordingWriter tee.  Reported as the CPU the writer adds, in % of one core and as
   a ratio against the unrecorded session; runs alternate and pair, so drift cancels.
2. `nodetrace replay FILE --fast -o jsonl -j 2` and `-j 1` (the real CLI entry,
   in-process, stdout to /dev/null): events per second of wall time, and per CPU
   second of both processes.
   Then the same replay taken apart: CPU per event in each stage (the source with the
   reader, path marks, enrichment, diagnosis, the jsonl sink).
3. Decode-only: RecordingReader read to the end, yielding the typed records the
   pipeline consumes (framing with the caps, validation of every value's type, the
   frozen model events and their nested structs) and nothing else: as replay reads
   them (`chunks()`, a block's events in one list, under replay's GC setting), the
   same under the default GC, and one item at a time; and msgpack framing alone.
4. File size per event, for the golden recording's mix of kinds.

No root needed (nothing attaches).  Process CPU time is the measure: other work on
the machine slows the wall clock, not this process's CPU seconds.

    PYTHONPATH=. .venv/bin/python bench/recording_throughput.py [--runs 5] [--seconds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import ipaddress
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import msgpack

from tracer.cli import main as cli
from tracer.cli import replay_cmd
from tracer.events import schema
from tracer.events.model import Event
from tracer.modes import build
from tracer.pipeline.decode import DecodeContext, Decoder
from tracer.pipeline.path import PathMarker
from tracer.recording import RecordingReader, load
from tracer.recording.format import LIMITS
from tracer.recording.writer import EndInfo, RecordingWriter, RecordSpec, SessionFacts
from tracer.sinks.jsonl import JsonlSink

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "data" / "golden.ntrec"
RATE = 100_000
BATCH_S = 0.01
FACTS = SessionFacts(kernel_release="bench", attached=[], unavailable={}, drop_reasons={},
                     mono_to_wall_ns=0, pod_networks=["10.42.0.0/24"],
                     service_networks=["10.43.0.0/16"], node="bench")


def _pack(ws: schema.WireStruct, values: dict[str, object]) -> bytes:
    full: dict[str, object] = {f.name: (b"" if f.fmt.endswith("s") else 0) for f in ws.fields}
    full.update(values)
    return ws.struct.pack(*(full[n] for n in ws.names))


def _tuple(prefix: str, src: str, dst: str, sport: int, dport: int) -> dict[str, object]:
    return {f"{prefix}.saddr": socket.inet_pton(socket.AF_INET, src),
            f"{prefix}.daddr": socket.inet_pton(socket.AF_INET, dst),
            f"{prefix}.sport": sport, f"{prefix}.dport": dport, f"{prefix}.family": 4,
            f"{prefix}.proto": 6, f"{prefix}.tcp_flags": 2}


def raw_batch(n: int) -> list[bytes]:
    """Ring-buffer records as the kernel writes them: 3 flows to 1 drop."""
    out = []
    for i in range(n):
        sport = 30000 + i % 20000
        if i % 4 == 3:
            out.append(_pack(schema.DROP, {
                "hdr.ts_ns": 10**9 + i, "hdr.netns_ino": 7, "hdr.kind": 1,
                "hdr.len": schema.DROP.size, "location": 0xFFFF0000, "reason_raw": 12,
                "ifindex": 3, "skb_len": 60, "l3_proto": 0x800, "ifname": b"eth0", "count": 1,
                **_tuple("tuple", "10.42.0.5", "192.168.2.10", sport, 5432)}))
        else:
            out.append(_pack(schema.FLOW, {
                "hdr.ts_ns": 10**9 + i, "hdr.netns_ino": 7,
                "hdr.kind": int(schema.EvKind.FLOW), "hdr.len": schema.FLOW.size,
                "first_ns": 10**9, "last_ns": 10**9 + i, "packets": 2, "bytes": 120,
                "ifindex": 4, "direction": 1, "report": 2, "tcp_flags_seen": 0x02,
                **_tuple("tuple", "10.42.0.5", "192.168.2.10", sport, 5432)}))
    return out


def session_cpu(seconds: float, record: Path | None) -> tuple[float, float, int]:
    """CPU seconds of `seconds` of a paced session at RATE events/s, and of the
    writer's calls within it (measured around them: robust against a busy machine,
    where the difference of two whole-session figures is noise)."""
    ctx = DecodeContext(drop_reasons={12: "NETFILTER_DROP"}, resolve_location=hex,
                        mono_to_wall_ns=time.time_ns() - time.monotonic_ns(),
                        ifname_of=lambda i: "eth0", role_of=lambda i: "uplink")
    decoder = Decoder(ctx)
    marker = PathMarker([ipaddress.ip_network("10.42.0.0/24")],
                        [ipaddress.ip_network("10.43.0.0/16")])
    per_batch = int(RATE * BATCH_S)
    raws = raw_batch(per_batch)
    with open(os.devnull, "w") as null:
        sink = JsonlSink(null)
        writer = RecordingWriter(RecordSpec(record), FACTS) if record else None
        batches = int(seconds / BATCH_S)
        t_cpu = time.thread_time()
        writer_cpu = 0.0
        due = time.monotonic()
        for _ in range(batches):
            events = decoder.decode_all(raws)
            if writer is not None:
                t_w = time.thread_time()
                writer.write(events)
                writer_cpu += time.thread_time() - t_w
            sink.write(marker.process(events))
            due += BATCH_S
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        total = time.thread_time() - t_cpu
        if writer is not None:
            writer.finish(EndInfo("stopped"))
        return total, writer_cpu, batches * per_batch


def synthetic_recording(path: Path, events: int) -> int:
    """The golden recording's events, repeated (fresh times) up to `events`."""
    base = [e for e in load(GOLDEN).events]
    w = RecordingWriter(RecordSpec(path), FACTS)
    t0 = time.time_ns()
    batch: list[Event] = []
    for i in range(events):
        ev = base[i % len(base)]
        batch.append(dataclasses.replace(ev, wall_ns=t0 + i * 1000))
        if len(batch) == 1000:
            w.write(batch)
            batch = []
    w.write(batch)
    w.finish(EndInfo("stopped"))
    return path.stat().st_size


@contextlib.contextmanager
def stdout_to_devnull() -> Iterator[None]:
    saved = os.dup(1)
    null = os.open(os.devnull, os.O_WRONLY)
    sys.stdout.flush()
    os.dup2(null, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(null)
        os.close(saved)


def replay_rate(path: Path, events: int, jobs: int) -> tuple[float, float]:
    """Events per second of wall time and per CPU second (the worker's included)."""
    with stdout_to_devnull():
        t_wall, t0 = time.perf_counter(), os.times()
        assert cli.main(["replay", str(path), "--fast", "-o", "jsonl", "-j", str(jobs)]) == 0
        wall, t1 = time.perf_counter() - t_wall, os.times()
    cpu = (t1.user + t1.system + t1.children_user + t1.children_system
           - t0.user - t0.system - t0.children_user - t0.children_system)
    return events / wall, events / cpu


STAGES = ("source and reader", "path-marks", "kubernetes-names", "pod-filter", "diagnosis",
          "jsonl sink")


def replay_stages(path: Path, events: int) -> dict[str, float]:
    """CPU us per event in each stage of `replay --fast -o jsonl` (replay's pipeline,
    with the CLI's GC setting, timed around each stage)."""
    spent = dict.fromkeys(STAGES, 0.0)
    clock = time.thread_time
    with RecordingReader(path) as reader, open(os.devnull, "w") as null, \
            replay_cmd.batch_sized_gc():
        rep = build.replay(reader)
        assert rep.pipeline.names == STAGES[1:-1], rep.pipeline.names
        sink = JsonlSink(null)
        batches = rep.source.batches(threading.Event())
        while True:
            t0 = clock()
            batch = next(batches, None)
            t1 = clock()
            if batch is None:
                break
            spent["source and reader"] += t1 - t0
            out: Sequence[Event] = batch
            for stage in rep.pipeline.stages:
                t = clock()
                out = stage.process(out)
                spent[stage.name] += clock() - t
            t = clock()
            sink.write(out)
            for stage in rep.pipeline.stages:
                sink.write(stage.take())
            spent["jsonl sink"] += clock() - t
    return {stage: dt / events * 1e6 for stage, dt in spent.items()}


def _chunks_rate(path: Path) -> float:
    t = time.process_time()
    with RecordingReader(path) as r:
        n = sum(len(c) if type(c) is list else 1 for c in r.chunks())
    return n / (time.process_time() - t)


def decode_rate(path: Path) -> tuple[float, float, float, float]:
    """Records (events, and the few others) to model objects per second:
    - as `nodetrace replay` reads them: `chunks()` (a block's events as one list),
      under replay's GC setting (replay_cmd.batch_sized_gc);
    - the same under Python's default GC, whose full collections walk the whole heap
      again and again while a block's events are young;
    - one item at a time (`for item in reader`), default GC;
    and events per second of msgpack's framing alone."""
    with replay_cmd.batch_sized_gc():
        as_replay = _chunks_rate(path)
    default_gc = _chunks_rate(path)
    t = time.process_time()
    with RecordingReader(path) as r:
        n = sum(1 for _ in r)
    items = n / (time.process_time() - t)
    t = time.process_time()
    with open(path, "rb") as f:
        unpacker = msgpack.Unpacker(f, read_size=LIMITS.read_size,
                                    max_buffer_size=LIMITS.max_buffer,
                                    max_array_len=LIMITS.max_items,
                                    max_map_len=LIMITS.max_items, max_str_len=LIMITS.max_str,
                                    max_bin_len=LIMITS.max_str)
        for _ in unpacker:
            pass
    framing = n / (time.process_time() - t)
    return as_replay, default_gc, items, framing


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--events", type=int, default=300_000)
    args = ap.parse_args()
    threading.current_thread().name = "bench"
    with tempfile.TemporaryDirectory(prefix="nt-bench-rec-") as tmp:
        rec = Path(tmp) / "s.ntrec"
        base_us, write_us, ratios = [], [], []
        for _ in range(args.runs):
            base_cpu, _, n = session_cpu(args.seconds, None)
            rec_cpu, writer_cpu, _ = session_cpu(args.seconds, rec)
            base_us.append(base_cpu / n * 1e6)
            write_us.append(writer_cpu / n * 1e6)
            ratios.append(rec_cpu / base_cpu)
        w, b = statistics.median(write_us), statistics.median(base_us)
        print(f"writing: {w:.2f} us per event (runs: {', '.join(f'{x:.2f}' for x in write_us)})"
              f" = {w * RATE / 1e4:.1f} % of a core at {RATE // 1000} k events/s; the "
              f"session's CPU +{w / b * 100:.1f} % (unrecorded: {b:.1f} us per event: decode, "
              f"path marks, jsonl; whole-session ratio x{statistics.median(ratios):.3f})")

        big = Path(tmp) / "big.ntrec"
        size = synthetic_recording(big, args.events)
        print(f"file size: {size / args.events:.0f} bytes per event "
              f"(the golden recording's mix of kinds, {args.events} events)")
        golden = load(GOLDEN)
        print(f"golden recording: {GOLDEN.stat().st_size} bytes for {len(golden.events)} "
              "events, header and node state included")
        for jobs in (2, 1):
            walls, cpus = zip(*(replay_rate(big, args.events, jobs)
                                for _ in range(args.runs)), strict=True)
            print(f"replay --fast -o jsonl -j {jobs}: {statistics.median(walls) / 1000:.0f} k "
                  f"events/s wall (runs: {', '.join(f'{w / 1000:.0f}' for w in walls)}), "
                  f"{statistics.median(cpus) / 1000:.0f} k events per CPU second")
        split = [replay_stages(big, args.events) for _ in range(args.runs)]
        print("replay, CPU us per event by stage: " + ", ".join(
            f"{stage} {statistics.median(s[stage] for s in split):.2f}" for stage in STAGES))
        rates = [decode_rate(big) for _ in range(args.runs)]
        replays, defaults, items, framings = zip(*rates, strict=True)

        def k(xs: tuple[float, ...]) -> str:
            return f"{statistics.median(xs) / 1000:.0f} k"
        print(f"decode-only: {k(replays)} records/s to model events as replay reads them "
              f"(chunks, replay's GC setting; runs: "
              f"{', '.join(f'{m / 1000:.0f}' for m in replays)}); {k(defaults)}/s with the "
              f"default GC; {k(items)}/s one item at a time (default GC); msgpack framing "
              f"alone, with the reader's caps, {k(framings)} records/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
