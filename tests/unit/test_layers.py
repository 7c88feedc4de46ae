"""The import contracts of pyproject.toml (`lint-imports`, run by bin/test) hold on the
tree, and break when a forbidden import is added to a copy of it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).parent / "lint-imports"


def _copy(tmp: Path) -> Path:
    tree = tmp / "tree"
    for pkg in ("tracer", "tui"):
        shutil.copytree(REPO / pkg, tree / pkg,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(REPO / "pyproject.toml", tree / "pyproject.toml")
    return tree


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    assert LINT.exists(), "import-linter is a dev extra: pip install -e .[dev]"
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([str(LINT), "--no-cache"], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=120)


def _add_import(tree: Path, module: str, line: str) -> None:
    path = tree / (module.replace(".", "/") + ".py")
    text = path.read_text()
    # after the docstring and `from __future__`, which must stay first
    head, sep, rest = text.partition("from __future__ import annotations\n")
    assert sep, path
    path.write_text(head + sep + line + "\n" + rest)


def test_the_tree_keeps_every_contract(tmp_path: Path) -> None:
    done = _lint(_copy(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(("module", "line", "contract"), [
    ("tracer.events.model", "import tracer.cli", "the event contract imports no other"),
    ("tracer.events.model", "import tracer.pipeline.decode", "layers:"),
    ("tracer.pipeline.decode", "import bcc", "bcc is loaded by the kernel loader"),
    ("tracer.recording.reader", "import tracer.kernel.hooks",
     "replay and diagnose --from need no kernel"),
    ("tracer.session.control", "import tracer.lab.netns", "the lab is a user of the core"),
    ("tracer.lab.netns", "import tui.app", "the lab uses the public core"),
    ("tracer.node.interfaces", "import tracer.kernel.tc", "no package cycles"),
], ids=["events-imports-cli", "events-imports-a-stage", "bcc-outside-the-loader",
        "replay-imports-the-kernel", "core-imports-the-lab", "lab-imports-the-display",
        "package-cycle"])
def test_a_forbidden_import_breaks_its_contract(tmp_path: Path, module: str, line: str,
                                                contract: str) -> None:
    tree = _copy(tmp_path)
    _add_import(tree, module, line)
    done = _lint(tree)
    assert done.returncode != 0, done.stdout
    assert any(ln.startswith(contract) and " BROKEN" in ln
               for ln in done.stdout.splitlines()), done.stdout
