"""bin/setup as a normal user: it asks for root only to install distro packages that
are missing, so replay, diagnose --from and the unprivileged tests need no root.

Runs the script's package check as `nobody` (runuser), on a copy of bin/setup in a
directory that user can read; needs root to switch users, so it is skipped without."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
USER = "nobody"
PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("runuser") is None,
                                reason="switching to a normal user needs root and runuser")


@pytest.fixture(name="tree")
def tree_fixture() -> Iterator[Path]:
    """bin/setup and pyproject.toml in a root-owned directory `nobody` can read and not
    write (pytest's tmp_path is root's alone)."""
    top = Path(tempfile.mkdtemp(prefix="nodetrace-setup-"))
    try:
        (top / "bin").mkdir()
        shutil.copy(REPO / "bin" / "setup", top / "bin" / "setup")
        shutil.copy(REPO / "pyproject.toml", top / "pyproject.toml")
        for d in (top, top / "bin"):
            d.chmod(0o755)
        yield top
    finally:
        shutil.rmtree(top)


def _setup(tree: Path, *, user: str | None = USER, path: str = PATH,
           check_only: bool = True) -> subprocess.CompletedProcess[str]:
    env = ["env", "-i", f"PATH={path}", "HOME=/nonexistent",
           *(["NODETRACE_SETUP_CHECK_ONLY=1"] if check_only else [])]
    argv = [*env, "bash", str(tree / "bin" / "setup")]
    if user is not None:
        argv = ["runuser", "-u", user, "--", *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd="/")


def test_a_normal_user_passes_the_package_check(tree: Path) -> None:
    if _setup(tree, user=None).returncode != 0:
        pytest.skip("distro packages are missing on this machine: run bin/setup as root")
    done = _setup(tree)
    assert done.returncode == 0, done.stderr
    assert "root" not in done.stderr


def test_a_missing_package_without_sudo_says_what_to_do(tree: Path) -> None:
    """A dpkg-query that reports python3-bpfcc missing (the real one for everything
    else): with no sudo on PATH, a clear message and exit 3, nothing installed."""
    if shutil.which("sudo", path=PATH) is not None:
        pytest.skip("sudo is installed: setup would ask it for root")
    shim = tree / "shim"
    shim.mkdir(mode=0o755)
    fake = shim / "dpkg-query"
    fake.write_text('#!/bin/sh\nfor a; do last=$a; done\n'
                    '[ "$last" = python3-bpfcc ] && exit 1\n'
                    'exec /usr/bin/dpkg-query "$@"\n')
    fake.chmod(0o755)
    done = _setup(tree, path=f"{shim}:{PATH}", check_only=False)
    assert done.returncode == 3, done.stderr
    assert "missing distro packages: python3-bpfcc" in done.stderr
    assert "needs root" in done.stderr and "no sudo" in done.stderr


def test_a_tree_the_user_cannot_write_is_named_before_anything_is_built(tree: Path) -> None:
    if _setup(tree, user=None).returncode != 0:
        pytest.skip("distro packages are missing on this machine: run bin/setup as root")
    done = _setup(tree, check_only=False)
    assert done.returncode == 3, done.stderr
    assert "is not writable by nobody" in done.stderr
    assert not (tree / ".venv").exists()
