"""Network namespaces the lab (and the kernel tests) create and own.

Everything is done with iproute2 inside namespaces whose names carry our prefix; the
root namespace's interfaces, routes, sysctls and firewall are never touched.  Links
are created directly inside their namespaces (`ip -n NS link add ... peer netns ...`),
so not even a transient interface appears in the root namespace.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

PREFIX = "nt-"
NETNS_DIR = Path("/run/netns")


class NetnsError(RuntimeError):
    pass


def _run(cmd: Sequence[str], *, check: bool = True, input: str | None = None,
         timeout: float = 30) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, input=input,
                          timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise NetnsError(f"{' '.join(cmd)}: exit {proc.returncode}: "
                         f"{proc.stderr.strip() or proc.stdout.strip()}")
    return proc


@dataclass(frozen=True)
class Netns:
    name: str

    @property
    def path(self) -> Path:
        return NETNS_DIR / self.name

    def inode(self) -> int:
        return os.stat(self.path).st_ino

    def exists(self) -> bool:
        return self.path.exists()

    def create(self) -> Netns:
        if not self.name.startswith(PREFIX):
            raise NetnsError(f"refusing to create {self.name!r}: lab names start with {PREFIX}")
        if not self.exists():
            _run(["ip", "netns", "add", self.name])
        self.ip("link", "set", "lo", "up")
        return self

    def delete(self) -> None:
        if not self.name.startswith(PREFIX):
            raise NetnsError(f"refusing to delete {self.name!r}: not one of ours")
        if self.exists():
            _run(["ip", "netns", "del", self.name], check=False)

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run(["ip", "-n", self.name, *args], check=check)

    def exec(self, *cmd: str, check: bool = True, input: str | None = None,
             timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return _run(["ip", "netns", "exec", self.name, *cmd], check=check, input=input,
                    timeout=timeout)

    def popen(self, *cmd: str, **kwargs: object) -> subprocess.Popen[bytes]:
        return subprocess.Popen(["ip", "netns", "exec", self.name, *cmd], **kwargs)  # type: ignore[call-overload, no-any-return]

    def sysctl(self, key: str, value: str) -> None:
        self.exec("sysctl", "-q", "-w", f"{key}={value}")

    def iptables_restore(self, rules: str, *, v6: bool = False, noflush: bool = False) -> None:
        cmd = ["ip6tables-restore" if v6 else "iptables-restore"]
        if noflush:
            cmd.append("--noflush")
        self.exec(*cmd, input=rules)


def veth(a: Netns, a_if: str, b: Netns, b_if: str) -> None:
    """A veth pair with one end in each namespace, created inside `a`."""
    a.ip("link", "add", "name", a_if, "type", "veth", "peer", "name", b_if, "netns", b.name)
    a.ip("link", "set", a_if, "up")
    b.ip("link", "set", b_if, "up")


def ours() -> list[Netns]:
    """Every namespace with our prefix, including ones left by a crashed run."""
    if not NETNS_DIR.is_dir():
        return []
    return sorted((Netns(p.name) for p in NETNS_DIR.iterdir() if p.name.startswith(PREFIX)),
                  key=lambda n: n.name)


def batch(ns: Netns, commands: Sequence[str]) -> None:
    """Many `ip` commands inside `ns` in one process (`ip -n NS -batch -`): a lab
    topology is a few hundred commands, and a process each costs seconds."""
    if commands:
        _run(["ip", "-n", ns.name, "-batch", "-"], input="\n".join(commands) + "\n")
