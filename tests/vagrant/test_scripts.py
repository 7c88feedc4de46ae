"""Every shell script of vagrant/ (provisioning, each scenario's break and repair, the
scenarios' lib.sh and clean) is shellcheck-clean, strict, and runnable as the README says."""

from __future__ import annotations

import os
import subprocess

from tests.vagrant.support import SCENARIOS_DIR, VAGRANT_DIR, scenario_dirs, scripts, tool

SOURCED = {"lib.sh"}     # sourced by the scenario scripts, never run
SHEBANG = "#!/usr/bin/env bash\n"


def test_shellcheck_every_script() -> None:
    found = scripts()
    names = {p.relative_to(VAGRANT_DIR).as_posix() for p in found}
    # the list is found, not hand-kept: make sure it found what the README describes
    assert {"provision/nodetrace.sh", "scenarios/lib.sh", "scenarios/clean",
            "scenarios/healthy/break", "scenarios/healthy/repair"} <= names
    # -x follows `source` (lib.sh) as the scripts' own directives say; style included
    proc = subprocess.run([tool("shellcheck"), "-x", "--severity=style", "--format=gcc",
                           *map(str, found)], capture_output=True, text=True, timeout=120,
                          check=False, cwd=VAGRANT_DIR)
    assert proc.returncode == 0, f"shellcheck:\n{proc.stdout}{proc.stderr}"


def test_scripts_are_strict_and_executable() -> None:
    for path in scripts():
        text = path.read_text()
        rel = path.relative_to(VAGRANT_DIR)
        if path.name in SOURCED:
            assert text.startswith("# shellcheck shell=bash"), rel
            continue
        assert text.startswith(SHEBANG), f"{rel}: starts {text[:30]!r}"
        assert "\nset -euo pipefail\n" in text, f"{rel}: not strict"
        # provisioning scripts are uploaded and run by Vagrant; the rest are run directly
        assert "provision" in rel.parts or os.access(path, os.X_OK), f"{rel}: not executable"


def test_every_scenario_has_its_scripts_and_files() -> None:
    for d in scenario_dirs():
        for name in ("break", "repair", "expect", "manifest.yaml"):
            assert (d / name).is_file(), f"{d.name}/{name} is missing"
        for script in ("break", "repair"):
            text = (d / script).read_text()
            # every scenario script loads lib.sh and checks where it runs before changing anything
            assert '. "$here/../lib.sh"' in text and 'scenario_init "$here"' in text, \
                f"{d.name}/{script}"
        assert "apply_manifest manifest.yaml" in (d / "break").read_text(), d.name
    assert (SCENARIOS_DIR / "lib.sh").is_file()
