"""bpf/include/events.h and tracer/events/schema.py describe the same bytes: compile the
header with the host C compiler and compare every offset and size."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tracer.events import schema

ROOT = Path(__file__).resolve().parents[2]
STRUCTS = [schema.HDR, schema.TUPLE, *schema.RECORDS.values(), *schema.MAP_STRUCTS]


@pytest.fixture(scope="module")
def c_layout(tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "a C compiler is part of the set-up (bin/setup installs gcc)"
    lines = []
    for ws in STRUCTS:
        lines.append(f'printf("sizeof {ws.c_name} %zu\\n", sizeof(struct {ws.c_name}));')
        for name in ws.names:
            lines.append(f'printf("{ws.c_name}.{name} %zu\\n", '
                         f"offsetof(struct {ws.c_name}, {name}));")
    for kind in schema.EvKind:
        lines.append(f'printf("enum EV_{kind.name} %d\\n", (int)EV_{kind.name});')
    lines.append('printf("enum LOSS_SLOTS %d\\n", (int)LOSS_SLOTS);')
    for d in schema.FlowDirection:
        lines.append(f'printf("enum FLOW_{d.name} %d\\n", (int)FLOW_{d.name});')
    for r in schema.FlowReport:
        lines.append(f'printf("enum FLOW_{r.name} %d\\n", (int)FLOW_{r.name});')
    for slot in schema.LossSlot:
        lines.append(f'printf("enum LOSS_{slot.name} %d\\n", (int)LOSS_{slot.name});')
    # the failure families' enums: neigh_event, tcp_event, sock_op, icmp_via
    for prefix, enum in (("NEIGH_EV", schema.NeighEv), ("TCP_EV", schema.TcpEv),
                         ("SOCK_OP", schema.SockOp), ("ICMP_VIA", schema.IcmpVia)):
        for m in enum:
            lines.append(f'printf("enum {prefix}_{m.name} %d\\n", (int){prefix}_{m.name});')
    src = tmp_path_factory.mktemp("layout") / "layout.c"
    src.write_text("#include <stddef.h>\n#include <stdio.h>\n#include \"events.h\"\n"
                   "int main(void) {\n" + "\n".join(lines) + "\nreturn 0;\n}\n")
    exe = src.with_suffix("")
    subprocess.run([cc, "-Wall", "-Werror", "-I", str(ROOT / "bpf/include"), "-o", str(exe),
                    str(src)], check=True, capture_output=True, text=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    return {k: int(v) for k, v in (line.rsplit(" ", 1) for line in out.splitlines())}


@pytest.mark.parametrize("ws", STRUCTS, ids=lambda ws: ws.c_name)
def test_sizes_match(c_layout: dict[str, int], ws: schema.WireStruct) -> None:
    assert ws.size == c_layout[f"sizeof {ws.c_name}"]


@pytest.mark.parametrize("ws", STRUCTS, ids=lambda ws: ws.c_name)
def test_every_field_offset_matches(c_layout: dict[str, int], ws: schema.WireStruct) -> None:
    mismatched = {n: (ws.offsets[n], c_layout[f"{ws.c_name}.{n}"]) for n in ws.names
                  if ws.offsets[n] != c_layout[f"{ws.c_name}.{n}"]}
    assert not mismatched, f"python offset vs C offset: {mismatched}"


def test_enums_match(c_layout: dict[str, int]) -> None:
    for kind in schema.EvKind:
        assert c_layout[f"enum EV_{kind.name}"] == kind.value
    for slot in schema.LossSlot:
        assert c_layout[f"enum LOSS_{slot.name}"] == slot.value
    assert c_layout["enum LOSS_SLOTS"] == schema.LOSS_SLOTS
    for d in schema.FlowDirection:
        assert c_layout[f"enum FLOW_{d.name}"] == d.value
    for r in schema.FlowReport:
        assert c_layout[f"enum FLOW_{r.name}"] == r.value
    for prefix, enum in (("NEIGH_EV", schema.NeighEv), ("TCP_EV", schema.TcpEv),
                         ("SOCK_OP", schema.SockOp), ("ICMP_VIA", schema.IcmpVia)):
        for m in enum:
            assert c_layout[f"enum {prefix}_{m.name}"] == m.value


def test_header_len_field_fits_every_record() -> None:
    # ev_hdr.len is a u16 and every record is fixed-size
    assert all(ws.size < 2**16 for ws in schema.RECORDS.values())


def test_records_have_no_trailing_padding() -> None:
    # ring-buffer records are copied byte for byte; an implicit hole would differ
    # between compilers, so events.h pads explicitly and sizes are multiples of 8
    for ws in schema.RECORDS.values():
        assert ws.size % 8 == 0, ws.c_name


def test_every_record_kind_has_a_decoder_and_a_struct() -> None:
    from tracer.pipeline.decode import DECODERS

    assert set(DECODERS) == set(schema.RECORDS)
    for kind, (ws, _fn) in DECODERS.items():
        assert schema.RECORDS[kind] is ws
