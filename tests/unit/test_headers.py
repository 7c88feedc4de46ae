"""Header resolution picks a tree BCC can compile with, never modifying the host."""

from __future__ import annotations

from pathlib import Path

import pytest

from tracer.kernel import headers
from tracer.util.errors import PrerequisiteError


def _debian_split(root: Path, rel: str) -> tuple[Path, Path]:
    common = root / f"linux-headers-{rel}-common"
    flavour = root / f"linux-headers-{rel}-amd64"
    (common / "include/linux").mkdir(parents=True)
    (common / "include/linux/kconfig.h").write_text("/* kconfig */\n")
    (common / "arch/x86/include/asm").mkdir(parents=True)
    (flavour / "include/generated").mkdir(parents=True)
    (flavour / "include/generated/utsrelease.h").write_text(
        f'#define UTS_RELEASE "{rel}-amd64"\n')
    (flavour / "arch/x86/include/generated").mkdir(parents=True)
    (flavour / "Makefile").write_text(f"include {common}/Makefile\n")
    return flavour, common


def test_merged_tree_of_a_debian_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    _flavour, _common = _debian_split(src, "6.1.0-9")
    _debian_split(src, "6.1.0-10")  # the newest is chosen
    monkeypatch.setattr(headers, "USR_SRC", src)
    monkeypatch.setattr(headers, "MODULES", tmp_path / "modules")
    monkeypatch.setattr(headers, "KHEADERS", tmp_path / "none")
    monkeypatch.delenv("BCC_KERNEL_SOURCE", raising=False)
    choice = headers.resolve(cache=tmp_path / "cache")
    assert choice.source == "distro"
    assert choice.release == "6.1.0-10-amd64"
    assert choice.path is not None
    assert (choice.path / "include/linux/kconfig.h").read_text() == "/* kconfig */\n"
    assert (choice.path / "include/generated/utsrelease.h").exists()
    assert (choice.path / "arch/x86/include/generated").is_dir()
    assert (choice.path / "arch/x86/include/asm").is_dir()
    assert not choice.matches_running
    assert "do NOT match" in choice.describe()
    # idempotent: a second resolution reuses the tree
    assert headers.resolve(cache=tmp_path / "cache").path == choice.path


def test_env_override_wins_over_distro_trees(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(headers, "MODULES", tmp_path / "modules")
    monkeypatch.setenv("BCC_KERNEL_SOURCE", str(tmp_path / "custom"))
    assert headers.resolve(cache=tmp_path / "cache").source == "env"


def test_no_headers_is_a_prerequisite_error(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(headers, "USR_SRC", tmp_path / "nothing")
    monkeypatch.setattr(headers, "MODULES", tmp_path / "modules")
    monkeypatch.setattr(headers, "KHEADERS", tmp_path / "none")
    monkeypatch.delenv("BCC_KERNEL_SOURCE", raising=False)
    with pytest.raises(PrerequisiteError) as info:
        headers.resolve(cache=tmp_path / "cache")
    assert info.value.exit_code == 3
    assert info.value.fix and "bin/setup" in info.value.fix
