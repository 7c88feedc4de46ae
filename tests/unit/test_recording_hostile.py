"""Recordings are hostile input (they travel): a cut at every byte of the
golden recording, random corruption, crafted lengths — never a traceback, bounded
memory, every whole record before the damage recovered."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.recording_support import GOLDEN, frame, pack_records, unpack_records
from tracer.recording import RecordingReader
from tracer.recording.format import MAGIC, VERSION, Rec
from tracer.util.errors import RecordingFormatError

DATA = GOLDEN.read_bytes()
MEMORY_CAP = 48 << 20      # format.Limits: one 16 MiB buffer, and what it decodes to


def _boundaries(data: bytes) -> tuple[list[int], list[int]]:
    """The offset after each whole record, and the items the reader yields for it
    (a block: one per event; the header: none), by msgpack alone (not by the reader)."""
    unpacker = msgpack.Unpacker(raw=True, strict_map_key=False)
    unpacker.feed(data)
    ends, items = [], []
    for rec in unpacker:
        ends.append(unpacker.tell())
        if rec[0] == Rec.CHECKED:        # 2.1: a checked frame holds the record
            rec = msgpack.unpackb(rec[2], raw=True, strict_map_key=False)
        items.append(0 if rec[0] == Rec.HEADER else
                     len(rec[1]) if rec[0] == Rec.EVENTS else 1)
    assert ends[-1] == len(data)
    return ends, items


ENDS, ITEMS = _boundaries(DATA)


def _records(data: bytes) -> list[list[Any]]:
    return unpack_records(data, raw=False)


def _read_all(path: Path) -> tuple[int, list[str], RecordingReader]:
    with RecordingReader(path) as r:
        n = sum(1 for _ in r)
    return n, r.warnings(), r


def test_a_cut_at_every_byte_offset_keeps_exactly_the_whole_records_before_it(
        tmp_path: Path) -> None:
    path = tmp_path / "cut.ntrec"
    path.write_bytes(DATA)
    full_items, _, _ = _read_all(path)
    assert full_items == sum(ITEMS) and Rec.EVENTS in {r[0] for r in _records(DATA)}
    header_end = ENDS[0]
    checked = 0
    # from the end down: one file, shortened one byte at a time
    for cut in range(len(DATA), -1, -1):
        os.truncate(path, cut)
        if cut < header_end:
            with pytest.raises(RecordingFormatError):
                _read_all(path)
            continue
        items, warnings, reader = _read_all(path)
        whole = sum(1 for e in ENDS if e <= cut)          # header included
        assert reader.records == whole, cut
        assert items == sum(ITEMS[:whole]), cut
        last_whole = max(e for e in ENDS if e <= cut)
        if cut == last_whole:
            assert reader.truncated_at is None and reader.damaged_at is None, cut
            assert warnings == []
        else:
            assert reader.truncated_at == last_whole, cut
            assert warnings == [f"{path}: truncated at offset {last_whole} (of {cut} bytes); "
                                "every whole record before it was read"], cut
        checked += 1
    assert checked == len(DATA) - header_end + 1


OLD = GOLDEN.with_name("golden-1.0.ntrec").read_bytes()
UNCHECKED = GOLDEN.with_name("golden-2.0.ntrec").read_bytes()
# format 1.0's one record per event still goes through the reader's row path, 2.0's
# blocks without checksums through the unchecked one
GOLDENS = {"2.1": (DATA, ENDS), "2.0": (UNCHECKED, _boundaries(UNCHECKED)[0]),
           "1.0": (OLD, _boundaries(OLD)[0])}


@pytest.mark.parametrize("version", list(GOLDENS))
@settings(max_examples=3000, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_corruption_never_raises_anything_but_a_format_error(
        tmp_path: Path, version: str, data: st.DataObject) -> None:
    original, ends = GOLDENS[version]
    buf = bytearray(original)
    for _ in range(data.draw(st.integers(1, 8), label="edits")):
        op = data.draw(st.sampled_from(["flip", "set", "insert", "delete", "cut"]))
        i = data.draw(st.integers(0, len(buf) - 1), label="offset")
        if op == "flip":
            buf[i] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "set":
            buf[i] = data.draw(st.sampled_from([0xc1, 0xdb, 0xdd, 0xdf, 0xc6, 0xff, 0x00,
                                                0x9f, 0xde, 0xc7, 0xd8]))
        elif op == "insert":
            buf[i:i] = data.draw(st.binary(min_size=1, max_size=9))
        elif op == "delete":
            del buf[i:i + data.draw(st.integers(1, 64))]
        else:
            del buf[i:]
        if not buf:
            buf = bytearray(b"\x00")
    path = tmp_path / "bad.ntrec"
    path.write_bytes(bytes(buf))
    tracemalloc.start()
    try:
        with RecordingReader(path) as r:
            for _ in r:
                pass
            warnings = r.warnings()
    except RecordingFormatError as exc:
        assert "\n" not in exc.message
        return
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < MEMORY_CAP, peak
    # every whole record before the first changed byte is read, exactly as before
    first_diff = next((i for i, (a, b) in enumerate(zip(original, buf, strict=False))
                       if a != b), min(len(original), len(buf)))
    assert r.records >= sum(1 for e in ends if e <= first_diff)
    if r.damaged_at is not None or r.truncated_at is not None:
        assert any("offset" in w for w in warnings)


def _header() -> bytes:
    h = msgpack.packb([int(Rec.HEADER), MAGIC, list(VERSION),
                       {"schema": {"events": [], "structs": []}}])
    assert isinstance(h, bytes)
    return h


@pytest.mark.parametrize("crafted", [
    b"\xdb\xff\xff\xff\xff" + b"x" * 100,         # str32 of 4 GiB
    b"\xc6\x7f\xff\xff\xff" + b"x" * 100,         # bin32 of 2 GiB
    b"\xdd\xff\xff\xff\xff" + b"\x00" * 100,      # array32 of 4 G items
    b"\xdf\xff\xff\xff\xff" + b"\x00" * 100,      # map32 of 4 G pairs
    b"\xc9\xff\xff\xff\xff\x01" + b"x" * 100,     # ext32 of 4 GiB
    b"\x91" * 5000 + b"\x00",                     # nesting deeper than any record
    b"\xdd\x00\x00\x07\xff" * 200,                # 2047-item arrays nested 200 deep
], ids=["str32", "bin32", "array32", "map32", "ext32", "deep", "wide-deep"])
def test_crafted_lengths_cannot_exhaust_memory(tmp_path: Path, crafted: bytes) -> None:
    good = pack_records([[int(Rec.SYNC), 1, 2, 3]])
    path = tmp_path / "crafted.ntrec"
    path.write_bytes(_header() + good + crafted)
    tracemalloc.start()
    try:
        with RecordingReader(path) as r:
            items = list(r)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(items) == 1                       # the record before the damage
    assert r.damaged_at == len(_header()) + len(good) or r.truncated_at is not None
    assert r.warnings()
    assert peak < MEMORY_CAP, peak


@pytest.mark.parametrize("content,message", [
    (b"", "not a nodetrace recording"),
    (b"GIF89a" + b"\x00" * 64, "not a nodetrace recording"),
    (msgpack.packb([0, "nodetrace-recordinG", [1, 0], {}]), "not a nodetrace recording"),
    (msgpack.packb([0, MAGIC, [VERSION[0] + 1, 0], {}]), "written by a newer nodetrace"),
    (msgpack.packb([0, MAGIC, "1.0", {}]), "version is damaged"),
    (msgpack.packb([0, MAGIC, [1, 0], {"schema": 5}]), "no event schema"),
    (msgpack.packb([0, MAGIC, [1, 0], {"argv": 5, "schema": {}}]), "header damaged"),
])
def test_a_bad_header_is_one_clear_error(tmp_path: Path, content: bytes,
                                         message: str) -> None:
    path = tmp_path / "x.ntrec"
    path.write_bytes(content)
    with pytest.raises(RecordingFormatError, match=message) as exc:
        RecordingReader(path)
    assert "\n" not in exc.value.message


def test_crafted_ext_types_never_reach_the_consumers(tmp_path: Path) -> None:
    rec = msgpack.packb([int(Rec.METADATA), 1, "Pod", "added",
                         {"a": msgpack.ExtType(5, b"xx"), "t": msgpack.Timestamp(1, 2)}])
    assert isinstance(rec, bytes)
    path = tmp_path / "ext.ntrec"
    path.write_bytes(_header() + frame(rec))
    with RecordingReader(path) as r:
        (change,) = list(r)
    assert change.obj == {"a": None, "t": 1_000_000_002}


def test_interned_structs_are_checked_before_they_are_shared(tmp_path: Path) -> None:
    """Nested structs are built once per distinct value of a block's column and
    endpoints are interned by their values (tracer/recording/blocks.py, plan.py): a
    value of the wrong type, hashable or not, is still a malformed record, and an
    event never gets a struct built from other values."""
    from tests.unit.recording_support import write_recording
    from tracer.events.model import Endpoint, Process, TcpEvent

    def tcp(pid: int, port: int) -> TcpEvent:
        return TcpEvent(1, 2, 3, "connect", 4, Endpoint("10.0.0.1", port),
                        Endpoint("10.0.0.2", 80), "SYN_SENT", "CLOSE", None, 0, None, 0,
                        Process(pid, "curl", 9))

    good = tmp_path / "good.ntrec"
    write_recording(good, [[tcp(1, 1000), tcp(2, 1000), tcp(1, 1001)]] * 4)
    records = unpack_records(good.read_bytes(), raw=False)
    blocks = [i for i, rec in enumerate(records) if rec[0] == Rec.EVENTS]
    assert len(blocks) == 4
    kind, _columns = records[blocks[0]][2][0]
    names = [c[0] for c in records[0][3]["schema"]["events"][kind][1]]
    proc, sport = names.index("process"), names.index("src.port")
    records[blocks[1]][2][0][1][proc][0][0][0] = [1]     # unhashable where the pid goes
    records[blocks[2]][2][0][1][proc][0][0][0] = "2"     # hashable, the wrong type
    records[blocks[3]][2][0][1][sport] = [["1001"], b""]
    bad = tmp_path / "bad.ntrec"
    bad.write_bytes(msgpack.packb(records[0]) + pack_records(records[1:]))
    with RecordingReader(bad) as r:
        got = [item for item in r if isinstance(item, TcpEvent)]
    assert got == [tcp(1, 1000), tcp(2, 1000), tcp(1, 1001)]
    assert sum(n for w, n in r.skipped.items() if w.startswith("malformed")) == 3
    assert got[0].process is got[2].process and got[0].src is got[1].src


def _flow_block_recording(tmp_path: Path) -> tuple[list[list[Any]], list[str], int]:
    """A recording of one block of three flows, as msgpack values, with the flow
    columns' names and the flow kind's index."""
    from tests.unit.recording_support import write_recording
    from tracer.events.model import Endpoint, FlowEvent

    flows = [FlowEvent(1, 2, 3, 4, "eth0", "egress", "new", 4, 6, Endpoint("10.42.0.5", p),
                       Endpoint("10.43.0.1", 443), 2, 2, None, None, 1, 60, 2, 2, "uplink")
             for p in (80, 81, 80)]
    path = tmp_path / "flows.ntrec"
    write_recording(path, [flows])
    records = _records(path.read_bytes())
    kinds = [k for k, _ in records[0][3]["schema"]["events"]]
    names = [c for c, _s in dict(records[0][3]["schema"]["events"])["flow"]]
    return records, names, kinds.index("flow")


def _crafted(name: str, block: list[Any], names: list[str]) -> None:
    columns = block[2][0][1]
    if name == "order longer than the reader takes":
        block[1] = block[1] * 2000
    elif name == "index out of range":
        columns[names.index("ifname")] = [["eth0", "eth1"], b"\x00\x07\x01"]
    elif name == "indexes of the wrong width":
        columns[names.index("ifname")] = [["eth0", "eth1"], b"\x00\x01"]
    elif name == "integers where a string goes":
        columns[names.index("ifname")] = b"\x00" * 24
    elif name == "integers of the wrong length":
        columns[names.index("packets")] = b"\x00" * 23
    elif name == "a column short":
        del columns[-1]
    elif name == "a kind twice":
        block[2].append(block[2][0])
    elif name == "a kind index out of range":
        block[2][0][0] = 200
    elif name == "a tuple of non-strings":
        columns[names.index("marks")] = [[[1, 2]], b""]
    else:
        raise AssertionError(name)


@pytest.mark.parametrize("name", [
    "order longer than the reader takes", "index out of range", "indexes of the wrong width",
    "integers where a string goes", "integers of the wrong length", "a column short",
    "a kind twice", "a kind index out of range", "a tuple of non-strings"])
def test_a_crafted_block_is_skipped_whole_and_counted(tmp_path: Path, name: str) -> None:
    records, names, _kind = _flow_block_recording(tmp_path)
    (i,) = [n for n, rec in enumerate(records) if rec[0] == Rec.EVENTS]
    good = list(records[i])
    bad = msgpack.unpackb(msgpack.packb(records[i]), raw=False)
    _crafted(name, bad, names)
    records[i:i + 1] = [good, bad, good]
    path = tmp_path / "crafted.ntrec"
    path.write_bytes(msgpack.packb(records[0]) + pack_records(records[1:]))
    with RecordingReader(path) as r:
        events = [item for item in r if getattr(item, "kind", None) == "flow"]
    assert len(events) == 6 and events[:3] == events[3:]
    assert [(w, n) for w, n in r.skipped.items() if n] == [(next(
        w for w in r.skipped if w.startswith("malformed record skipped")), 1)]
