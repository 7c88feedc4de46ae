"""The kernel matrix: boot other distro kernels under qemu (virtme-ng, no KVM needed)
and run the kernel-tier tests that matter for them inside, against this very checkout.

virtme-ng shares the host's root filesystem read-only with the guest, so the guest runs
the same venv, BCC and code; only OUT (--rwdir) is writable.  The kernels come from the
distro's package manager (installed once, then cached by dpkg).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Kernel:
    release: str          # e.g. 6.1.0-56-amd64
    why: str              # what this kernel proves

    @property
    def image(self) -> Path:
        return Path(f"/boot/vmlinuz-{self.release}")

    @property
    def package(self) -> str:
        return f"linux-image-{self.release}"


def debian_kprobe_kernel() -> Kernel:
    """The Debian 6.1 kernel whose headers bin/setup installed: kprobes, BTF, and
    exactly matching headers."""
    trees = sorted(Path("/usr/src").glob("linux-headers-6.1.*-amd64"),
                   key=lambda p: [int(x) for x in re.findall(r"\d+", p.name)])
    if not trees:
        raise RuntimeError("no Debian 6.1 headers in /usr/src (bin/setup installs them)")
    release = trees[-1].name.removeprefix("linux-headers-")
    return Kernel(release, "kprobes, exact headers")


def ensure_installed(kernel: Kernel) -> None:
    """qemu, busybox (virtme-ng's initramfs) and the kernel package, from apt."""
    need = [p for p in ("qemu-system-x86", "busybox-static", kernel.package)
            if subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True,
                              text=True).stdout != "install ok installed"]
    if need:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *need],
                       check=True, env=env, capture_output=True)


@dataclass
class GuestRun:
    returncode: int
    output: str
    seconds: float


def run_in_guest(kernel: Kernel, pytest_args: list[str], out: Path,
                 timeout_s: float = 1200) -> GuestRun:
    """Boot `kernel` and run pytest on `pytest_args` inside; results land in `out`."""
    ensure_installed(kernel)
    out.mkdir(parents=True, exist_ok=True)
    for f in ("pytest.txt", "rc"):
        (out / f).unlink(missing_ok=True)
    inner = (f"cd {ROOT} && PYTHONDONTWRITEBYTECODE=1 {VENV_BIN}/python -m pytest "
             f"-p no:cacheprovider -q -rA {' '.join(pytest_args)} > {out}/pytest.txt 2>&1; "
             f"echo $? > {out}/rc")
    vng = shutil.which("vng", path=f"{VENV_BIN}:{os.environ.get('PATH', '')}")
    if vng is None:
        raise RuntimeError("virtme-ng (vng) is not installed: it is a dev dependency")
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}"}
    start = time.monotonic()
    # --disable-kvm: /dev/kvm exists here but cannot run a normal guest
    proc = subprocess.run([vng, "--disable-kvm", "-r", str(kernel.image), "--memory", "2G",
                           "--cpus", "2", "--rwdir", str(out), "--exec", inner],
                          capture_output=True, text=True, timeout=timeout_s, env=env,
                          cwd=ROOT)
    seconds = time.monotonic() - start
    rc_file = out / "rc"
    if not rc_file.exists():
        return GuestRun(-1, f"the guest did not finish:\n{proc.stdout}\n{proc.stderr}", seconds)
    return GuestRun(int(rc_file.read_text().strip()), (out / "pytest.txt").read_text(),
                    seconds)


def main() -> None:
    kernel = debian_kprobe_kernel()
    result = run_in_guest(kernel, sys.argv[1:] or ["tests/kernel/test_nat_kprobe.py"],
                          Path("/tmp/nodetrace-matrix") / kernel.release)
    print(result.output)
    print(f"{kernel.release}: exit {result.returncode} in {result.seconds:.0f} s")
    sys.exit(result.returncode)


if __name__ == "__main__":
    main()
