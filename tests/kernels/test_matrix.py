"""Boots each kernel of the matrix under qemu, runs the kprobe/fentry NAT hook, doctor
and BTF-offset tests inside it, and checks that they really ran and passed there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.kernels.kernels import KINDS
from tests.kernels.matrix import GUEST_TESTS, run_in_guest

# root (boots qemu, fetches kernel packages) like the kernel tier: CI requires it
pytestmark = [pytest.mark.kernel, pytest.mark.matrix, pytest.mark.timeout(2400)]

MUST_PASS = [
    "tests/kernel/test_nat_hook.py::test_nat_hook_is_fentry_where_doctor_says_fentry_loads",
    "tests/kernel/test_nat_hook.py::test_nat_hook_reports_service_dnat_and_masquerade_per_connection",
    "tests/kernel/test_nat_hook.py::test_nat_hook_agrees_with_conntrack",
    "tests/kernel/test_prerequisites.py::test_doctor_reports_this_kernel",
    "tests/kernel/test_header_offsets.py::test_btf_offsets_agree_with_exact_headers",
]


@pytest.mark.parametrize("kind", list(KINDS))
def test_kernel(kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kernel = KINDS[kind]()
    result = run_in_guest(kernel, GUEST_TESTS, tmp_path / kernel.name)
    with capsys.disabled():  # the note's figures, in the CI log
        print(f"\nkernel matrix: {result.summary()}")
    assert result.returncode == 0, result.output[-6000:]
    for test in MUST_PASS:
        assert result.outcomes.get(test) == "PASSED", (test, result.output[-3000:])
    # it ran, it did not skip: every guest test reports PASSED
    assert not re.search(r"\bSKIPPED\b", result.output), result.output[-3000:]
    assert set(result.outcomes.values()) == {"PASSED"}, result.outcomes
    assert kernel.release in result.output or result.nat, "the guest ran this kernel"
