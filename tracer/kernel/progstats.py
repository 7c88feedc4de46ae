"""Which BPF programs a process holds, and what the kernel's run-time statistics say
they cost (bpf_stats: run count and total run time per program)."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracer.kernel.libbpf import lib

BPF_STATS_RUN_TIME = 0


def programs_of(pid: int) -> set[int]:
    """Ids of loaded BPF programs that process `pid` holds a descriptor of (fdinfo's
    prog_id; bpftool's per-program pids need a BPF iterator it may lack).

    By owner, not by name: other tracers may load programs with the same names."""
    ids = set()
    for info in Path(f"/proc/{pid}/fdinfo").iterdir():
        with contextlib.suppress(OSError):
            for line in info.read_text().splitlines():
                if line.startswith("prog_id:"):
                    ids.add(int(line.split()[1]))
    return ids


def loaded_programs() -> list[dict[str, Any]]:
    out = subprocess.run(["bpftool", "prog", "show", "--json"], capture_output=True,
                         text=True, check=True).stdout
    programs: list[dict[str, Any]] = json.loads(out)
    return programs


@dataclass(frozen=True)
class ProgStat:
    name: str
    run_cnt: int
    run_time_ns: int


def stats(ids: set[int]) -> dict[int, ProgStat]:
    """Run count and time of these programs (zero unless stats are enabled)."""
    return {p["id"]: ProgStat(p.get("name", "?"), p.get("run_cnt", 0),
                              p.get("run_time_ns", 0))
            for p in loaded_programs() if p["id"] in ids}


@contextlib.contextmanager
def stats_enabled() -> Iterator[None]:
    """Run-time statistics on while the block runs: BPF_ENABLE_STATS holds them on for
    as long as its descriptor is open, so they go off again even if we are killed
    (no sysctl to restore)."""
    fn = lib().bpf_enable_stats
    fn.argtypes = [ctypes.c_int]
    fd = fn(BPF_STATS_RUN_TIME)
    if fd < 0:
        raise OSError(-fd, f"BPF_ENABLE_STATS: {os.strerror(-fd)}")
    try:
        yield
    finally:
        os.close(fd)
