"""The kernels of the matrix, fetched through apt and unpacked into a cache.

Each kernel is a Debian `linux-image-*` package: `apt-get download` puts the .deb in
the cache, `dpkg-deb -x` unpacks vmlinuz and the modules next to it, `depmod` indexes
them.  Nothing is installed on the host (no /boot, no /lib/modules, no initramfs):
virtme-ng boots the cached vmlinuz and links the cached modules in as the guest's
/lib/modules/<release>.

The cache is under /var/lib, not /var/cache: virtme-ng mounts an empty tmpfs over the
guest's /var/cache, and the guest must see the modules at the host's path.

- Debian 12's own 6.1 kernel: kprobes, fentry, BTF, and the exactly matching headers
  bin/setup installs (the header tree nodetrace compiles against everywhere).
- Debian 12's backports kernel (6.12, the LTS kernel of Debian 13): a newer kernel
  from the same distro family, with tcx links (>= 6.6), a different struct layout
  from the 6.1 headers (so the BTF offsets, not the headers, must be right), and
  kprobes and fentry as production nodes have them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

CACHE = Path(os.environ.get("NODETRACE_KERNEL_CACHE", "/var/lib/nodetrace/kernels"))
APT_DIR = CACHE / ".apt"
DEB_DIR = CACHE / ".debs"


class KernelFetchError(RuntimeError):
    pass


@dataclass(frozen=True)
class Kernel:
    name: str             # test id: debian-6.1, debian-backports (KINDS)
    release: str          # e.g. 6.1.0-56-amd64
    why: str              # what this kernel proves
    backports: bool       # from <codename>-backports rather than the system's suites
    nat_hook: str = "auto"  # trace --nat-hook inside: "kprobe" proves the kprobe path

    @property
    def package(self) -> str:
        return f"linux-image-{self.release}"

    @property
    def root(self) -> Path:
        return CACHE / self.release

    @property
    def image(self) -> Path:
        return self.root / "boot" / f"vmlinuz-{self.release}"

    @property
    def moddir(self) -> Path:
        return self.root / "lib" / "modules" / self.release


def _version_key(name: str) -> list[int]:
    return [int(x) for x in re.findall(r"\d+", name)]


def _run(cmd: list[str], what: str, cwd: Path | None = None) -> str:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, cwd=cwd)
    if proc.returncode != 0:
        raise KernelFetchError(f"{what}: {' '.join(cmd[:3])}... exit {proc.returncode}: "
                               f"{(proc.stderr or proc.stdout).strip()[-500:]}")
    return proc.stdout


# --- where the packages come from -------------------------------------------------------
def codename() -> str:
    text = Path("/etc/os-release").read_text()
    m = re.search(r"^VERSION_CODENAME=\"?(\w+)", text, re.M)
    if not m:
        raise KernelFetchError("no VERSION_CODENAME in /etc/os-release")
    return m.group(1)


def debian_archive() -> tuple[str, str]:
    """(URI, signed-by keyring) of the system's Debian archive for this release, as
    apt is configured here: the backports suite lives in the same archive."""
    suite = codename()
    stanzas: list[dict[str, str]] = []
    for f in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for block in f.read_text().split("\n\n"):
            fields = dict(re.findall(r"^([\w-]+):\s*(.+)$", block, re.M))
            stanzas.append(fields)
    legacy = Path("/etc/apt/sources.list")
    if legacy.exists():
        for line in legacy.read_text().splitlines():
            m = re.match(r"^deb\s+(?:\[([^]]*)\]\s+)?(\S+)\s+(\S+)", line)
            if m:
                signed = re.search(r"signed-by=(\S+)", m.group(1) or "")
                stanzas.append({"URIs": m.group(2), "Suites": m.group(3),
                                "Signed-By": signed.group(1) if signed else ""})
    for s in stanzas:
        if suite in s.get("Suites", "").split() and "debian-security" not in s.get("URIs", ""):
            keyring = s.get("Signed-By") or "/usr/share/keyrings/debian-archive-keyring.gpg"
            return s["URIs"].split()[0], keyring
    raise KernelFetchError(f"no apt source for suite {suite} in /etc/apt")


def _backports_apt() -> list[str]:
    """apt options for a private configuration that knows only <codename>-backports:
    the system's apt sources and state stay as they are."""
    uri, keyring = debian_archive()
    (APT_DIR / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (APT_DIR / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    sources = APT_DIR / "sources.list"
    sources.write_text(f"deb [signed-by={keyring}] {uri} {codename()}-backports main\n")
    return ["-o", f"Dir::Etc::SourceList={sources}", "-o", "Dir::Etc::SourceParts=/nonexistent",
            "-o", f"Dir::State::Lists={APT_DIR / 'lists'}", "-o", f"Dir::Cache={APT_DIR}",
            "-o", f"Dir::Cache::Archives={APT_DIR / 'archives'}"]


# --- the kernels ------------------------------------------------------------------------
def debian_stable() -> Kernel:
    """The Debian 6.1 kernel whose headers bin/setup installed."""
    trees = sorted(Path("/usr/src").glob("linux-headers-6.1.*-amd64"),
                   key=lambda p: _version_key(p.name))
    if not trees:
        raise KernelFetchError("no Debian 6.1 headers in /usr/src (bin/setup installs them)")
    release = trees[-1].name.removeprefix("linux-headers-")
    # fentry would be chosen here too: the kprobe is forced, or no kernel would run it
    return Kernel("debian-6.1", release, "the kprobe NAT hook (forced), exact headers",
                  backports=False, nat_hook="kprobe")


def debian_backports() -> Kernel:
    """The newest kernel of <codename>-backports (its linux-image-amd64 points at it);
    the newest cached one when the archive cannot be reached."""
    try:
        opts = _backports_apt()
        _run(["apt-get", "-q", *opts, "update"], "apt-get update (backports)")
        show = _run(["apt-cache", *opts, "show", "linux-image-amd64"], "apt-cache show")
        m = re.search(r"^Depends: linux-image-(\S+-amd64)\b", show, re.M)
        if not m:
            raise KernelFetchError("backports' linux-image-amd64 names no kernel")
        release = m.group(1)
    except KernelFetchError:
        cached = sorted((p.name for p in CACHE.glob("6.1[2-9]*-amd64") if p.is_dir()),
                        key=_version_key)
        if not cached:
            raise
        release = cached[-1]
    return Kernel("debian-backports", release,
                  "the fentry NAT hook (auto), tcx, headers of another kernel (BTF offsets)",
                  backports=True)


def ensure_cached(kernel: Kernel) -> Kernel:
    """Download and unpack `kernel` unless the cache has it; qemu and busybox (the
    guest's initramfs) come from apt too."""
    need = [p for p in ("qemu-system-x86", "busybox-static")
            if subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True,
                              text=True, check=False).stdout != "install ok installed"]
    if need:
        _run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *need],
             "installing qemu")
    if (kernel.moddir / "modules.dep").exists() and kernel.image.exists():
        return kernel
    DEB_DIR.mkdir(parents=True, exist_ok=True)
    for old in DEB_DIR.glob("*.deb"):
        old.unlink()
    opts = _backports_apt() if kernel.backports else []
    # apt-get download writes to its working directory
    _run(["apt-get", "-q", *opts, "download", kernel.package], f"downloading {kernel.package}",
         cwd=DEB_DIR)
    debs = list(DEB_DIR.glob(f"{kernel.package}_*.deb"))
    if not debs:
        raise KernelFetchError(f"apt-get download left no {kernel.package}_*.deb")
    partial = CACHE / f".{kernel.release}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        _run(["dpkg-deb", "-x", str(debs[0]), str(partial)], f"unpacking {debs[0].name}")
        _run(["depmod", "-a", "-b", str(partial), kernel.release], "depmod")
        shutil.rmtree(kernel.root, ignore_errors=True)
        partial.rename(kernel.root)  # complete or absent, never half there
    finally:
        for deb in debs:
            deb.unlink(missing_ok=True)
        shutil.rmtree(partial, ignore_errors=True)
    return kernel


# name -> how to find it (resolved when a test runs, not at collection: it asks apt)
KINDS = {"debian-6.1": debian_stable, "debian-backports": debian_backports}


def matrix() -> list[Kernel]:
    return [find() for find in KINDS.values()]
