"""The header tree BCC compiles against, field by field against BTF: where the
headers are exact (built for the running kernel: the kernel matrix's Debian 6.1 VM),
every offset the programs read agrees with BTF; where they are not (this machine, the
backports VM), they are still usable and the fields that differ are the reason every
offset comes from BTF.

The offsets are computed by the C compiler from the headers themselves, the way the
kernel's own asm-offsets are: an `asm` string carrying offsetof as an immediate.
"""

from __future__ import annotations

import platform
import re
import subprocess
from pathlib import Path

import pytest

from tracer.kernel import headers, offsets
from tracer.kernel.btf import Btf

pytestmark = pytest.mark.kernel  # the merged header tree is made in a root-owned cache

PATHS = sorted({*offsets.FIELDS.values(), *offsets.NAT_FIELDS.values()})
INCLUDES = ("linux/skbuff.h", "linux/netdevice.h", "net/sock.h", "net/neighbour.h",
            "net/net_namespace.h", "linux/sched.h", "linux/nsproxy.h",
            "net/netfilter/nf_conntrack.h")


def header_offsets(tree: Path, work: Path) -> dict[str, int]:
    body = "\n".join(
        f'asm volatile("\\n.ascii \\"->OFF {p} %0\\"" :: "i"(__builtin_offsetof('
        f'struct {p.split(".", 1)[0]}, {p.split(".", 1)[1]})));' for p in PATHS)
    src = work / "offsets.c"
    src.write_text("".join(f"#include <{h}>\n" for h in INCLUDES)
                   + f"void offsets(void) {{\n{body}\n}}\n")
    gcc_include = subprocess.run(["gcc", "-print-file-name=include"], capture_output=True,
                                 text=True, check=True).stdout.strip()
    arch, inc = tree / "arch/x86/include", tree / "include"
    cmd = ["gcc", "-S", "-o", "-", "-w", "-O2", "-nostdinc", "-isystem", gcc_include,
           f"-I{arch}", f"-I{arch}/generated", f"-I{inc}", f"-I{arch}/uapi",
           f"-I{arch}/generated/uapi", f"-I{inc}/uapi", f"-I{inc}/generated/uapi",
           *(arg for h in ("compiler-version.h", "kconfig.h", "compiler_types.h")
             if (inc / "linux" / h).exists() for arg in ("-include", str(inc / "linux" / h))),
           "-D__KERNEL__", '-DKBUILD_MODNAME="nt"', '-DKBUILD_BASENAME="nt"', str(src)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r"->OFF (\S+) \$?(\d+)", proc.stdout)}


def test_btf_offsets_agree_with_exact_headers(tmp_path: Path) -> None:
    choice = headers.resolve()
    tree = choice.path or Path(f"/lib/modules/{platform.release()}/build")
    from_headers = header_offsets(tree, tmp_path)
    assert set(from_headers) == set(PATHS), "every field compiles against the headers"
    with Btf() as btf:
        from_btf = {p: btf.offset_of(p) for p in PATHS}
    differ = {p: (from_headers[p], from_btf[p]) for p in PATHS
              if from_headers[p] != from_btf[p]}
    print(f"headers: {choice.describe()}; differing (headers, BTF): {differ}")
    if choice.matches_running:
        assert not differ, differ
