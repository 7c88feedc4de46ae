"""Runs the kprobe-dependent tests inside a Debian 6.1 kernel (kprobes, exact headers)
booted under qemu, and checks that they really ran and passed there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.kernels.matrix import debian_kprobe_kernel, run_in_guest

# root (boots qemu, installs the kernel package) like the kernel tier: CI requires it
pytestmark = [pytest.mark.kernel, pytest.mark.matrix, pytest.mark.timeout(1500)]

GUEST_TESTS = ["tests/kernel/test_nat_kprobe.py", "tests/kernel/test_prerequisites.py",
               "tests/unit/test_btf_offsets.py"]


def test_kprobe_nat_path_and_exact_headers_on_debian_6_1(tmp_path: Path) -> None:
    kernel = debian_kprobe_kernel()
    result = run_in_guest(kernel, GUEST_TESTS, tmp_path / kernel.release)
    print(f"kernel matrix: {kernel.release} ({kernel.why}): exit {result.returncode} "
          f"in {result.seconds:.0f} s")
    assert result.returncode == 0, result.output[-6000:]
    # it ran, it did not skip: every guest test reports PASSED
    assert "PASSED tests/kernel/test_nat_kprobe.py::test_kprobe_nat_reports" in result.output
    assert "PASSED tests/kernel/test_prerequisites.py::test_doctor_reports_this_kernel" \
        in result.output
    assert not re.search(r"\bSKIPPED\b", result.output), result.output[-3000:]
