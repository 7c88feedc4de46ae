"""The project's files stand on their own: no comment or doc cites a document a user
does not have (the steering notes beside the repository), and none groups code by the
number of the issue that asked for it (a reader has the code, not the tracker)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WHERE = ("tracer", "tui", "tests", "bench", "docs", "bin", "bpf", "vagrant", "README.md",
         "Makefile", "pyproject.toml")
# built from parts so that this file does not match itself
OUTSIDE = re.compile("shar" + r"ed/[A-Z]")
ISSUE_NUMBER = re.compile(r"\bissues?[ -]#?\d|\bissue \d+'s\b", re.IGNORECASE)
SUFFIXES = {".py", ".md", ".c", ".h", ".sh", ".toml", ".rb", ".yaml", ".yml", ""}


def _files() -> list[Path]:
    """The tree's text sources (walked, not listed by git: a tarball of it has no .git)."""
    out: list[Path] = []
    for top in WHERE:
        root = REPO / top
        for path in [root] if root.is_file() else sorted(root.rglob("*")):
            if path.is_file() and path.suffix in SUFFIXES and \
                    "__pycache__" not in path.parts and not path.name.startswith("."):
                out.append(path)
    return out


def test_no_file_cites_a_document_outside_the_repository_or_an_issue_number() -> None:
    files = _files()
    assert len(files) > 100        # the listing found the tree
    bad = []
    for path in files:
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line) or ISSUE_NUMBER.search(line):
                bad.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert not bad, "\n".join(bad)
