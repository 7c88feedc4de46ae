"""Which kernel header tree BCC compiles against, chosen without modifying the host.

Order: exact headers for the running kernel -> $BCC_KERNEL_SOURCE -> the kernel's own
/sys/kernel/kheaders.tar.xz -> the newest installed distro tree.  The choice is passed
to BCC through BCC_KERNEL_SOURCE in our own environment only.  Whatever tree is used,
struct layouts come from BTF (offsets.py); headers only have to make the C compile.

Debian splits a tree in two (linux-headers-R-amd64 holds the generated files,
linux-headers-R-common the rest) and BCC's BCC_KERNEL_SOURCE wants one tree, so a
merged view made of symlinks is kept in our cache directory.
"""

from __future__ import annotations

import os
import platform
import re
from dataclasses import dataclass
from pathlib import Path

from tracer.util.errors import PrerequisiteError

MODULES = Path("/lib/modules")
USR_SRC = Path("/usr/src")
KHEADERS = Path("/sys/kernel/kheaders.tar.xz")
CACHE = Path(os.environ.get("NODETRACE_CACHE", "/var/cache/nodetrace"))
KCONFIG = Path("include/linux/kconfig.h")


@dataclass(frozen=True)
class HeaderChoice:
    source: str            # "exact" | "env" | "kheaders" | "distro"
    path: Path | None      # tree passed as BCC_KERNEL_SOURCE (None: BCC's default)
    release: str | None    # kernel release the tree was built for, when known
    matches_running: bool

    def describe(self) -> str:
        where = f" at {self.path}" if self.path else ""
        rel = f" (built for {self.release})" if self.release else ""
        if self.matches_running:
            return f"{self.source} headers{where}{rel}: match the running kernel"
        return (f"{self.source} headers{where}{rel}: do NOT match the running kernel "
                f"{platform.release()}; struct offsets come from BTF")

    def apply(self) -> None:
        """Point BCC at the chosen tree (our process's environment only)."""
        if self.path is not None:
            os.environ["BCC_KERNEL_SOURCE"] = str(self.path)


def _release_of(tree: Path) -> str | None:
    uts = tree / "include/generated/utsrelease.h"
    try:
        m = re.search(r'UTS_RELEASE\s+"([^"]+)"', uts.read_text())
    except OSError:
        return None
    return m.group(1) if m else None


def _common_of(flavour: Path) -> Path | None:
    """The -common half a Debian flavour tree includes from its Makefile."""
    try:
        m = re.search(r"^include\s+(\S+)/Makefile", (flavour / "Makefile").read_text(), re.M)
    except OSError:
        return None
    return Path(m.group(1)) if m else None


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", name))


def merged_tree(flavour: Path, common: Path, cache: Path = CACHE) -> Path:
    """A single tree of symlinks over a Debian flavour/common pair (idempotent)."""
    dest = cache / "kernel-headers" / flavour.name
    for sub in ("include", "arch/x86/include"):
        (dest / sub).mkdir(parents=True, exist_ok=True)
        for half in (common, flavour):
            src_dir = half / sub
            if not src_dir.is_dir():
                continue
            for entry in src_dir.iterdir():
                link = dest / sub / entry.name
                if link.is_symlink() or link.exists():
                    continue
                link.symlink_to(entry)
    for name in ("Makefile", ".config"):
        link = dest / name
        if not (link.is_symlink() or link.exists()) and (flavour / name).exists():
            link.symlink_to(flavour / name)
    return dest


def _distro_trees() -> list[Path]:
    if not USR_SRC.is_dir():
        return []
    trees = [p for p in USR_SRC.glob("linux-headers-*")
             if p.is_dir() and (p / "include/generated").is_dir()]
    return sorted(trees, key=lambda p: _version_key(p.name), reverse=True)


def resolve(cache: Path = CACHE) -> HeaderChoice:
    running = platform.release()
    exact = MODULES / running / "build"
    if (exact / KCONFIG).is_file():
        return HeaderChoice("exact", None, running, True)
    env = os.environ.get("BCC_KERNEL_SOURCE")
    if env:
        rel = _release_of(Path(env))
        return HeaderChoice("env", Path(env), rel, rel == running)
    if KHEADERS.exists():
        return HeaderChoice("kheaders", None, running, True)
    for tree in _distro_trees():
        rel = _release_of(tree)
        if (tree / KCONFIG).is_file():
            return HeaderChoice("distro", tree, rel, rel == running)
        common = _common_of(tree)
        if common is not None and (common / KCONFIG).is_file():
            return HeaderChoice("distro", merged_tree(tree, common, cache), rel,
                                rel == running)
    raise PrerequisiteError(
        f"no kernel headers for BCC to compile against (running {running}; looked in "
        f"{exact}, $BCC_KERNEL_SOURCE, {KHEADERS}, {USR_SRC}/linux-headers-*)",
        fix="bin/setup   (installs linux-headers-$(uname -r) or the distro's generic headers)")
