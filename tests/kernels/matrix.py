"""The kernel matrix: boot other distro kernels under qemu (virtme-ng, no KVM needed)
and run the kernel-tier tests that matter for them inside, against this very checkout.

virtme-ng shares the host's root filesystem read-only with the guest, so the guest runs
the same venv, BCC and code (this file's checkout, wherever it is); only OUT (--rwdir)
is writable.  One pytest session per boot: the tests of a boot share one tracer build
(tests/kernel/test_nat_hook.py's module fixture), since a BCC compile takes ~100 s
under emulation.

    python -m tests.kernels.matrix [KERNEL-NAME ...]     # what `make matrix` runs
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.kernels.kernels import KINDS, Kernel, ensure_cached

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent

# what each VM proves; every test here must PASS inside it (none may skip)
GUEST_TESTS = ["tests/kernel/test_nat_hook.py", "tests/kernel/test_prerequisites.py",
               "tests/kernel/test_fentry.py", "tests/kernel/test_header_offsets.py",
               "tests/unit/test_btf_offsets.py"]


@dataclass
class GuestRun:
    kernel: Kernel
    returncode: int
    output: str
    seconds: float                      # host wall time: boot, tests, power-off
    boot_s: float | None = None         # guest uptime when the tests started
    outcomes: dict[str, str] = field(default_factory=dict)  # test id -> PASSED/...
    nat: dict[str, object] = field(default_factory=dict)    # test_nat_hook's summary

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for o in self.outcomes.values():
            counts[o] = counts.get(o, 0) + 1
        nat = self.nat
        line = re.search(r"^headers: .*differing \(headers, BTF\): \{.*\}$", self.output, re.M)
        header_note = "headers ?"
        if line:
            kind = "of another kernel" if "do NOT match" in line.group(0) else "exact"
            differ = line.group(0).split("differing", 1)[1].count(":") - 1
            header_note = f"headers {kind}: {differ} program offsets differ from BTF"
        attached = [str(a) for a in nat.get("attached", [])]  # type: ignore[attr-defined]
        notable = [a.split(":")[0] if a.startswith("tc/") else a for a in attached
                   if "nf_nat" in a or a.startswith("tc/")]
        return (f"{self.kernel.name} ({self.kernel.release}): exit {self.returncode}, "
                f"{self.seconds:.0f} s (boot {self.boot_s or 0:.0f} s, tracer ready "
                f"{nat.get('ready_s', '?')} s); tests {counts}; attached "
                f"{len(attached)} probes, {notable}; doctor's fentry {nat.get('fentry', '?')}; "
                f"NAT events {nat.get('nat_events', '?')}; {header_note}")


def run_in_guest(kernel: Kernel, pytest_args: list[str], out: Path,
                 timeout_s: float = 1800) -> GuestRun:
    """Boot `kernel` and run one pytest session on `pytest_args` inside; results land in
    `out` (the guest's only writable host directory)."""
    ensure_cached(kernel)
    out.mkdir(parents=True, exist_ok=True)
    for f in ("pytest.txt", "rc", "uptime", "nat.json"):
        (out / f).unlink(missing_ok=True)
    env_inner = (f"PYTHONDONTWRITEBYTECODE=1 NODETRACE_MATRIX_OUT={out} "
                 f"NODETRACE_MATRIX_NAT_HOOK={kernel.nat_hook} "
                 "NODETRACE_LAB_READY_TIMEOUT_S=600 NODETRACE_REQUIRE_KERNEL=1")
    inner = (f"cat /proc/uptime > {out}/uptime; cd {ROOT} && {env_inner} "
             f"{VENV_BIN}/python -m pytest -p no:cacheprovider -q -rA -o timeout=1500 "
             f"{' '.join(pytest_args)} > {out}/pytest.txt 2>&1; echo $? > {out}/rc")
    path = f"{VENV_BIN}:{os.environ.get('PATH', '')}"
    vng = shutil.which("vng", path=path)
    if vng is None:
        raise RuntimeError("virtme-ng (vng) is not installed: it is a dev dependency")
    start = time.monotonic()
    # --disable-kvm: /dev/kvm exists here but cannot run a normal guest.  The image is
    # in the cache: virtme-ng finds the modules beside it (lib/modules/<release>) and
    # links them in as the guest's /lib/modules/<release>.
    proc = subprocess.run([vng, "--disable-kvm", "-r", str(kernel.image), "--memory", "2G",
                           "--cpus", "2", "--rwdir", str(out), "--exec", inner],
                          capture_output=True, text=True, timeout=timeout_s,
                          env={**os.environ, "PATH": path}, cwd=ROOT, check=False)
    seconds = time.monotonic() - start
    rc_file = out / "rc"
    if not rc_file.exists():
        return GuestRun(kernel, -1, f"the guest did not finish:\n{proc.stdout[-3000:]}\n"
                        f"{proc.stderr[-3000:]}", seconds)
    output = (out / "pytest.txt").read_text()
    run = GuestRun(kernel, int(rc_file.read_text().strip()), output, seconds)
    with contextlib.suppress(OSError, ValueError, IndexError):
        run.boot_s = float((out / "uptime").read_text().split()[0])
    run.outcomes = {m.group(2): m.group(1) for m in
                    re.finditer(r"^(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS) (\S+)", output,
                                re.M)}
    if (out / "nat.json").exists():
        run.nat = json.loads((out / "nat.json").read_text())
    return run


def main(argv: list[str]) -> int:
    unknown = [a for a in argv if a not in KINDS]
    if unknown:
        print(f"no such kernel in the matrix: {' '.join(unknown)} (have: "
              f"{', '.join(KINDS)})", file=sys.stderr)
        return 2
    kernels = [KINDS[name]() for name in (argv or list(KINDS))]
    worst = 0
    for kernel in kernels:
        result = run_in_guest(kernel, GUEST_TESTS, Path("/tmp/nodetrace-matrix") / kernel.name)
        print(result.output[-4000:])
        print(result.summary())
        worst = worst or result.returncode
    return 1 if worst else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
