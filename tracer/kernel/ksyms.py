"""Kernel text addresses -> `symbol+0xoff`, from /proc/kallsyms (no BCC needed)."""

from __future__ import annotations

import bisect
from functools import lru_cache
from pathlib import Path


class Ksyms:
    def __init__(self, path: Path = Path("/proc/kallsyms")) -> None:
        self._path = path
        self._addrs: list[int] = []
        self._names: list[str] = []
        self._loaded = False

    def preload(self) -> Ksyms:
        """Read kallsyms now (~0.2 s of CPU), before tracing starts, not at the first
        drop in the middle of whatever the operator is measuring."""
        if not self._loaded:
            self._load()
        return self

    def _load(self) -> None:
        self._loaded = True
        pairs: list[tuple[int, str]] = []
        try:
            with self._path.open() as f:
                for line in f:
                    parts = line.split()
                    if len(parts) >= 3 and parts[1] in "tTwW":
                        addr = int(parts[0], 16)
                        if addr:
                            pairs.append((addr, parts[2]))
        except OSError:
            return
        pairs.sort()
        self._addrs = [a for a, _ in pairs]
        self._names = [n for _, n in pairs]

    @lru_cache(maxsize=4096)  # noqa: B019 - one instance per run; drops repeat locations
    def resolve(self, addr: int) -> str:
        if not self._loaded:
            self._load()
        i = bisect.bisect_right(self._addrs, addr) - 1
        if i < 0 or addr == 0:
            return f"0x{addr:x}"
        return f"{self._names[i]}+0x{addr - self._addrs[i]:x}"
