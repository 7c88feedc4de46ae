"""The recording format: every event kind round-trips, metadata and node state come back
in stream order, unknown things are skipped and counted, old versions are upgraded by
fix-ups, and the writer's files are private, flushed, rotated and ended."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
import time
import typing
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.recording_support import (
    ANY_EVENT,
    FACTS,
    GOLDEN,
    pack_records,
    write_recording,
)
from tracer.events import model
from tracer.events.model import DropEvent, Endpoint, Event, FlowEvent
from tracer.recording import MetadataLog, RecordingReader, load
from tracer.recording.format import EVENT_TYPES, MAGIC, VERSION, FixUp, Rec
from tracer.recording.writer import EndInfo, RecordingWriter, RecordSpec, build_header
from tracer.sources.replay import ReplaySource
from tracer.util.errors import RecordingFormatError, TracerError

DROP = DropEvent(ts_ns=5, wall_ns=1_700_000_000_000_000_000, netns=1, ifindex=2,
                 ifname="eth0", reason="NETFILTER_DROP", reason_raw=12,
                 location="nf_hook_slow+0x9b", location_raw=0xffff, family=4, proto=6,
                 src=Endpoint("10.42.0.10", 41000), dst=Endpoint("192.168.2.10", 5432),
                 tcp_flags=2, icmp_type=None, icmp_code=None, length=60, l3_proto=0x800)
POD = {"kind": "Pod", "metadata": {"name": "client", "namespace": "default", "uid": "u-1"},
       "status": {"podIP": "10.42.0.10"}}


def test_every_model_event_kind_has_a_record_type() -> None:
    assert set(EVENT_TYPES.values()) == set(typing.get_args(model.Event))
    assert all(cls.kind == kind for kind, cls in EVENT_TYPES.items())


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(ANY_EVENT, max_size=6), max_size=4))
def test_any_events_round_trip_exactly(tmp_path_factory: pytest.TempPathFactory,
                                       batches: list[list[Event]]) -> None:
    path = tmp_path_factory.mktemp("rt") / "r.ntrec"
    write_recording(path, batches)
    rec = load(path)
    assert rec.events == [ev for b in batches for ev in b]
    assert rec.warnings == []
    assert rec.end is not None and rec.end.events == len(rec.events)
    assert rec.end.info == EndInfo("stopped", 7, 1, {"ringbuf_reserve": 2})


def test_header_carries_the_session(tmp_path: Path) -> None:
    path = tmp_path / "r.ntrec"
    write_recording(path, [[DROP]])
    with RecordingReader(path) as r:
        h = r.header
    assert h.version == VERSION and h.argv == ("nodetrace", "test") and h.node == "node1"
    assert h.kernel_release == "6.18.0-test" and h.attached == ("tracepoint/skb:kfree_skb",)
    assert h.unavailable == {"kprobe/nf_nat_manip_pkt": "no kprobes"}
    assert h.clock.wall_ns - h.clock.mono_ns == FACTS.mono_to_wall_ns
    assert h.drop_reasons == {12: "NETFILTER_DROP"}
    assert h.pod_networks == ("10.42.0.0/24",) and h.service_networks == ("10.43.0.0/16",)
    kinds = [k for k, _cols in h.raw["schema"]["events"]]
    assert kinds == list(EVENT_TYPES)
    assert path.read_bytes().startswith(b"\x94\x00\xb3" + MAGIC.encode())


def test_metadata_and_node_state_come_back_in_stream_order(tmp_path: Path) -> None:
    path = tmp_path / "r.ntrec"
    w = RecordingWriter(RecordSpec(path), FACTS)
    w.write([DROP])
    w.on_change("Pod", "added", POD, 1_700_000_001.5)
    w.write([DROP, DROP])
    w.on_change("Pod", "deleted", POD, 1_700_000_002.0)
    w.write([DROP])
    w.finish(EndInfo("stopped"))

    seen: list[tuple[str, int]] = []
    replayed = 0

    class Index(MetadataLog):
        def on_change(self, kind: str, action: str, obj: Any, at: float) -> None:
            super().on_change(kind, action, obj, at)
            seen.append((action, replayed))

    index = Index()
    with RecordingReader(path) as r:
        for batch in ReplaySource(r, metadata=index).batches(threading.Event()):
            replayed += len(batch)
    assert seen == [("added", 1), ("deleted", 3)]
    assert [(c.kind, c.action, dict(c.obj)) for c in index.changes] == \
        [("Pod", "added", POD), ("Pod", "deleted", POD)]
    assert index.changes[0].at == pytest.approx(1_700_000_001.5)


def test_metadata_objects_may_hold_the_clients_datetimes(tmp_path: Path) -> None:
    import datetime

    path = tmp_path / "r.ntrec"
    when = datetime.datetime(2026, 1, 5, 3, 12, tzinfo=datetime.UTC)
    with RecordingWriter(RecordSpec(path), FACTS) as w:
        w.on_change("Node", "updated", {"metadata": {"name": "n", "creationTimestamp": when}},
                    time.time())
        with pytest.raises(ValueError):
            w.on_change("Node", "renamed", {}, time.time())
        with pytest.raises(TypeError):
            w.on_change("Node", "added", {"x": object()}, time.time())
    (change,) = load(path).metadata
    assert change.obj["metadata"]["creationTimestamp"] == "2026-01-05T03:12:00Z"


def _raw_recording(path: Path, records: list[list[Any]], *, version: list[int] | None = None,
                   header: dict[str, Any] | None = None) -> None:
    h = header or build_header(FACTS, ["nodetrace"], 0)
    packer = msgpack.Packer()
    version = version or list(VERSION)
    data = packer.pack([int(Rec.HEADER), MAGIC, version, h])
    path.write_bytes(data + pack_records(records, checked=tuple(version) >= (2, 1)))


def _drop_row(h: dict[str, Any], values: dict[str, Any]) -> list[Any]:
    kinds = [k for k, _ in h["schema"]["events"]]
    cols = dict(h["schema"]["events"])["drop"]
    return [int(Rec.EVENT), kinds.index("drop"), *(values[c] for c, _s in cols)]


def _block(kind: int, cols: list[str], rows: list[dict[str, Any]]) -> list[Any]:
    """A 2.x block of one kind, every column a dictionary (docs/recording-format.md),
    built without the writer."""
    columns = []
    for c in cols:
        values = [r[c] for r in rows]
        distinct: list[Any] = []
        for v in values:
            if v not in distinct:
                distinct.append(v)
        idx = b"" if len(distinct) == 1 else bytes(distinct.index(v) for v in values)
        columns.append([distinct, idx])
    return [int(Rec.EVENTS), bytes([kind]) * len(rows), [[kind, columns]]]


def _events(layout: str, kind: int, cols: list[str], rows: list[dict[str, Any]]) -> list[Any]:
    """The same events as 1.x rows or as one 2.x block."""
    if layout == "rows":
        return [[int(Rec.EVENT), kind, *(r[c] for c in cols)] for r in rows]
    return [_block(kind, cols, rows)]


def _drop_values() -> dict[str, Any]:
    v: dict[str, Any] = {
        "ts_ns": DROP.ts_ns, "wall_ns": DROP.wall_ns, "netns": 1, "ifindex": 2,
        "ifname": "eth0", "reason": "NETFILTER_DROP", "reason_raw": 12,
        "location": "nf_hook_slow+0x9b", "location_raw": 0xffff, "family": 4, "proto": 6,
        "src.ip": "10.42.0.10", "src.port": 41000, "dst.ip": "192.168.2.10",
        "dst.port": 5432, "tcp_flags": 2, "icmp_type": None, "icmp_code": None,
        "length": 60, "l3_proto": 0x800, "count": 1, "marks": [], "forwarding": None,
        "aggregated": None}
    return v


def test_unknown_record_types_values_and_columns_are_skipped_and_counted(
        tmp_path: Path) -> None:
    h = build_header(FACTS, ["nodetrace"], 0)
    h["from_the_future"] = {"x": 1}                          # unknown header key: kept
    cols = dict(h["schema"]["events"])["drop"]
    cols.append(["hops", None])                             # a column a newer writer added
    h["schema"]["events"].append(["teleport", [["ts_ns", None]]])   # a newer kind
    values = {**_drop_values(), "hops": 3}
    row = _drop_row(h, values)
    path = tmp_path / "r.ntrec"
    _raw_recording(path, [
        row, [99, "a record type of a later version"], row,
        [int(Rec.EVENT), len(h["schema"]["events"]) - 1, 5],          # the newer kind
        [int(Rec.SYNC), 1, 2, 3, "extra"],                             # an extra value
        [int(Rec.EVENT), 0, "too", "short"],                           # malformed
        row], header=h)
    rec = load(path)
    assert rec.events == [DROP, DROP, DROP]
    text = "\n".join(rec.warnings)
    assert "column drop.hops unknown to this nodetrace, ignored (3 records)" in text
    assert "record type 99 unknown to this nodetrace, skipped (1 record)" in text
    assert "event kind 'teleport' unknown to this nodetrace (1 record)" in text
    assert "1 unknown value(s) in sync records ignored (1 record)" in text
    assert "malformed record skipped (wrong number of values) (1 record)" in text
    assert rec.header.raw["from_the_future"] == {"x": 1}


def test_blocks_skip_unknown_kinds_and_columns_and_count_their_events(
        tmp_path: Path) -> None:
    h = build_header(FACTS, ["nodetrace"], 0)
    cols = dict(h["schema"]["events"])["drop"]
    cols.append(["hops", None])
    h["schema"]["events"].append(["teleport", [["ts_ns", None]]])
    drop, teleport = [k for k, _ in h["schema"]["events"]].index("drop"), \
        len(h["schema"]["events"]) - 1
    names = [c for c, _s in cols]
    block = _block(drop, names, [{**_drop_values(), "hops": 3}] * 3)
    block[1] = bytes([drop, teleport, drop, teleport, drop])
    block[2].append([teleport, [[[5], b""]]])
    orphan = _block(drop, names, [{**_drop_values(), "hops": 3}])
    orphan[1] += bytes([teleport])                       # a kind without an entry
    path = tmp_path / "r.ntrec"
    _raw_recording(path, [block, orphan, [*block, "a later value"], [int(Rec.EVENTS)]],
                   header=h)
    rec = load(path)
    assert rec.events == [DROP] * 6
    text = "\n".join(rec.warnings)
    assert "column drop.hops unknown to this nodetrace, ignored (6 records)" in text
    assert "event kind 'teleport' unknown to this nodetrace (4 records)" in text
    assert ("malformed record skipped (a block's order names a kind it has no entry "
            "for) (1 record)") in text
    assert "1 unknown value(s) in event block records ignored (1 record)" in text
    assert "malformed record skipped (a block without entries) (1 record)" in text


@pytest.mark.parametrize("layout", ["rows", "block"])
def test_an_older_version_is_upgraded_by_declarative_fixups(tmp_path: Path,
                                                           layout: str) -> None:
    # format 0.9, as a fictional older nodetrace wrote it: the kind was "packet_drop",
    # the reason column "reason_name", "l3_proto" did not exist, "legacy" meant something
    h = build_header(FACTS, ["nodetrace"], 0)
    h["kernel_version"] = h.pop("kernel")
    old_cols = [["reason_name" if c == "reason" else c, s]
                for c, s in dict(h["schema"]["events"])["drop"] if c != "l3_proto"]
    old_cols.append(["legacy", None])
    h["schema"]["events"] = [["packet_drop", old_cols]]
    values = {**_drop_values(), "reason_name": "NETFILTER_DROP", "legacy": "x"}
    path = tmp_path / "old.ntrec"
    _raw_recording(path, _events(layout, 0, [c for c, _s in old_cols], [values]),
                   version=[0, 9], header=h)
    fixups = (
        FixUp(before=(1, 0), rename={"kernel_version": "kernel"}),
        FixUp(before=(1, 0), kind="packet_drop", rename_kind="drop",
              rename={"reason_name": "reason"}, defaults={"l3_proto": 0x800},
              drop=("legacy",)),
    )
    rec = load(path, fixups=fixups)
    assert rec.events == [DROP] and rec.warnings == []
    assert rec.header.kernel_release == "6.18.0-test"
    # without the fix-ups, the old kind is reported, not misread
    plain = load(path, fixups=())
    assert plain.events == []
    assert any("packet_drop" in w for w in plain.warnings)
    # a fix-up for versions before 0.9 leaves a 0.9 file alone
    assert load(path, fixups=(FixUp(before=(0, 9), kind="packet_drop",
                                    rename_kind="drop"),)).events == []


@pytest.mark.parametrize("layout", ["rows", "block"])
def test_a_fixup_default_inside_a_flattened_struct(tmp_path: Path, layout: str) -> None:
    """A column of a flattened struct that an older version did not write ("dst.port"
    here) takes its fix-up default: the struct is built from columns and defaults."""
    h = build_header(FACTS, ["nodetrace"], 0)
    cols = [[c, s] for c, s in dict(h["schema"]["events"])["drop"] if c != "dst.port"]
    h["schema"]["events"] = [["drop", cols]]
    values = _drop_values()
    path = tmp_path / "old.ntrec"
    _raw_recording(path, _events(layout, 0, [c for c, _s in cols], [values] * 2),
                   version=[0, 9], header=h)
    fixups = (FixUp(before=(1, 0), kind="drop", defaults={"dst.port": 5432}),)
    rec = load(path, fixups=fixups)
    assert rec.events == [DROP, DROP] and rec.warnings == []
    unfixed = load(path, fixups=())
    assert unfixed.events == [] and any("dst.port" in w for w in unfixed.warnings)


def test_a_newer_minor_version_reads_and_a_newer_major_is_refused(tmp_path: Path) -> None:
    h = build_header(FACTS, ["nodetrace"], 0)
    path = tmp_path / "r.ntrec"
    _raw_recording(path, [_drop_row(h, _drop_values())], version=[VERSION[0], 99], header=h)
    assert load(path).events == [DROP]
    _raw_recording(path, [], version=[VERSION[0] + 1, 0], header=h)
    with pytest.raises(RecordingFormatError, match="newer nodetrace"):
        load(path)


# --- the writer's files ---------------------------------------------------------------


def test_files_are_created_0600_even_over_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "r.ntrec"
    path.write_text("old")
    path.chmod(0o644)
    old_umask = os.umask(0)
    try:
        write_recording(path, [[DROP]])
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    link = tmp_path / "link.ntrec"
    link.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(TracerError, match="cannot write the recording"):
        RecordingWriter(RecordSpec(link), FACTS)
    assert not (tmp_path / "elsewhere").exists()


def test_every_batch_is_in_the_file_when_write_returns(tmp_path: Path) -> None:
    path = tmp_path / "r.ntrec"
    w = write_recording(path, [[DROP] * 3, [DROP]], finish=False)
    rec = load(path)      # another reader, while the writer is open: nothing buffered
    assert len(rec.events) == 4 and rec.end is None
    w.finish(EndInfo("stopped"))


def test_max_size_stops_with_an_end_record_and_a_message(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "r.ntrec"
    full = threading.Event()
    size = 64 << 10
    w = RecordingWriter(RecordSpec(path, max_size=size), FACTS, on_full=full.set)
    while not full.is_set():
        w.write([DROP] * 50)
    w.finish(EndInfo("stopped"))
    rec = load(path)
    assert path.stat().st_size <= size + 200
    assert rec.end is not None and rec.end.info.reason == "max-size"
    assert rec.end.events == len(rec.events) == w.events and w.failed > 0
    assert "reached --max-size" in caplog.text


def test_rotation_keeps_n_parts_each_replayable_on_its_own(tmp_path: Path) -> None:
    path = tmp_path / "r.ntrec"
    size = 64 << 10
    w = RecordingWriter(RecordSpec(path, max_size=size, rotate=2), FACTS)
    w.on_change("Pod", "added", POD, time.time())
    for _ in range(200):
        w.write([DROP] * 50)
    w.finish(EndInfo("stopped"))
    parts = sorted(p.name for p in tmp_path.iterdir())
    assert parts == ["r.ntrec", "r.ntrec.1", "r.ntrec.2"]
    current, older = load(path), load(tmp_path / "r.ntrec.1")
    assert older.end is not None and older.end.info.reason == "rotated"
    assert older.end.next_part == "r.ntrec"
    assert current.end is not None and current.end.info.reason == "stopped"
    assert current.header.part > older.header.part >= 1
    # a later part starts with the objects of the moment: it replays without the others
    assert [c.obj for c in current.metadata] == [POD]
    assert all(p.stat().st_size <= size + 200 for p in tmp_path.iterdir())
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in tmp_path.iterdir())


WRITER_LOOP = """
import sys, time
sys.path.insert(0, {root!r})
from tests.unit.recording_support import write_recording
from tests.unit.test_recording_format import DROP
from tracer.recording.writer import RecordingWriter, RecordSpec
from tests.unit.recording_support import FACTS
w = RecordingWriter(RecordSpec(__import__("pathlib").Path({path!r})), FACTS)
n = 0
while True:
    w.write([DROP] * 100)
    n += 100
    if n == 20000:
        print("written", flush=True)
"""


def test_kill_9_while_writing_leaves_a_file_that_replays(tmp_path: Path) -> None:
    path = tmp_path / "r.ntrec"
    root = str(Path(__file__).resolve().parents[2])
    proc = subprocess.Popen([sys.executable, "-c", WRITER_LOOP.format(root=root,
                                                                      path=str(path))],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "written\n"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    rec = load(path)
    assert len(rec.events) >= 20000 and rec.end is None
    assert all(ev == DROP for ev in rec.events)
    assert all("truncated at offset" in w for w in rec.warnings)


def test_golden_recording_holds_the_masquerade_missing_session() -> None:
    rec = load(GOLDEN)
    assert rec.warnings == []
    kinds = {ev.kind for ev in rec.events}
    assert {"flow", "nat", "tcp"} <= kinds
    assert any("untranslated-pod-source" in (ev.marks if isinstance(ev, FlowEvent) else ())
               for ev in rec.events) is False    # marks are derived again on replay
    assert {m.kind for m in rec.metadata} >= {"Pod", "Service", "EndpointSlice", "Node"}
    (state,) = rec.node_states
    assert {"ip_route", "iptables", "sysctls", "listeners"} <= set(state.items)
    assert "KUBE-SERVICES" in state.items["iptables"]
    assert "FLANNEL-POSTRTG" not in state.items["iptables"]   # the scenario's fault
    assert state.items["sysctls"]["net.ipv4.ip_forward"] == "1"
    assert rec.end is not None and rec.end.info.reason == "stopped"
    assert rec.end.events == len(rec.events)
    assert GOLDEN.stat().st_size < 200_000
    assert rec.header.version[0] == VERSION[0]   # written by 2.0: 2.1 only added records


@pytest.mark.parametrize("version", ["1.0", "2.0"])
def test_the_golden_session_in_an_older_format_reads_the_same(version: str) -> None:
    """Format 1.0 wrote one record per event, 2.0 blocks without checksums; the reader
    still reads both, to the very events, metadata, node state and end record of the
    same session in checked blocks, and says once that they have no checksums."""
    path = GOLDEN.with_name(f"golden-{version}.ntrec")
    old, new = load(path), load(GOLDEN)
    assert old.header.version == tuple(map(int, version.split("."))) and old.warnings == []
    assert old.events == new.events and len(old.events) == 26
    assert old.metadata == new.metadata and old.node_states == new.node_states
    assert old.end == new.end
    with RecordingReader(path) as r:
        assert r.unchecked() == f"{path}: format {version} has no checksums: damage " \
            "inside a record may go unnoticed"
    with RecordingReader(GOLDEN) as r:
        assert r.checksums and r.unchecked() is None


FULL_DISK = """
import resource, signal, sys
sys.path.insert(0, {root!r})
from pathlib import Path
from tests.unit.recording_support import FACTS
from tests.unit.test_recording_format import DROP
from tracer.recording.writer import EndInfo, RecordingWriter, RecordSpec
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)      # EFBIG instead of a signal
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
w = RecordingWriter(RecordSpec(Path({path!r})), FACTS)
for _ in range(100):
    w.write([DROP] * 100)
w.finish(EndInfo("stopped"))
print(w.events, w.failed, w.stopped)
"""


def test_a_full_disk_stops_the_recording_not_the_session(tmp_path: Path) -> None:
    path = tmp_path / "r.ntrec"
    root = str(Path(__file__).resolve().parents[2])
    proc = subprocess.run([sys.executable, "-c", FULL_DISK.format(root=root, path=str(path))],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    written, failed, why = proc.stdout.split(maxsplit=2)
    assert int(written) + int(failed) == 10_000 and int(failed) > 0
    assert why.startswith("write failed:")
    assert "recording" in proc.stderr and "stopped" in proc.stderr
    rec = load(path)              # what reached the file replays
    assert len(rec.events) == int(written) or rec.warnings
