"""Test tiers.  `kernel` tests need root and a BPF-capable kernel; elsewhere they are
skipped with the reason.  With NODETRACE_REQUIRE_KERNEL=1 (CI), a skipped kernel test
fails the run: a kernel suite that did not run must never pass as green."""

from __future__ import annotations

import os

import pytest

REQUIRE_KERNEL = os.environ.get("NODETRACE_REQUIRE_KERNEL") == "1"
_skipped_kernel: list[str] = []
_kernel_tests: set[str] = set()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # the marker, not the keyword: every test under tests/kernel/ has "kernel" among its
    # keywords (the directory name), including the kprobe tests the matrix VM runs
    _kernel_tests.update(i.nodeid for i in items if i.get_closest_marker("kernel"))
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="kernel tier: needs root (CAP_BPF, CAP_NET_ADMIN)")
    for item in items:
        if item.nodeid in _kernel_tests:
            item.add_marker(skip)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and report.nodeid in _kernel_tests:
        _skipped_kernel.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if REQUIRE_KERNEL and _skipped_kernel:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if REQUIRE_KERNEL and _skipped_kernel:
        terminalreporter.write_line(
            f"FAILED: {len(_skipped_kernel)} kernel test(s) were skipped but "
            "NODETRACE_REQUIRE_KERNEL=1: " + ", ".join(_skipped_kernel[:5]), red=True)
