"""The nodes install nodetrace with the project README's own set-up command, not a copy
of its steps: what the README's first commands call to set up is what
vagrant/provision/nodetrace.sh runs, from the synced project root, as root."""

from __future__ import annotations

import re
import shlex

from tests.vagrant.support import (
    PROVISION_DIR,
    ROOT,
    code_blocks,
    commands,
    load_vagrantfile,
)

PROVISION = PROVISION_DIR / "nodetrace.sh"


def readme_setup_command() -> str:
    """The README's first commands (its first sh block) each set up by calling one project
    script; the README names that script as what they call. That is the set-up command."""
    readme = (ROOT / "README.md").read_text()
    first = commands(code_blocks(readme)[0])
    assert first, "the README's first sh block has no command"
    called: set[str] = set()
    for cmd in first:
        script = ROOT / shlex.split(cmd)[0]
        assert script.is_file(), f"README command {cmd!r}: no {script}"
        called |= set(re.findall(r'^\s*"\$here/(bin/[\w.-]+)"', script.read_text(), re.M))
    assert len(called) == 1, f"the README's first commands set up with {called or 'nothing'}"
    setup = called.pop()
    prose = readme[readme.index("```", readme.index("```sh") + 3):]
    assert f"`{setup}`" in prose.split("\n## ", 1)[0], f"the README does not name `{setup}`"
    return setup


def executed_lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.strip() and
            not ln.strip().startswith("#")]


def test_provisioning_runs_the_readme_setup_command() -> None:
    setup = readme_setup_command()
    lines = executed_lines(PROVISION.read_text())
    runs = [i for i, ln in enumerate(lines) if ln in (setup, f"./{setup}")]
    assert runs, f"{PROVISION.name} never runs `{setup}` (the README's set-up command)"
    # ... from the synced project root, which is what NODETRACE_SRC names
    cds = [ln for ln in lines[:runs[0]] if ln.startswith("cd ")]
    assert cds and cds[-1] == 'cd "$src"', f"{PROVISION.name}: `{setup}` not run in the project"
    assert any(ln.startswith("src=${NODETRACE_SRC") for ln in lines[:runs[0]])


def test_the_synced_project_is_where_it_runs_as_root() -> None:
    cfg = load_vagrantfile()
    for m in cfg.machines.values():
        steps = [p for p in m.provisioners if p.get("path") == "provision/nodetrace.sh"]
        if not steps:
            continue
        assert steps[0].get("privileged", True), f"{m.name}: bin/setup needs root"
        src = steps[0]["env"]["NODETRACE_SRC"]
        assert any(f["dest"] == src and f["src"] == ".." for f in m.synced_folders), m.name


def test_provisioning_copies_none_of_the_setup_steps() -> None:
    """bin/setup's packages, venv and pip install belong to bin/setup alone."""
    setup = (ROOT / "bin" / "setup").read_text()
    m = re.search(r"^pkgs=\((.*?)\)", setup, re.M | re.S)
    assert m, "bin/setup has no pkgs=(...) list"
    packages = set(m.group(1).split())
    for path in sorted(PROVISION_DIR.glob("*.sh")):
        for line in executed_lines(path.read_text()):
            words = set(re.split(r"[\s;|&()\"']+", line))
            where = f"{path.name}: {line!r}"
            assert not ({"pip", "pip3", "venv", "--system-site-packages"} & words), where
            assert "pip install" not in line and "-m venv" not in line, where
            if "apt-get" in words and "install" in words:
                assert not (packages & words), f"{where} installs bin/setup's packages"
