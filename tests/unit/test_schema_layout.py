"""bpf/include/events.h and the Python mirror describe the same bytes: compile the
header with the host C compiler and compare every offset, size and enum value that
tracer/events/registry.py lists (each family's struct is in its module)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tracer.events import schema
from tracer.events.lost import LOSS_SLOTS
from tracer.events.registry import BY_EV_KIND, C_ENUMS, FAMILIES, WIRE_STRUCTS

ROOT = Path(__file__).resolve().parents[2]
STRUCTS = list(WIRE_STRUCTS)


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
    for prefix, enum in C_ENUMS:
        for m in enum:
            lines.append(f'printf("enum {prefix}_{m.name} %d\\n", (int){prefix}_{m.name});')
    lines.append('printf("enum LOSS_SLOTS %d\\n", (int)LOSS_SLOTS);')
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
    for prefix, enum in C_ENUMS:
        for m in enum:
            assert c_layout[f"enum {prefix}_{m.name}"] == m.value, f"{prefix}_{m.name}"
    assert c_layout["enum LOSS_SLOTS"] == LOSS_SLOTS


def test_every_enum_of_the_header_is_checked() -> None:
    # a value added to an enum of events.h (or a new enum) without its Python twin in
    # a family module fails here
    header = (ROOT / "bpf/include/events.h").read_text()
    in_c = set()
    for body in re.findall(r"^enum \w+ \{(.*?)\};", header, re.M | re.S):
        body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
        in_c |= set(re.findall(r"^\s*(\w+)\s*=", body, re.M))
    in_python = {f"{prefix}_{m.name}" for prefix, enum in C_ENUMS for m in enum}
    assert in_c == in_python | {"LOSS_SLOTS"}


def test_header_len_field_fits_every_record() -> None:
    # ev_hdr.len is a u16 and every record is fixed-size
    assert all(ws.size < 2**16 for ws in schema.RECORDS.values())


def test_records_have_no_trailing_padding() -> None:
    # ring-buffer records are copied byte for byte; an implicit hole would differ
    # between compilers, so events.h pads explicitly and sizes are multiples of 8
    for ws in schema.RECORDS.values():
        assert ws.size % 8 == 0, ws.c_name


def test_every_record_kind_has_a_decoder_and_a_struct() -> None:
    assert set(BY_EV_KIND) == set(schema.EvKind)
    for kind, family in BY_EV_KIND.items():
        assert family.wire is not None and family.decode is not None
        assert schema.RECORDS[kind] is family.wire


def test_every_struct_of_the_header_is_checked() -> None:
    # a struct added to events.h without its table in a family module fails here
    header = (ROOT / "bpf/include/events.h").read_text()
    declared = set(re.findall(r"^struct (\w+) \{", header, re.M))
    assert declared == {ws.c_name for ws in STRUCTS}
    assert len({f.name for f in FAMILIES}) == len(FAMILIES)
