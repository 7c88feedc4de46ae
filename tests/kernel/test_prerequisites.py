"""What doctor says about this kernel, and how missing prerequisites are reported."""

from __future__ import annotations

import json
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tracer.cli.main import main
from tracer.kernel import loader
from tracer.kernel.btf import Btf
from tracer.kernel.features import ensure_tracefs, fentry_available, kprobes_available

pytestmark = pytest.mark.kernel


def doctor_json() -> dict[str, object]:
    proc = subprocess.run([sys.executable, "-m", "tracer.cli.main", "doctor", "-o", "json"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def test_doctor_reports_this_kernel() -> None:
    report = doctor_json()
    checks = {c["name"]: c for c in report["checks"]}  # type: ignore[attr-defined]
    assert report["can_trace"] is True
    assert checks["btf"]["verdict"] == "yes"
    # exact: a header tree built for this very release exists (Debian splits it in
    # /usr/src/linux-headers-R and -common; /lib/modules/R/build points at the first)
    release = platform.release()
    exact = (Path(f"/lib/modules/{release}/build/include/generated/utsrelease.h").exists()
             or Path(f"/usr/src/linux-headers-{release}").is_dir())
    assert checks["headers"]["verdict"] == ("exact" if exact else "mismatched")
    assert checks["tracepoints"]["verdict"] == "yes"
    tracefs = ensure_tracefs()
    has_kprobes = (Path("/sys/bus/event_source/devices/kprobe").exists()
                   or (tracefs / "kprobe_events").exists())
    assert checks["kprobes"]["ok"] is has_kprobes
    assert checks["tc"]["verdict"] == "yes"
    major_minor = tuple(int(x) for x in release.split("-")[0].split(".")[:2])
    assert checks["tcx"]["verdict"] == ("yes" if major_minor >= (6, 6) else "no")  # tcx: 6.6
    assert checks["ringbuf"]["verdict"] == "yes"
    # fentry: whatever the verdict, it comes from a real load attempt
    assert "fentry program" in checks["fentry"]["meaning"]


def test_drop_reason_names_match_the_tracepoint_format() -> None:
    fmt = (ensure_tracefs() / "events/skb/kfree_skb/format").read_text()
    symbolic = {int(v): name for v, name in re.findall(r'\{\s*(\d+),\s*"(\w+)"\s*\}', fmt)}
    assert symbolic, "the format lists the reasons"
    with Btf() as btf:
        names = loader.drop_reason_names(btf)
    for value, name in symbolic.items():
        if name != "MAX":
            assert names[value] == name


def test_unprivileged_user_gets_exit_3_naming_the_capabilities() -> None:
    # uid 0 with every capability dropped: what a container without CAP_BPF looks like
    # (and the checkout stays readable, which it need not be for another uid)
    proc = subprocess.run(["setpriv", "--bounding-set=-all", "--inh-caps=-all",
                           sys.executable, "-m", "tracer.cli.main", "trace", "--duration", "1"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3, proc.stderr
    assert "CAP_BPF" in proc.stderr and "Traceback" not in proc.stderr


def test_compile_failure_is_exit_1_with_the_compiler_log(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "bpf"
    (broken / "include").mkdir(parents=True)
    (broken / "nodetrace.c").write_text("int broken( { this is not C }\n")
    monkeypatch.setattr(loader, "bpf_dir", lambda: broken)
    assert main(["trace", "--duration", "1", "-o", "jsonl"]) == 1
    captured = capfd.readouterr()
    assert "compiling the BPF programs failed" in captured.err
    assert "error:" in captured.err  # clang's own diagnostics, not a Python traceback
    assert "Traceback" not in captured.err
    assert captured.out == ""


def test_nat_hook_the_kernel_lacks_is_exit_3_saying_why() -> None:
    fentry_ok, fentry_why = fentry_available()
    lacking = {hook: why for hook, have, why in (
        ("fentry", fentry_ok, fentry_why),
        ("kprobe", kprobes_available(ensure_tracefs()), "this kernel has no kprobes"))
        if not have}
    for hook, why in lacking.items():  # none inside the kernel matrix VMs
        proc = subprocess.run([sys.executable, "-m", "tracer.cli.main", "trace", "--nat-hook",
                               hook, "--duration", "1"],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 3, proc.stderr
        assert f"--nat-hook {hook}: {why}" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "tracer.cli.main", "trace", "--nat-hook",
                           "uprobe"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "invalid choice" in proc.stderr, proc.stderr
