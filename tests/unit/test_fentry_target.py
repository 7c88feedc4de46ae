"""Where an fentry target lives (vmlinux or a module), from kallsyms' own format."""

from __future__ import annotations

from pathlib import Path

import pytest

from tracer.kernel.btf import BtfError
from tracer.kernel.fentry import module_of


def test_module_of_tells_vmlinux_from_a_module(tmp_path: Path) -> None:
    kallsyms = tmp_path / "kallsyms"
    kallsyms.write_text("ffffffff81a00000 T tcp_v4_connect\n"
                        "ffffffffc0a01000 d nf_nat_manip_pkt_data\t[nf_nat]\n"
                        "ffffffffc0a02000 t nf_nat_manip_pkt\t[nf_nat]\n")
    assert module_of("tcp_v4_connect", kallsyms) is None
    assert module_of("nf_nat_manip_pkt", kallsyms) == "nf_nat"
    with pytest.raises(BtfError, match="not a kernel function"):
        module_of("nf_nat_manip_pkt_data", kallsyms)  # data, not text
    with pytest.raises(BtfError, match="cannot read"):
        module_of("tcp_v4_connect", tmp_path / "missing")
