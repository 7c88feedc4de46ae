"""What tests/vagrant reads: the Vagrantfile as Vagrant would configure it (loaded by
ruby with a stand-in for Vagrant, vagrantfile_dump.rb), the scripts, the manifests, the
lab's scenario names, and the two READMEs. Nothing here needs a VM, root or a network."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
VAGRANT_DIR = ROOT / "vagrant"
VAGRANTFILE = VAGRANT_DIR / "Vagrantfile"
SCENARIOS_DIR = VAGRANT_DIR / "scenarios"
PROVISION_DIR = VAGRANT_DIR / "provision"
DUMP_RB = Path(__file__).with_name("vagrantfile_dump.rb")


def tool(name: str) -> str:
    """The path of a tool bin/setup installs; a clear failure (not a skip) without it."""
    path = shutil.which(name)
    assert path, f"{name} is not installed: bin/setup installs it (sudo bin/setup)"
    return path


# --- the Vagrantfile, as Vagrant would see it ------------------------------------------

@dataclass
class Machine:
    name: str
    settings: dict[str, Any] = field(default_factory=dict)                 # vm.hostname...
    networks: list[dict[str, Any]] = field(default_factory=list)           # private_network
    providers: dict[str, dict[str, Any]] = field(default_factory=dict)     # name -> settings
    provisioners: list[dict[str, Any]] = field(default_factory=list)       # in order
    synced_folders: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class VagrantConfig:
    settings: dict[str, Any]            # config.vm.* of the whole file (box, box_version)
    machines: dict[str, Machine]        # in definition order


def run_vagrantfile(vagrantfile: Path = VAGRANTFILE,
                    env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("ruby"), str(DUMP_RB), str(vagrantfile)], capture_output=True,
                          text=True, timeout=60, check=False, cwd=vagrantfile.parent,
                          env={**os.environ, **(env or {})})


def load_vagrantfile(vagrantfile: Path = VAGRANTFILE,
                     env: dict[str, str] | None = None) -> VagrantConfig:
    proc = run_vagrantfile(vagrantfile, env)
    assert proc.returncode == 0, f"loading {vagrantfile} failed:\n{proc.stderr}"
    return model(json.loads(proc.stdout)["calls"])


def model(calls: list[dict[str, Any]]) -> VagrantConfig:
    top: dict[str, Any] = {}
    machines: dict[str, Machine] = {}
    for c in calls:
        path = c["path"]
        # ["vm", "define", NAME, ...] is inside a machine's block
        m = machines.get(path[2]) if path[:2] == ["vm", "define"] and len(path) > 2 else None
        rest = path[3:] if m else path
        if "set" in c:
            if m is None and rest == ["vm"]:
                top[c["set"]] = c["value"]
            elif m is not None and rest == ["vm"]:
                m.settings[c["set"]] = c["value"]
            elif m is not None and rest[:2] == ["vm", "provider"]:
                m.providers.setdefault(rest[2], {})[c["set"]] = c["value"]
            continue
        call, args, kw = c["call"], c["args"], c["kw"]
        if m is None and path == ["vm"] and call == "define":
            machines[args[0]] = Machine(args[0], settings={"define": kw})
        elif m is not None and rest == ["vm"]:
            if call == "network":
                m.networks.append({"type": args[0], **kw})
            elif call == "provision":
                m.provisioners.append({"name": args[0], **kw})
            elif call == "synced_folder":
                m.synced_folders.append({"src": args[0], "dest": args[1], **kw})
            elif call == "provider":
                m.providers.setdefault(args[0], {})
    return VagrantConfig(top, machines)


# --- scenarios ---------------------------------------------------------------------------

def scenario_dirs() -> list[Path]:
    return sorted(p for p in SCENARIOS_DIR.iterdir() if p.is_dir())


def manifests() -> list[Path]:
    return sorted(SCENARIOS_DIR.rglob("*.yaml")) + sorted(SCENARIOS_DIR.rglob("*.yml"))


def scripts() -> list[Path]:
    """Every shell script of vagrant/: *.sh, and each scenario's break/repair, lib, clean."""
    found = set(VAGRANT_DIR.rglob("*.sh"))
    found |= {p for p in SCENARIOS_DIR.rglob("*") if p.is_file() and p.name in
              ("break", "repair", "clean")}
    found |= {p for p in VAGRANT_DIR.rglob("*") if p.is_file() and p.suffix == ""
              and p.read_bytes()[:2] == b"#!"}
    return sorted(p for p in found if ".vagrant" not in p.relative_to(VAGRANT_DIR).parts)


@cache
def lab_scenarios() -> tuple[str, ...]:
    """The lab's scenario names, from `nodetrace lab list -o json` (as an operator sees them)."""
    proc = subprocess.run([sys.executable, "-m", "tracer.cli.main", "lab", "list", "-o", "json"],
                          capture_output=True, text=True, timeout=60, check=False, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, f"nodetrace lab list failed:\n{proc.stderr}"
    return tuple(str(s["name"]) for s in json.loads(proc.stdout))


# --- README sections ---------------------------------------------------------------------

def section(markdown: str, title: str) -> str:
    """The text under a `## title` heading, up to the next heading of that level or higher."""
    m = re.search(rf"^## {re.escape(title)}\s*$(.*?)(?=^#{{1,2}} |\Z)", markdown, re.M | re.S)
    assert m, f"no '## {title}' section"
    return m.group(1)


def table(text: str) -> list[dict[str, str]]:
    """The first Markdown table in text, as rows keyed by its header cells."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("|")]
    assert len(lines) >= 2, "no table"
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    header, rows = cells[0], cells[2:]
    return [dict(zip(header, row, strict=True)) for row in rows]


def code_blocks(markdown: str, lang: str = "sh") -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", markdown, re.M | re.S)


def commands(block: str) -> list[str]:
    """The commands of a shell code block: comments and a leading `sudo` dropped."""
    out = []
    for line in block.splitlines():
        cmd = line.split("#", 1)[0].strip()
        if cmd:
            out.append(re.sub(r"^sudo\s+", "", cmd))
    return out
