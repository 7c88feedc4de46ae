"""Offsets resolved from BTF agree with the kernel's own layout as bpftool sees it:
bpftool turns the same BTF into C (vmlinux.h) and the C compiler computes offsetof."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tracer.kernel import offsets
from tracer.kernel.btf import VMLINUX_BTF, Btf, BtfError

pytestmark = pytest.mark.skipif(not VMLINUX_BTF.exists(), reason="kernel has no BTF")

EXTRA_PATHS = ["sock.__sk_common.skc_family", "sk_buff.protocol", "sk_buff.mark",
               "net_device.mtu", "sock.sk_err"]


@pytest.fixture(scope="module")
def btf() -> Btf:
    return Btf()


@pytest.fixture(scope="module")
def compiler_offsets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    bpftool = shutil.which("bpftool") or "/usr/sbin/bpftool"
    assert Path(bpftool).exists(), "bpftool is part of the set-up (bin/setup)"
    work = tmp_path_factory.mktemp("btf")
    header = work / "vmlinux.h"
    with header.open("w") as f:
        subprocess.run([bpftool, "btf", "dump", "file", str(VMLINUX_BTF), "format", "c"],
                       stdout=f, check=True)
    paths = [*offsets.FIELDS.values(), *offsets.NAT_FIELDS.values(), *EXTRA_PATHS]
    body = "\n".join(
        f'printf("{p} %zu\\n", __builtin_offsetof(struct {p.split(".", 1)[0]}, '
        f'{p.split(".", 1)[1]}));' for p in paths)
    src = work / "off.c"
    src.write_text('#include "vmlinux.h"\nint printf(const char *, ...);\n'
                   f"int main(void) {{\n{body}\nreturn 0;\n}}\n")
    exe = work / "off"
    subprocess.run(["cc", "-w", "-o", str(exe), str(src)], check=True, cwd=work)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    return {k: int(v) for k, v in (line.split() for line in out.splitlines())}


@pytest.mark.parametrize("path", [*offsets.FIELDS.values(), *offsets.NAT_FIELDS.values(),
                                  *EXTRA_PATHS])
def test_offset_matches_bpftool_layout(btf: Btf, compiler_offsets: dict[str, int],
                                       path: str) -> None:
    assert btf.offset_of(path) == compiler_offsets[path]


def test_every_program_offset_resolves(btf: Btf) -> None:
    resolved = offsets.resolve(btf)
    assert set(resolved) == set(offsets.FIELDS)
    assert all(v >= 0 for v in resolved.values())


def test_unknown_field_is_a_clear_error(btf: Btf) -> None:
    with pytest.raises(BtfError, match="no field"):
        btf.offset_of("sk_buff.no_such_field")
    with pytest.raises(BtfError, match="no struct"):
        btf.offset_of("no_such_struct.x")


def test_drop_reason_enum_has_the_names_the_program_filters(btf: Btf) -> None:
    values = btf.enum_values("skb_drop_reason")
    defines = offsets.reason_defines(values)
    assert defines["REASON_NOT_DROPPED_YET"] == values["SKB_NOT_DROPPED_YET"]
    # SKB_CONSUMED exists from 6.2 on (6.1 frees consumed skbs through another
    # tracepoint); where it is missing the program gets -1, which matches no reason
    assert defines["REASON_CONSUMED"] == values.get("SKB_CONSUMED", -1)
    assert "SKB_DROP_REASON_NETFILTER_DROP" in values
